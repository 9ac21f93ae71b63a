"""Web UI: timeline, thumbnails, and playback with HTTP Range, byte-exact against the plaintext."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import pytest
from ui_helpers import (
    T0,
    Clock,
    FakeVault,
    make_clip,
    plaintext_of,
    prepare_data_dir,
    ui_config,
    unlock,
)

from doorbell.audit.entries import decode_entry
from doorbell.config import MotionConfig, Polygon
from doorbell.store import Store, new_clip_id
from doorbell.ui import close_app, create_app
from doorbell.ui.ranges import RangeNotSatisfiable, parse_range


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A data dir with a multi-chunk clip, a ring clip and an interrupted clip (made once)."""
    data_dir = tmp_path_factory.mktemp("ui-events") / "data"
    data_dir.mkdir()
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    recipients = [vault.identity.recipient]
    with Store.open(data_dir) as store:
        big = make_clip(store, recipients, T0, seconds=3, size=(320, 240), bitrate_kbps=3000)
        ring = make_clip(store, recipients, T0 + 3600, trigger="ring", seed=1)
        cut = make_clip(
            store,
            recipients,
            T0 + 7200,
            seconds=4,
            size=(320, 240),
            bitrate_kbps=3000,
            interrupted=True,
            seed=2,
        )
        plain = {
            big: plaintext_of(store, big, vault.identity),
            ring: plaintext_of(store, ring, vault.identity),
            cut: plaintext_of(store, cut, vault.identity, allow_truncated=True),
        }
    return data_dir, vault, {"big": big, "ring": ring, "cut": cut}, plain


@pytest.fixture
def client_and_app(library):
    data_dir, vault, _, _ = library
    app = create_app(ui_config(data_dir), vault=vault, clock=Clock())
    client = app.test_client()
    unlock(client)
    yield client, app
    close_app(app)


def entries(app, start: int = 0) -> list[dict]:
    return [decode_entry(leaf) for _, leaf in app.extensions["doorbell"].audit.entries(start)]


def audit_size(app) -> int:
    return app.extensions["doorbell"].audit.size


def test_parse_range_rules() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=90-1000", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=5-3", 100) is None  # invalid: ignored
    assert parse_range("items=0-3", 100) is None
    assert parse_range("bytes=0-1,5-6", 100) is None  # several: the whole file
    for bad in ("bytes=100-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 100)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)


def test_whole_clip_without_range_is_the_plaintext(client_and_app, library) -> None:
    client, _ = client_and_app
    _, _, ids, plain = library
    response = client.get(f"/clips/{ids['big']}/video")
    assert response.status_code == 200
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.mimetype == "video/mp4"
    assert response.data == plain[ids["big"]]
    assert len(plain[ids["big"]]) > 3 * 65536  # several age chunks: seeking is exercised


def test_random_ranges_are_byte_exact(client_and_app, library) -> None:
    client, _ = client_and_app
    _, _, ids, plain = library
    data = plain[ids["big"]]
    size = len(data)
    rng = random.Random(8)
    boundaries = [65535, 65536, 65537, 131071, 131072, size - 1]
    cases = [(b, min(size - 1, b + rng.randint(0, 70000))) for b in boundaries]
    for _ in range(60):
        first, last = sorted((rng.randrange(size), rng.randrange(size)))
        cases.append((first, last))
    for first, last in cases:
        response = client.get(
            f"/clips/{ids['big']}/video", headers={"Range": f"bytes={first}-{last}"}
        )
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(response.headers["Content-Length"]) == last - first + 1
        assert response.data == data[first : last + 1], (first, last)


def test_open_ended_suffix_and_unsatisfiable_ranges(client_and_app, library) -> None:
    client, _ = client_and_app
    _, _, ids, plain = library
    data = plain[ids["big"]]
    size = len(data)
    url = f"/clips/{ids['big']}/video"
    for suffix in (1, 100, 65536, 70000, size, size + 5):
        response = client.get(url, headers={"Range": f"bytes=-{suffix}"})
        assert response.status_code == 206
        assert response.data == data[-suffix:]
    response = client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert response.status_code == 206 and response.data == data[-10:]
    for bad in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=-0"):
        response = client.get(url, headers={"Range": bad})
        assert response.status_code == 416
        assert response.headers["Content-Range"] == f"bytes */{size}"
        assert response.data == b""
    response = client.get(url, headers={"Range": "bytes=9-2"})  # invalid: ignored
    assert response.status_code == 200 and response.data == data


def test_interrupted_clip_plays_its_authenticated_prefix_and_says_so(
    client_and_app, library
) -> None:
    client, _ = client_and_app
    _, _, ids, plain = library
    page = client.get(f"/clips/{ids['cut']}")
    assert b"interrupted" in page.data
    response = client.get(f"/clips/{ids['cut']}/video")
    assert response.status_code == 200
    assert response.data == plain[ids["cut"]]
    assert len(response.data) > 0
    tail = client.get(f"/clips/{ids['cut']}/video", headers={"Range": "bytes=-1000"})
    assert tail.data == plain[ids["cut"]][-1000:]


def test_views_and_downloads_are_audited(client_and_app, library) -> None:
    client, app = client_and_app
    _, _, ids, plain = library
    mark = audit_size(app)
    for _ in range(3):  # one view, however many range requests the player makes
        client.get(f"/clips/{ids['ring']}/video", headers={"Range": "bytes=0-99"})
    viewed = [e for e in entries(app, mark) if e["action"] == "clip.viewed"]
    assert [e["object"] for e in viewed] == [ids["ring"]]
    download = client.get(f"/clips/{ids['ring']}/download")
    assert download.data == plain[ids["ring"]]
    assert "attachment" in download.headers["Content-Disposition"]
    downloaded = [e for e in entries(app) if e["action"] == "clip.downloaded"]
    assert downloaded[-1]["object"] == ids["ring"]
    assert downloaded[-1]["actor"] == "owner"


def test_timeline_filters_and_thumbnails(client_and_app, library) -> None:
    client, app = client_and_app
    _, _, ids, _ = library
    mark = audit_size(app)
    page = client.get("/timeline")
    assert page.status_code == 200
    for clip_id in ids.values():
        assert clip_id.encode() in page.data
    assert b"<svg" in page.data and b"events in the last 24 hours" in page.data
    ring = client.get("/timeline?kind=ring").data
    assert ids["ring"].encode() in ring and ids["big"].encode() not in ring
    motion = client.get("/timeline?kind=motion").data
    assert ids["big"].encode() in motion and ids["ring"].encode() not in motion
    cut = client.get("/timeline?kind=interrupted").data
    assert ids["cut"].encode() in cut and ids["big"].encode() not in cut
    thumb = client.get(f"/thumbs/{ids['big']}.jpg")
    assert thumb.status_code == 200 and thumb.data[:2] == b"\xff\xd8"
    assert thumb.headers["Cache-Control"] == "no-store"
    assert client.get("/thumbs/20990101T000000Z-00000000.jpg").status_code == 404
    assert client.get("/clips/not-a-clip/video").status_code == 404
    views = [e for e in entries(app, mark) if e["action"] == "timeline.viewed"]
    assert len(views) == 4


def test_timeline_pages_fast_with_10000_events(data_dir: Path) -> None:
    prepare_data_dir(data_dir)
    with Store.open(data_dir) as store:
        db = store._db
        db.execute("BEGIN")
        for i in range(10_000):
            started = T0 + i * 60
            clip_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}-{i:08x}"
            event_id = f"e{i}"
            kind = "ring" if i % 10 == 0 else "motion"
            db.execute(
                "INSERT INTO events (id, kind, started_at) VALUES (?, ?, ?)",
                (event_id, kind, started),
            )
            db.execute(
                "INSERT INTO clips (id, event_id, started_at, duration_s, size_bytes, trigger,"
                " sealed, interrupted, path) VALUES (?, ?, ?, 10, 1000000, ?, 1, ?, ?)",
                (clip_id, event_id, started, kind, int(i % 97 == 0), f"clips/x/{clip_id}.mp4.age"),
            )
        db.execute("COMMIT")
    app = create_app(
        ui_config(data_dir), vault=FakeVault(), clock=Clock(), wall_clock=lambda: T0 + 10_000 * 60
    )
    try:
        client = app.test_client()
        unlock(client)
        timings = []
        for url in (
            "/timeline",
            "/timeline?page=100",
            "/timeline?page=208",
            "/timeline?kind=ring&page=20",
            "/timeline?kind=interrupted",
        ):
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        assert b"Page 100 of 209" in client.get("/timeline?page=100").data
        assert max(timings) < 0.5, timings
    finally:
        close_app(app)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=-" + "9" * 5000,
        "bytes=0-" + "9" * 4400,
        "bytes=" + "9" * 5000 + "-",
    ],
)
def test_absurdly_long_range_numbers_are_ignored_not_a_500(header: str) -> None:
    """Review finding 7: int() of 4300+ digits raised ValueError (a 500)."""
    assert parse_range(header, 1000) is None


def test_long_range_header_on_a_real_clip(client_and_app, library) -> None:
    client, _ = client_and_app
    clip = library[2]["ring"]
    response = client.get(f"/clips/{clip}/video", headers={"Range": "bytes=-" + "9" * 5000})
    assert response.status_code == 200
    response.close()


def test_timeline_entry_names_the_clips_shown_and_other_thumbnails_are_audited(
    client_and_app, library
) -> None:
    """Review finding 5: thumbnails were served with no audit entry naming them."""
    client, app = client_and_app
    ids = library[2]
    start = len(entries(app))
    assert client.get("/timeline?kind=ring").status_code == 200
    [viewed] = [e for e in entries(app, start) if e["action"] == "timeline.viewed"]
    assert viewed["details"]["clips"] == [ids["ring"]]
    assert client.get(f"/thumbs/{ids['ring']}.jpg").status_code == 200  # covered by the page
    assert client.get(f"/thumbs/{ids['big']}.jpg").status_code == 200  # not on it
    thumbs = [e for e in entries(app, start) if e["action"] == "thumbnail.viewed"]
    assert [e["object"] for e in thumbs] == [ids["big"]]


class _Hub:
    recording = False
    last_event = None

    def frame(self, after, timeout):
        from types import SimpleNamespace

        return SimpleNamespace(payload=b"\\xff\\xd8jpeg", seq=after + 1)

    def connected(self):
        return True

    def listen(self):
        return None

    def forget(self, waiting):
        pass

    def close(self):
        pass


def test_live_view_is_audited_at_open_and_after_a_gap(library) -> None:
    """Review finding 5: live frames were served with no audit entry."""
    from doorbell.ui.live import LIVE_AUDIT_GAP_S

    data_dir, vault, _, _ = library
    clock = Clock()
    app = create_app(ui_config(data_dir), vault=vault, clock=clock, live=_Hub())
    try:
        client = app.test_client()
        unlock(client)
        start = len(entries(app))

        def live_entries():
            return [e for e in entries(app, start) if e["action"] == "live.viewed"]

        assert client.get("/live").status_code == 200
        assert len(live_entries()) == 1
        for _ in range(3):
            clock.advance(1)
            assert client.get("/live/frame.jpg?after=1").status_code == 200
        assert len(live_entries()) == 1  # polls right after the page: the same viewing
        clock.advance(LIVE_AUDIT_GAP_S + 1)
        client.get("/timeline")  # activity, so the idle lock does not interfere
        assert client.get("/live/frame.jpg?after=1").status_code == 200
        assert len(live_entries()) == 2  # watching again after a gap
    finally:
        close_app(app)


def test_every_live_event_the_recorder_sends_reaches_the_browser() -> None:
    """A new recorder event kind (e.g. storage_full) must not be silently dropped by the UI."""
    from doorbell.live import EVENT_KINDS
    from doorbell.ui.live import FORWARDED

    assert set(EVENT_KINDS) == set(FORWARDED)


def test_timeline_cache_never_shows_a_stale_index(tmp_path: Path) -> None:
    """Issue 17, load: pages are cached per index version; a clip the recorder indexes (from
    another connection) shows at once, and a deleted one disappears."""
    from doorbell.store import IndexReader

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with Store.open(data_dir) as store:
        first = make_clip(store, [FakeVault().identity.recipient], T0, seconds=1.0)
        index = IndexReader(data_dir)
        try:
            assert [i.clip_id for i in index.page().items] == [first]
            assert index.page() is index.page()  # cached while nothing changed
            used = index.used_bytes()
            second = make_clip(store, [FakeVault().identity.recipient], T0 + 60, seconds=1.0)
            assert [i.clip_id for i in index.page().items] == [second, first]
            assert index.used_bytes() > used
            store.delete_clip(first)
            assert [i.clip_id for i in index.page().items] == [second]
            page, used_now, hours = index.overview("all", 1, T0 + 3600)
            assert page is index.page() and used_now == index.used_bytes() < used * 2
            assert hours == index.per_hour(T0 + 3600) and sum(hours) == 1
            third = make_clip(store, [FakeVault().identity.recipient], T0 + 120, seconds=1.0)
            page, _, hours = index.overview("all", 1, T0 + 3600)
            assert [i.clip_id for i in page.items] == [third, second] and sum(hours) == 2
        finally:
            index.close()


def test_timeline_filters_by_motion_zone(data_dir: Path) -> None:
    prepare_data_dir(data_dir)
    seen = {"path": ("path",), "porch": ("porch",), "both": ("path", "porch"), "none": ()}
    ids = {}
    with Store.open(data_dir) as store:
        for i, (label, zones) in enumerate(seen.items()):
            clip_id = new_clip_id(T0 + 60 * i)
            event_id = store.add_event("motion", started_at=T0 + 60 * i, zones=zones)
            store.begin_clip(
                clip_id, started_at=T0 + 60 * i, trigger="motion", event_id=event_id, zones=zones
            )
            store.seal_clip(
                clip_id, ended_at=T0 + 60 * i + 5, duration_s=5, size_bytes=10, sha256="ab" * 32
            )
            ids[label] = clip_id.encode()
    config = dataclasses.replace(
        ui_config(data_dir),
        motion=MotionConfig(
            zones=(
                Polygon(points=((0, 0), (1, 0), (1, 0.5)), name="path"),
                Polygon(points=((0, 0.5), (1, 0.5), (1, 1)), name="porch"),
            )
        ),
    )
    app = create_app(config, vault=FakeVault(), clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        mark = audit_size(app)
        every = client.get("/timeline").data
        assert all(clip in every for clip in ids.values())
        assert b"Zone: path" in every and b"Zone: porch" in every  # the filter chips
        path = client.get("/timeline?zone=path").data
        assert ids["path"] in path and ids["both"] in path
        assert ids["porch"] not in path and ids["none"] not in path
        assert b"in zone path" in path and b"kind=ring&amp;zone=path" in path
        porch = client.get("/timeline?kind=motion&zone=porch").data
        assert ids["porch"] in porch and ids["both"] in porch and ids["path"] not in porch
        unknown = client.get("/timeline?zone=%27%29%20OR%201%3D1%20--").data
        assert not any(clip in unknown for clip in ids.values())
        views = [e for e in entries(app, mark) if e["action"] == "timeline.viewed"]
        assert [view["details"]["zone"] for view in views] == [
            None,
            "path",
            "porch",
            "') OR 1=1 --",
        ]
    finally:
        close_app(app)


def test_timeline_pages_match_a_plain_sort_with_tied_start_times(tmp_path: Path) -> None:
    """Issue 17, load: pages after the first start from a cached key per page instead of an
    OFFSET scan; they must be exactly the pages of the full sort (started_at, then id, both
    newest first), ties across page boundaries included, for every filter, and follow
    clips the recorder adds or deletes."""
    from doorbell.store import TIMELINE_FILTERS, IndexReader

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = random.Random(17)
    rows = []
    with Store.open(data_dir) as store:
        db = store._db
        db.execute("BEGIN")
        for i in range(230):
            started = T0 + rng.randrange(40) * 60  # many clips share a start time
            clip_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}-{i:08x}"
            kind = "ring" if i % 7 == 0 else "motion"
            interrupted = int(i % 5 == 0)
            db.execute(
                "INSERT INTO events (id, kind, started_at) VALUES (?, ?, ?)",
                (f"e{i}", kind, started),
            )
            db.execute(
                "INSERT INTO clips (id, event_id, started_at, duration_s, size_bytes, trigger,"
                " sealed, interrupted, path, zones)"
                " VALUES (?, ?, ?, 10, 1000, 'motion', 1, ?, ?, ?)",
                (
                    clip_id,
                    f"e{i}",
                    started,
                    interrupted,
                    f"clips/x/{clip_id}.mp4.age",
                    '["porch", "gate"]' if i % 11 == 0 else "[]",
                ),
            )
            rows.append((started, clip_id, kind, interrupted))
        db.execute("COMMIT")

        def expected(kind: str, deleted: set[str]) -> list[str]:
            chosen = [
                r
                for r in rows
                if r[1] not in deleted
                and (
                    kind == "all"
                    or (kind == "ring" and r[2] == "ring")
                    or (kind == "motion" and r[2] == "motion")
                    or (kind == "interrupted" and r[3])
                )
            ]
            return [r[1] for r in sorted(chosen, key=lambda r: (r[0], r[1]), reverse=True)]

        def check(index: IndexReader, deleted: set[str]) -> None:
            for kind in TIMELINE_FILTERS:
                want = expected(kind, deleted)
                for size in (7, 48):
                    pages = max(1, -(-len(want) // size))
                    got: list[str] = []
                    for number in (*range(pages, 0, -1), pages + 3):  # last first, then past it
                        page = index.page(kind, number, size)
                        assert (page.total, page.pages) == (len(want), pages)
                        if number <= pages:
                            got = [i.clip_id for i in page.items] + got
                            for item in page.items:
                                zoned = int(item.clip_id[-8:], 16) % 11 == 0
                                assert item.zones == (("porch", "gate") if zoned else ())
                        else:
                            assert page.page == pages
                    assert got == want, (kind, size)

        index = IndexReader(data_dir)
        try:
            check(index, set())
            gone = {rows[3][1], rows[100][1], rows[229][1]}
            for clip_id in gone:
                store.delete_clip(clip_id)
            check(index, gone)
        finally:
            index.close()


def test_timeline_reuses_its_rendered_grid_but_never_shows_a_stale_one(tmp_path: Path) -> None:
    """Issue 17, load: the clip grid of a page is rendered once and reused; every view is
    still audited, a clip indexed by another connection shows at once, a deleted one goes,
    and the links are those url_for builds."""
    from flask import url_for

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    with Store.open(data_dir) as store:
        first = make_clip(store, [vault.identity.recipient], T0, seconds=1.0)
    app = create_app(ui_config(data_dir), vault=vault, clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        mark = audit_size(app)
        pages = [client.get("/timeline").data for _ in range(3)]
        views = [e for e in entries(app, mark) if e["action"] == "timeline.viewed"]
        assert [v["details"]["clips"] for v in views] == [[first]] * 3
        with app.test_request_context("/timeline"):
            clip_url = url_for("events.clip_page", clip_id=first)
            thumb_url = url_for("events.thumbnail", clip_id=first)
        for page in pages:
            assert f'href="{clip_url}"'.encode() in page
            assert f'src="{thumb_url}"'.encode() in page
        with Store.open(data_dir) as store:
            second = make_clip(store, [vault.identity.recipient], T0 + 60, seconds=1.0)
        page = client.get("/timeline").data
        assert second.encode() in page and first.encode() in page
        with Store.open(data_dir) as store:
            store.delete_clip(first)
        page = client.get("/timeline").data
        assert second.encode() in page and first.encode() not in page
    finally:
        close_app(app)


def test_rendered_grid_is_reused_only_for_the_same_page_zone_and_badges() -> None:
    from doorbell.store import TimelinePage
    from doorbell.ui.timeline import RenderedDays

    rendered = RenderedDays(size=2)
    renders: list[str] = []

    def render(text: str):
        def rendering() -> str:
            renders.append(text)
            return text

        return rendering

    page = TimelinePage((), 0, 1, 1, "all")
    zone, other_zone = object(), object()
    assert rendered.get(page, zone, {}, "", render("a")) == "a"
    assert rendered.get(page, zone, {}, "", render("b")) == "a"  # reused
    assert rendered.get(page, zone, {"x": "held"}, "", render("c")) == "c"  # badges changed
    assert rendered.get(page, other_zone, {"x": "held"}, "", render("d")) == "d"
    assert rendered.get(page, other_zone, {"x": "held"}, "/sub", render("e")) == "e"
    same_content = TimelinePage((), 0, 1, 1, "all")  # a new index version: a new object
    assert rendered.get(same_content, other_zone, {"x": "held"}, "/sub", render("f")) == "f"
    for number in (2, 3):  # size 2: page 1 is dropped
        rendered.get(TimelinePage((), 0, number, 3, "all"), zone, {}, "", render(str(number)))
    assert rendered.get(same_content, other_zone, {"x": "held"}, "/sub", render("g")) == "g"
    assert renders == ["a", "c", "d", "e", "f", "2", "3", "g"]


def test_clip_links_are_what_url_for_builds() -> None:
    from flask import Flask, url_for

    from doorbell.ui.events import bp, clip_links

    app = Flask(__name__)
    app.register_blueprint(bp)
    ids = ["20260101T000000Z-0000abcd", "19700101T000000Z-ffffffff"]
    for root in ("", "/door"):
        with app.test_request_context("/timeline", base_url=f"http://localhost{root}"):
            for endpoint in ("events.clip_page", "events.thumbnail", "events.clip_video"):
                link = clip_links(endpoint)
                assert [link(i) for i in ids] == [url_for(endpoint, clip_id=i) for i in ids]
