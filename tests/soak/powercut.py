"""Power-cut harness: kill -9 the recorder at seeded random moments, restart, check everything.

Each cycle starts ``doorbell recorder`` on the same data dir (the restart reconciles what the
previous cut left), lets it record for a random time (rings by SIGUSR1, 5 s clips split
continuously, a tiny quota so retention deletes clips all the time, audit appends for each),
then kills it with SIGKILL and checks the data dir *as a restart finds it*:

- the audit log verifies (signed checkpoints, Merkle tree);
- every sealed clip has its file, with the indexed size and SHA-256, decrypts and decodes;
- every clip file has an index row; an unsealed row (the clip being written) exists at most
  once, and after the next restart it is flagged interrupted and its prefix plays;
- temp files left by the cut are gone after the next restart;
- every clip sealed (and not interrupted) when the power went has exactly one ``clip.sealed``
  entry once the next start reached ``recorder.start``: a cut between sealing in the index
  and that entry is repaired by the restart (``recovered: true``), never doubled;
- no sealed clip ever disappears without a ``clip.deleted`` audit entry (lost) or fails to
  decrypt (corrupt).

After the last cycle a clean restart and SIGTERM must exit 0 and leave a reconciled index.

CI runs 20 cycles (tests/test_powercut.py); the long run::

    .venv/bin/python tests/soak/powercut.py --cycles 200 [--seed N] [--data-dir DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make tests/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import collections
import json
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field

from recorder_helpers import make_owner, plaintext_hits
from stress_helpers import (
    audit_entries,
    check_interrupted_clip,
    check_sealed_clip,
    index_rows,
    kill_hard,
    start_doorbell,
    stderr_tail,
    temp_files,
    wait_for,
    write_stress_config,
)

from doorbell.audit.verify import verify_data_dir
from doorbell.store import Store

#: the repository root: results go to bench/results/ wherever the script is run from
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PowerCutReport:
    cycles: int = 0
    lost: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    log_verifies: int = 0
    sealed_checked: int = 0
    interrupted_checked: int = 0
    interrupted_playable: int = 0
    interrupted_empty: int = 0
    deletions_audited: int = 0
    deletions_finished_by_reconcile: int = 0
    sealed_without_audit_entry: list[str] = field(default_factory=list)
    audit_entries_recovered: int = 0
    temp_files_left: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    phases: collections.Counter = field(default_factory=collections.Counter)
    plaintext: list[str] = field(default_factory=list)
    clean_restart_ok: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"lost sealed clips: {len(self.lost)}, corrupt: {len(self.corrupt)}, "
            f"log verifies: {self.log_verifies}/{self.cycles}"
        )

    def table(self) -> str:
        rows = [
            ("cycles (kill -9)", self.cycles),
            ("sealed clips checked (decrypt + decode)", self.sealed_checked),
            ("interrupted clips flagged after restart", self.interrupted_checked),
            ("  ... with a playable prefix", self.interrupted_playable),
            ("  ... cut before their first fsync", self.interrupted_empty),
            ("retention deletions audited", self.deletions_audited),
            ("deletions cut midway, finished by reconcile", self.deletions_finished_by_reconcile),
            ("sealed but cut before the clip.sealed entry", len(self.sealed_without_audit_entry)),
            ("  ... entry appended by the restart (recovered)", self.audit_entries_recovered),
            ("kill moments", dict(self.phases)),
            ("temp files left after restart", len(self.temp_files_left)),
            ("plaintext hits", len(self.plaintext)),
            ("clean restart + SIGTERM exits 0", self.clean_restart_ok),
            ("other problems", len(self.problems)),
            ("wall time (s)", round(self.seconds, 1)),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    @property
    def ok(self) -> bool:
        return (
            not (
                self.lost or self.corrupt or self.temp_files_left or self.problems or self.plaintext
            )
            and self.log_verifies == self.cycles
        )


def _starts(data_dir: Path) -> int:
    return sum(1 for e in audit_entries(data_dir) if e["action"] == "recorder.start")


def _wait_started(data_dir: Path, process, starts: int) -> None:
    """Until the recorder appended its recorder.start (it reconciles before that) or died."""
    wait_for(lambda: _starts(data_dir) > starts or process.poll() is not None, 60, "recorder.start")


def _kill_phase(rows: list[dict], temps: list[Path], entries: list[dict]) -> str:
    """Where the cut landed, as far as the disk can tell."""
    audited = {e["object"] for e in entries if e.get("action") == "clip.sealed"}
    if any(r["sealed"] and not r["interrupted"] and r["id"] not in audited for r in rows):
        return "sealing (index sealed, audit entry not yet)"
    if any(r.get("audit_pending_from") is not None for r in rows):
        return "sealing (audit entry written, index not yet told)"
    if temps:
        return "atomic write (thumbnail)"
    if any(not r["sealed"] for r in rows):
        return "recording a clip"
    return "between clips"


def run_power_cuts(
    work: Path, *, cycles: int, seed: int = 12, log=print, max_delay_s: float = 2.5
) -> PowerCutReport:
    """Run ``cycles`` kill -9 cycles in ``work`` (a fresh directory); return the report."""
    started = time.monotonic()
    rng = random.Random(seed)
    data_dir = work / "data"
    data_dir.mkdir(mode=0o750)
    identity = make_owner(data_dir)
    config = write_stress_config(
        work / "doorbell.toml",
        data_dir,
        storage={"quota_gb": 0.0015},
        camera={"seed": seed},
        recording={"post_roll_s": 10.0},
    )
    report = PowerCutReport()
    verified: dict[str, str] = {}  # clip id -> sha256 already decrypted and decoded
    ever_sealed: set[str] = set()
    pending_interrupted: set[str] = set()
    pending_temps: list[Path] = []
    pending_missing: set[str] = set()
    sealed_at_cut: dict[str, bool] = {}  # clip sealed when the power went -> had its entry
    for cycle in range(cycles):
        starts = _starts(data_dir)
        process = start_doorbell("recorder", "--config", str(config), "--no-live")
        try:
            _wait_started(data_dir, process, starts)
            if process.poll() is not None:
                report.problems.append(
                    f"cycle {cycle}: recorder exited {process.returncode}: {stderr_tail(process)}"
                )
                break
            # The restart has reconciled: what the previous cut left must be cleaned up.
            left = [str(p) for p in pending_temps if p.exists()]
            report.temp_files_left += left
            _check_audited_after_restart(data_dir, sealed_at_cut, report, f"cycle {cycle}")
            delay = rng.uniform(0.0, max_delay_s)
            ring_at = sorted(rng.uniform(0.0, delay) for _ in range(rng.randint(1, 3)))
            begin = time.monotonic()
            for moment in ring_at:
                time.sleep(max(0.0, begin + moment - time.monotonic()))
                process.send_signal(signal.SIGUSR1)
            time.sleep(max(0.0, begin + delay - time.monotonic()))
        finally:
            kill_hard(process)
        report.cycles += 1
        _check_after_cut(
            data_dir,
            identity,
            report,
            verified,
            ever_sealed,
            pending_interrupted,
            pending_missing,
            cycle,
        )
        rows = index_rows(data_dir)
        entries = audit_entries(data_dir)
        pending_temps = temp_files(data_dir)
        report.phases[_kill_phase(rows, pending_temps, entries)] += 1
        audited = {e["object"] for e in entries if e["action"] == "clip.sealed"}
        sealed_at_cut = {
            r["id"]: r["id"] in audited for r in rows if r["sealed"] and not r["interrupted"]
        }
        pending_interrupted = {r["id"] for r in rows if not r["sealed"]}
        if len(pending_interrupted) > 1:
            report.problems.append(f"cycle {cycle}: {len(pending_interrupted)} unsealed clips")
        log(f"cycle {cycle + 1}/{cycles}: cut after {delay:.2f} s; {report.summary()}")
    _clean_restart(config, data_dir, identity, report, verified, sealed_at_cut)
    report.plaintext = plaintext_hits(data_dir)
    report.seconds = time.monotonic() - started
    return report


def _check_audited_after_restart(
    data_dir: Path, sealed_at_cut: dict[str, bool], report: PowerCutReport, when: str
) -> None:
    """Once a restart appended ``recorder.start``: each clip that was sealed (and not
    interrupted) when the power went has exactly one ``clip.sealed`` entry; one the cut left
    without it got it from the restart, marked ``recovered``. (Deleted since by retention or
    not, the entry stays in the log; clips the new process sealed are not judged here, they
    may be in that very gap while we read.)"""
    entries = [e for e in audit_entries(data_dir) if e["action"] == "clip.sealed"]
    by_clip = collections.defaultdict(list)
    for entry in entries:
        by_clip[entry["object"]].append(entry)
    for clip_id, had_entry in sorted(sealed_at_cut.items()):
        found = by_clip.get(clip_id, [])
        if len(found) != 1:
            report.problems.append(
                f"{when}: sealed clip {clip_id} has {len(found)} clip.sealed "
                "entries after the restart (want exactly 1)"
            )
        elif not had_entry:
            if found[0]["details"].get("recovered") is True:
                report.audit_entries_recovered += 1
            else:
                report.problems.append(f"{when}: {clip_id}: entry not marked recovered")


def _check_after_cut(
    data_dir: Path,
    identity,
    report: PowerCutReport,
    verified: dict[str, str],
    ever_sealed: set[str],
    pending_interrupted: set[str],
    pending_missing: set[str],
    cycle: int,
) -> None:
    result = verify_data_dir(data_dir)
    if result.ok:
        report.log_verifies += 1
    else:
        report.problems.append(f"cycle {cycle}: audit log: {result.summary()}")
    rows = index_rows(data_dir)
    entries = audit_entries(data_dir)
    by_id = {r["id"]: r for r in rows}
    deleted = {e["object"] for e in entries if e["action"] == "clip.deleted"}
    reconciled_missing = {
        clip
        for e in entries
        if e["action"] == "index.reconciled"
        for clip in e.get("details", {}).get("rows_without_file", [])
    }
    report.deletions_audited = len(deleted)
    # a deletion cut between unlinking the file and dropping the row: the restart finishes it
    for clip_id in sorted(pending_missing):
        if clip_id in by_id:
            report.problems.append(f"cycle {cycle}: {clip_id} without file kept its row")
        elif clip_id in reconciled_missing:
            report.deletions_finished_by_reconcile += 1
        else:
            report.problems.append(f"cycle {cycle}: {clip_id} vanished without an audit entry")
    pending_missing.clear()
    for clip_id in sorted(ever_sealed - set(by_id)):
        if clip_id not in deleted and clip_id not in reconciled_missing:
            report.lost.append(clip_id)
    ever_sealed.intersection_update(by_id)
    for clip_id in sorted(pending_interrupted):
        row = by_id.get(clip_id)
        if row is None:
            # cut between the index row and the file's creation: nothing was recorded, and
            # the restart dropped the row and said so (index.reconciled rows_without_file)
            if clip_id not in deleted and clip_id not in reconciled_missing:
                report.problems.append(f"cycle {cycle}: interrupted {clip_id} vanished")
            continue
        if not (row["sealed"] and row["interrupted"]):
            report.problems.append(f"cycle {cycle}: {clip_id} not flagged interrupted")
    for row in rows:
        path = data_dir / row["path"]
        if not row["sealed"]:
            continue  # the clip the cut interrupted: checked after the next restart
        if not path.exists():
            pending_missing.add(row["id"])  # a deletion in progress when the power went
            continue
        if row["interrupted"]:
            if row["id"] in verified:
                continue
            check = check_interrupted_clip(path, identity)
            report.interrupted_checked += 1
            if not check.ok:
                report.corrupt.append(f"{row['id']} (interrupted): {check.problem}")
            elif check.frames:
                report.interrupted_playable += 1
            else:
                report.interrupted_empty += 1
            verified[row["id"]] = "interrupted"
            continue
        ever_sealed.add(row["id"])
        if verified.get(row["id"]) == row["sha256"]:
            continue
        check = check_sealed_clip(path, row, identity)
        report.sealed_checked += 1
        if not check.ok:
            report.corrupt.append(f"{row['id']}: {check.problem}")
        verified[row["id"]] = row["sha256"]
    known = {r["path"] for r in rows}
    for path in (data_dir / "clips").rglob("*.mp4.age") if (data_dir / "clips").exists() else ():
        if path.relative_to(data_dir).as_posix() not in known:
            report.problems.append(f"cycle {cycle}: clip file without a row: {path.name}")
    audited = {e["object"] for e in entries if e["action"] == "clip.sealed"}
    for row in rows:
        missing = row["sealed"] and not row["interrupted"] and row["id"] not in audited
        if missing and row["id"] not in report.sealed_without_audit_entry:
            report.sealed_without_audit_entry.append(row["id"])


def _clean_restart(
    config: Path,
    data_dir: Path,
    identity,
    report: PowerCutReport,
    verified: dict[str, str],
    sealed_at_cut: dict[str, bool],
) -> None:
    """One last restart, stopped by SIGTERM: exit 0, index and files agree, log verifies,
    every sealed clip has exactly one ``clip.sealed`` entry."""
    starts = _starts(data_dir)
    process = start_doorbell("recorder", "--config", str(config), "--no-live")
    try:
        _wait_started(data_dir, process, starts)
        _check_audited_after_restart(data_dir, sealed_at_cut, report, "last restart")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        kill_hard(process)
    if process.returncode != 0:
        report.problems.append(f"clean restart exited {process.returncode}: {err[-2000:]}")
        return
    with Store.open(data_dir) as store:
        again = store.reconcile()
        rows = store.clips()
    if again.clips_marked_interrupted or again.rows_without_file or again.files_without_row:
        report.problems.append(f"after a clean stop the index still needed repair: {again}")
    if temp_files(data_dir):
        report.problems.append("temp files after a clean stop")
    if any(not c.sealed for c in rows):
        report.problems.append("unsealed clip after a clean stop")
    counts = collections.Counter(
        e["object"] for e in audit_entries(data_dir) if e["action"] == "clip.sealed"
    )
    for clip in rows:
        if not clip.interrupted and counts[clip.id] != 1:
            report.problems.append(
                f"after a clean stop {clip.id} has {counts[clip.id]} "
                "clip.sealed entries (want exactly 1)"
            )
        if clip.audit_pending_from is not None:
            report.problems.append(f"after a clean stop {clip.id} still owes its audit entry")
    for clip in rows:
        if not clip.interrupted and verified.get(clip.id) != clip.sha256:
            row = {"sha256": clip.sha256, "size_bytes": clip.size_bytes}
            check = check_sealed_clip(data_dir / clip.path, row, identity)
            report.sealed_checked += 1
            if not check.ok:
                report.corrupt.append(f"{clip.id}: {check.problem}")
    result = verify_data_dir(data_dir)
    if not result.ok:
        report.problems.append(f"final audit log: {result.summary()}")
    report.clean_restart_ok = process.returncode == 0 and result.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "powercut.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="doorbell-powercut-") as scratch:
        work = args.data_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        report = run_power_cuts(work, cycles=args.cycles, seed=args.seed)
    print(report.table())
    for problem in [*report.lost, *report.corrupt, *report.problems][:20]:
        print("  !", problem)
    print(report.summary())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in vars(report).items() if k != "phases"}
    summary["phases"] = dict(report.phases)
    args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
