"""Stopping the web UI while a bundle is being built: the build stops at once, audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exports_helpers import World, make_world

from doorbell.audit.entries import decode_entry
from doorbell.exports.service import BundleJobs


@pytest.fixture
def world(data_dir: Path) -> Iterator[World]:
    # like the web process: no device key, so the build waits for the recorder's checkpoint
    yield from make_world(data_dir, signer=False)


def test_cancel_stops_a_build_waiting_for_a_checkpoint(world: World) -> None:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    world.registry.approve(
        request.id, cosigning_key=world.cosigning_key, clip_ids=world.clip_ids[:1]
    )
    jobs = BundleJobs(registry=world.registry, store=world.store, audit=world.audit)
    jobs.start(request.id, identity=world.owner, cosigning_key=world.cosigning_key)
    deadline = time.monotonic() + 10
    while (jobs.progress(request.id) or {}).get("stage") != "audit":
        progress = jobs.progress(request.id) or {}
        assert not progress.get("finished"), progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.02)
    started = time.monotonic()
    jobs.cancel()
    jobs.join(timeout=5)
    took = time.monotonic() - started
    assert took < 1.0, f"the build took {took:.1f} s to notice"  # its own wait is 2 s
    progress = jobs.progress(request.id) or {}
    assert progress["finished"] and "Cancelled" in progress["error"]
    assert world.registry.get(request.id).bundle_state == "failed"
    assert not world.registry.bundle_path(request.id).exists()
    failed = [
        decode_entry(leaf)
        for _i, leaf in world.audit.entries()
        if decode_entry(leaf)["action"] == "export.bundle_failed"
    ]
    assert failed and "stopped while this bundle was being built" in str(failed[-1]["details"])
