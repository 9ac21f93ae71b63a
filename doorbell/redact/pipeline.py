"""Decode -> redact -> encode: a redacted clip streamed into any sink, and the owner's preview.

Frames live only in memory: at most ``hold_frames + 1`` decoded frames are held (the face
hold needs that much look-ahead); the output goes out one MP4 fragment at a time through
:class:`doorbell.media.video.Mp4ClipWriter`, so the sink may be a pipe or the age encryptor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import av
import numpy as np

from doorbell.errors import RedactionError, VideoError
from doorbell.media.video import ClipSink, H264Encoder, Mp4ClipWriter, encode_jpeg
from doorbell.redact.faces import CenterFaceDetector, FaceBox, FaceDetector, FaceHold
from doorbell.redact.render import FrameRedactor
from doorbell.redact.spec import RedactionSpec

__all__ = ["RedactionResult", "make_detector", "preview_jpeg", "redact_clip"]

log = logging.getLogger(__name__)

#: ``progress(frames_done, frames_total_or_None)``
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class RedactionResult:
    """What :func:`redact_clip` did: the spec as run (detector version filled in), frame
    count, frames with at least one face box, output bytes and duration in seconds."""

    spec: RedactionSpec
    frames: int
    frames_with_faces: int
    bytes_written: int
    duration_s: float

    def manifest(self) -> dict[str, Any]:
        """The manifest entry: the spec's dict plus these counts."""
        entry = self.spec.to_dict()
        entry["result"] = {
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "duration_s": round(self.duration_s, 3),
        }
        return entry


def make_detector(spec: RedactionSpec) -> FaceDetector | None:
    """The face detector the spec asks for (``None`` when faces are off).

    Raises :class:`RedactionError` for an unknown detector or a missing model.
    """
    if not spec.faces:
        return None
    if spec.detector != "centerface":
        raise RedactionError(f"unknown face detector {spec.detector!r} (known: centerface)")
    return CenterFaceDetector(min_score=spec.min_score, detect_width=spec.detect_width)


def _open(source: BinaryIO) -> Any:
    try:
        return av.open(source, "r")
    except av.FFmpegError as error:
        raise VideoError(f"cannot open the clip to redact: {error}") from error


def _count_frames(source: BinaryIO) -> int | None:
    """Frame count by demuxing (no decoding) when the source can seek back; else None."""
    seekable = getattr(source, "seekable", None)
    if not (callable(seekable) and seekable()):
        return None
    start = source.tell()
    container = _open(source)
    try:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError:
        return None
    finally:
        container.close()
        source.seek(start)


def _decoded(container: Any) -> Iterator[tuple[np.ndarray, float]]:
    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="bgr24"), float(frame.time or 0.0)
    except av.FFmpegError as error:
        raise VideoError(f"cannot decode the clip to redact: {error}") from error


def _frame_rate(container: Any) -> float:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 15.0


def redact_clip(
    source: BinaryIO,
    sink: ClipSink,
    spec: RedactionSpec,
    *,
    progress: ProgressCallback | None = None,
    detector: FaceDetector | None = None,
    rng: np.random.Generator | None = None,
    bitrate_kbps: int = 2000,
    keyframe_interval_s: float = 1.0,
    on_frame: Callable[[int, list[FaceBox], FrameRedactor], None] | None = None,
) -> RedactionResult:
    """Redact the plaintext MP4 in ``source`` into fragmented MP4 written to ``sink``.

    ``source`` is a readable file object (``doorbell.age.decrypt`` output works; if it can seek,
    the frame total is counted first so progress has a total). ``sink`` needs only
    ``write()``; it is never seeked or closed. ``progress(done, total_or_None)`` is called after
    every output frame. ``detector`` overrides the one the spec names (tests); ``on_frame``
    (evaluation) gets each frame's index, face boxes and the redactor. Raises
    :class:`VideoError` for undecodable input or sink errors, :class:`RedactionError` for a
    missing face model.
    """
    total = _count_frames(source)
    if spec.faces and detector is None:
        detector = make_detector(spec)
    if detector is not None:
        spec = spec.with_detector(detector.name, detector.version)
    container = _open(source)
    done = faced = 0
    try:
        fps = _frame_rate(container)
        redactor: FrameRedactor | None = None
        encoder: H264Encoder | None = None
        writer: Mp4ClipWriter | None = None
        hold: FaceHold[tuple[np.ndarray, float]] | None = (
            FaceHold(detector, detect_every=spec.detect_every, hold_frames=spec.hold_frames)
            if detector is not None
            else None
        )

        def emit(ready: list[tuple[tuple[np.ndarray, float], list[FaceBox]]]) -> None:
            nonlocal done, faced
            for (image, time_s), boxes in ready:
                if redactor is None or encoder is None or writer is None:
                    raise RedactionError("internal: frame before the encoder")  # unreachable
                if on_frame is not None:
                    on_frame(done, boxes, redactor)
                redactor.redact(image, boxes)
                faced += bool(boxes)
                for packet in encoder.encode(image, time_s):
                    writer.write(packet)
                done += 1
                if progress is not None:
                    progress(done, total)

        for image, time_s in _decoded(container):
            if encoder is None:
                height, width = image.shape[:2]
                redactor = FrameRedactor(spec, width, height, rng=rng)
                encoder = H264Encoder(
                    width,
                    height,
                    fps,
                    bitrate_kbps=bitrate_kbps,
                    keyframe_interval_s=keyframe_interval_s,
                )
                writer = Mp4ClipWriter(sink, encoder.stream_info)
            if hold is not None:
                emit(hold.push((image, time_s), image))
            else:
                emit([((image, time_s), [])])
        if hold is not None:
            emit(hold.finish())
        if encoder is None or writer is None:
            raise VideoError("the clip to redact has no video frames")
        for packet in encoder.flush():
            writer.write(packet)
        writer.close()
        return RedactionResult(spec, done, faced, writer.bytes_written, writer.duration_s)
    finally:
        container.close()


def preview_jpeg(
    source: BinaryIO,
    spec: RedactionSpec,
    *,
    at_s: float = 0.0,
    width: int = 640,
    quality: int = 80,
    detector: FaceDetector | None = None,
    rng: np.random.Generator | None = None,
) -> bytes:
    """JPEG bytes (in memory) of the frame at ``at_s`` seconds, redacted as the export will be.

    Faces are detected exactly as :func:`redact_clip` would (same detection frames and hold),
    so the preview shows what the export will show. The image is scaled down to ``width``
    pixels. Decodes from the start of the clip up to ``at_s`` plus the hold (clips are short).
    A time past the end gives the last frame. Raises :class:`VideoError` for an undecodable or
    empty clip, :class:`RedactionError` for a missing face model.
    """
    if spec.faces and detector is None:
        detector = make_detector(spec)
    container = _open(source)
    try:
        start: float | None = None
        chosen: tuple[np.ndarray, list[FaceBox]] | None = None
        hold: FaceHold[tuple[np.ndarray, float]] | None = (
            FaceHold(detector, detect_every=spec.detect_every, hold_frames=spec.hold_frames)
            if detector is not None
            else None
        )
        latest: tuple[np.ndarray, list[FaceBox]] | None = None
        for image, time_s in _decoded(container):
            start = time_s if start is None else start
            item = (image, time_s - start)
            ready = hold.push(item, image) if hold is not None else [(item, [])]
            for (ready_image, ready_time), boxes in ready:
                latest = (ready_image, boxes)
                if chosen is None and ready_time >= at_s - 1e-6:
                    chosen = latest
            if chosen is not None:
                break
        if chosen is None and hold is not None:
            for (ready_image, ready_time), boxes in hold.finish():
                latest = (ready_image, boxes)
                if chosen is None and ready_time >= at_s - 1e-6:
                    chosen = latest
        chosen = chosen or latest
        if chosen is None:
            raise VideoError("the clip has no video frames to preview")
        image, boxes = chosen
        height, full_width = image.shape[:2]
        FrameRedactor(spec, full_width, height, rng=rng).redact(image, boxes)
        return encode_jpeg(image, width, quality)
    finally:
        container.close()
