"""H.264 video: encode BGR frames, keep encoded pre-roll, mux fragmented MP4 into any stream.

The recorder's video path is three small pieces, each usable alone:

* :class:`H264Encoder` turns BGR frames (:attr:`doorbell.camera.Frame.main`) into
  :class:`EncodedPacket` objects with libx264 from the PyAV wheel: no B-frames (packets come
  out in display order, one per frame), a keyframe every ``keyframe_interval_s`` seconds of
  frame time, SPS/PPS repeated in-band on every keyframe so any keyframe can start a clip.
  On the Pi the camera's hardware encoder produces the same packets (Annex B, in-band
  headers), so everything below works for both.
* the pre-roll ring of encoded packets lives with the recorder
  (:class:`doorbell.recorder.preroll.PacketRing`); this module knows nothing of it.
* :class:`Mp4ClipWriter` muxes packets, without re-encoding, into fragmented MP4
  (``frag_keyframe+empty_moov+default_base_moof``: a header first, then one self-contained
  fragment per keyframe interval, an ``mfra`` index at the end). It never seeks, so the sink
  can be a pipe or the age encryptor, and it holds at most one fragment in memory.

Plus :func:`encode_jpeg` (thumbnails, live view) and the decode helpers tests use.
Nothing is ever written to disk here except through the sink the caller passes in.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

import av
import cv2
import numpy as np

from doorbell.errors import VideoError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig, RecordingConfig

__all__ = [
    "DecodedFrame",
    "EncodedPacket",
    "H264Encoder",
    "Mp4ClipWriter",
    "PacketInfo",
    "StreamInfo",
    "decode_frames",
    "encode_jpeg",
    "read_packet_info",
]

log = logging.getLogger(__name__)

#: MPEG's 90 kHz clock: fine enough for any frame rate and jittery camera timestamps.
TIME_BASE = Fraction(1, 90_000)
#: Fragmented MP4 that streams into a non-seekable sink and that browsers play and seek.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass(frozen=True)
class StreamInfo:
    """What a muxer needs to know about an H.264 packet stream.

    ``time_base`` is the unit of :attr:`EncodedPacket.pts`/``dts`` (seconds per tick).
    """

    width: int
    height: int
    fps: float
    time_base: Fraction = TIME_BASE
    codec: str = "h264"


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded frame (Annex B H.264).

    ``pts``/``dts`` count :attr:`StreamInfo.time_base` ticks since the encoder's first frame;
    ``time_s`` is the frame's own timestamp as given to :meth:`H264Encoder.encode` (the
    camera's monotonic seconds), so the recorder can tell which frames a clip holds;
    ``duration`` is the nominal frame duration in ticks.
    """

    data: bytes
    pts: int
    dts: int
    time_s: float
    is_keyframe: bool
    duration: int = 0

    @property
    def size(self) -> int:
        """Payload size in bytes."""
        return len(self.data)


class H264Encoder:
    """Continuous libx264 encoder for BGR uint8 frames of a fixed size.

    ``preset``/``tune`` default to ``veryfast``/``zerolatency``: no B-frames and no lookahead,
    so every :meth:`encode` call returns the packet of that very frame (one in, one out).
    Keyframes are forced by frame time, every ``keyframe_interval_s`` seconds, so pre-roll
    and clip splits have that granularity even if the camera drops frames. ``threads = 0``
    lets x264 choose. Raises :class:`VideoError` on bad sizes, frames or encoder failures.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        bitrate_kbps: int = 2000,
        keyframe_interval_s: float = 1.0,
        preset: str = "veryfast",
        tune: str = "zerolatency",
        threads: int = 0,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise VideoError(f"H.264 needs a positive, even frame size, got {width}x{height}")
        if fps <= 0 or keyframe_interval_s <= 0 or bitrate_kbps <= 0:
            raise VideoError(
                f"fps ({fps}), keyframe_interval_s ({keyframe_interval_s}) and "
                f"bitrate_kbps ({bitrate_kbps}) must be positive"
            )
        self.stream_info = StreamInfo(width=width, height=height, fps=float(fps))
        self.keyframe_interval_s = float(keyframe_interval_s)
        self._frame_ticks = max(1, round(1 / (fps * TIME_BASE)))
        keyint = max(1, round(keyframe_interval_s * fps))
        context: Any = av.CodecContext.create("libx264", "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base = TIME_BASE
        context.framerate = Fraction(fps).limit_denominator(1001)
        context.bit_rate = bitrate_kbps * 1000
        # A backstop only: keyframes are forced by time in encode(). Twice the nominal GOP so
        # the backstop never lands between two forced keyframes at the configured rate.
        context.gop_size = 2 * keyint
        context.thread_count = threads
        context.options = {
            "preset": preset,
            "tune": tune,
            "forced-idr": "1",
            # no surprise keyframes; cap the rate so a busy scene cannot flood the sink
            "x264-params": (
                f"scenecut=0:bframes=0:vbv-maxrate={bitrate_kbps * 3 // 2}:"
                f"vbv-bufsize={bitrate_kbps * 2}"
            ),
        }
        try:
            context.open()
        except av.FFmpegError as error:
            raise VideoError(f"cannot open the libx264 encoder: {error}") from error
        self._context = context
        self._first_time: float | None = None
        self._last_pts = -1
        self._last_key_time: float | None = None
        self._pending: dict[int, float] = {}  # pts -> time_s of frames inside the encoder
        self._closed = False

    @classmethod
    def from_config(
        cls, camera: CameraConfig, recording: RecordingConfig, **kwargs: Any
    ) -> H264Encoder:
        """An encoder for the camera's main stream with the recording settings."""
        return cls(
            camera.width,
            camera.height,
            camera.fps,
            bitrate_kbps=recording.bitrate_kbps,
            keyframe_interval_s=recording.keyframe_interval_s,
            **kwargs,
        )

    def encode(self, image: np.ndarray, time_s: float) -> list[EncodedPacket]:
        """Encode one BGR frame taken at ``time_s`` (seconds, any monotonic clock).

        Returns the packets that came out (with the default tune: exactly this frame's).
        Timestamps that do not increase are nudged one tick past the previous frame.
        """
        if self._closed:
            raise VideoError("encode() after close()")
        info = self.stream_info
        if image.shape != (info.height, info.width, 3) or image.dtype != np.uint8:
            raise VideoError(
                f"expected a {info.height}x{info.width}x3 uint8 BGR frame, "
                f"got {image.shape} {image.dtype}"
            )
        if self._first_time is None:
            self._first_time = time_s
        pts = max(round((time_s - self._first_time) / TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        # cv2's BGR -> I420 is several times cheaper than swscale's bgr24 path (BT.601,
        # limited range, which is also what decoders assume for untagged H.264).
        yuv = np.asarray(
            cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2YUV_I420), np.uint8
        )
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        half_frame = 0.5 / info.fps
        if (
            self._last_key_time is None
            or time_s - self._last_key_time >= self.keyframe_interval_s - half_frame
        ):
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key_time = time_s
        self._pending[pts] = time_s
        return self._convert(self._send(frame))

    def flush(self) -> list[EncodedPacket]:
        """Drain the encoder at the end of the stream; no more frames may follow."""
        if self._closed:
            return []
        packets = self._convert(self._send(None))
        self._closed = True
        return packets

    def close(self) -> None:
        """Release the encoder (pending packets are dropped; call :meth:`flush` first)."""
        self._closed = True
        self._pending.clear()

    def __enter__(self) -> H264Encoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        try:
            return self._context.encode(frame)
        except av.FFmpegError as error:
            raise VideoError(f"libx264 failed to encode a frame: {error}") from error

    def _convert(self, packets: list[av.Packet]) -> list[EncodedPacket]:
        result = []
        for packet in packets:
            pts = packet.pts if packet.pts is not None else packet.dts
            dts = packet.dts if packet.dts is not None else pts
            if pts is None or dts is None:
                raise VideoError("libx264 returned a packet without timestamps")
            time_s = self._pending.pop(pts, None)
            if time_s is None:  # not ours to map; derive it from the pts
                time_s = (self._first_time or 0.0) + float(pts * TIME_BASE)
            result.append(
                EncodedPacket(
                    data=bytes(packet),
                    pts=pts,
                    dts=dts,
                    time_s=time_s,
                    is_keyframe=packet.is_keyframe,
                    duration=self._frame_ticks,
                )
            )
        return result


class ClipSink(Protocol):
    """Where a clip's bytes go: ``write(data)`` returns the count taken (None: all)."""

    def write(self, data: bytes, /) -> int | None: ...


class _SinkWriter:
    """Write-only, non-seekable view of the caller's sink (PyAV seeks whatever can seek,
    and closes whatever has close()). Counts bytes; loops over short writes."""

    def __init__(self, sink: ClipSink) -> None:
        self._sink = sink
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        remaining = data
        while remaining:
            count = self._sink.write(remaining)
            count = len(remaining) if count is None else count
            if count <= 0:
                raise VideoError("the clip sink accepted no bytes")
            remaining = remaining[count:]  # a short write: rare, so the copy is too
        self.bytes_written += len(data)
        return len(data)


class Mp4ClipWriter:
    """Mux :class:`EncodedPacket` objects into fragmented MP4 written to ``sink``.

    ``sink`` is any object with ``write(bytes)``; it is never seeked, told or closed (close
    it yourself after :meth:`close`). The first packet must be a keyframe carrying SPS/PPS
    in-band; timestamps are re-based so the clip starts at 0. Each keyframe starts a new
    fragment, handed to the sink as soon as the next keyframe arrives, so memory holds at most
    one keyframe interval of packets. Raises :class:`VideoError` on out-of-order packets,
    a non-keyframe start or muxer errors (including errors raised by the sink).
    """

    def __init__(self, sink: ClipSink, stream_info: StreamInfo) -> None:
        self.stream_info = stream_info
        self._sink = _SinkWriter(sink)
        self._container: Any = None
        self._stream: Any = None
        self._offset = 0
        self._last_dts: int | None = None
        self.packet_count = 0
        self.first_time_s: float | None = None
        self.last_time_s: float | None = None
        self._end_pts = 0
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """MP4 bytes handed to the sink so far."""
        return self._sink.bytes_written

    @property
    def duration_s(self) -> float:
        """Duration of the packets written so far (last frame included), in seconds."""
        return float(self._end_pts * self.stream_info.time_base)

    def write(self, packet: EncodedPacket) -> None:
        """Append one packet (must follow the previous one in decode order)."""
        if self._closed:
            raise VideoError("write() after close()")
        if self._container is None:
            if not packet.is_keyframe:
                raise VideoError(
                    "a clip must start with a keyframe (start a pre-roll at a keyframe)"
                )
            self._open()
            self._offset = packet.dts
            self.first_time_s = packet.time_s
        if self._last_dts is not None and packet.dts <= self._last_dts:
            raise VideoError(
                f"packets out of order: dts {packet.dts} after {self._last_dts} "
                "(feed packets in the order the encoder produced them)"
            )
        self._last_dts = packet.dts
        av_packet = av.Packet(packet.data)
        av_packet.pts = packet.pts - self._offset
        av_packet.dts = packet.dts - self._offset
        av_packet.duration = packet.duration
        av_packet.time_base = self.stream_info.time_base
        av_packet.stream = self._stream
        av_packet.is_keyframe = packet.is_keyframe
        self._mux(av_packet)
        self.packet_count += 1
        self.last_time_s = packet.time_s
        self._end_pts = max(self._end_pts, packet.pts - self._offset + packet.duration)

    def write_all(self, packets: Iterable[EncodedPacket]) -> None:
        """:meth:`write` each packet in turn (a pre-roll starts with a keyframe)."""
        for packet in packets:
            self.write(packet)

    def close(self) -> None:
        """Write the last fragment and the index. The clip is then complete; the sink stays
        open. A writer that got no packet writes nothing at all."""
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            return
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as error:
            raise VideoError(f"cannot finish the MP4 clip: {error}") from error

    def __enter__(self) -> Mp4ClipWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: finish what we can, keep the original error
            self.close()
        except VideoError as error:
            log.debug("closing a failed clip also failed: %s", error)

    def _open(self) -> None:
        info = self.stream_info
        try:
            self._container = av.open(
                self._sink,
                "w",
                format="mp4",
                options={"movflags": MOVFLAGS},
                # hand each finished fragment to the sink at once, not at 32 KiB boundaries
                container_options={"flush_packets": "1"},
            )
            # A codec-less stream: packets are copied, never re-encoded. PyAV fills the avcC
            # box from the SPS/PPS in the first keyframe (extract_extradata).
            self._stream = self._container.add_mux_stream(
                info.codec,
                rate=Fraction(info.fps).limit_denominator(1001),
                width=info.width,
                height=info.height,
            )
            self._stream.time_base = info.time_base
        except (av.FFmpegError, ValueError) as error:
            raise VideoError(f"cannot start an MP4 clip: {error}") from error

    def _mux(self, packet: av.Packet) -> None:
        try:
            self._container.mux(packet)
        except (av.FFmpegError, OSError) as error:
            raise VideoError(f"cannot write to the MP4 clip: {error}") from error


# --- JPEG and decoding ---------------------------------------------------------------------


def encode_jpeg(image: np.ndarray, width: int, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR (or grey) image scaled down to ``width`` pixels, aspect kept.

    Never scales up: a narrower image keeps its size. ``quality`` is 1..100. In memory only.
    Raises :class:`VideoError` if OpenCV cannot encode the image.
    """
    if image.ndim not in (2, 3) or image.dtype != np.uint8 or width <= 0:
        raise VideoError(f"cannot make a JPEG of a {image.shape} {image.dtype} image at {width}")
    height, current_width = image.shape[:2]
    if width < current_width:
        new_height = max(1, round(height * width / current_width))
        image = cv2.resize(image, (width, new_height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise VideoError("OpenCV could not encode the JPEG")
    return buffer.tobytes()


class DecodedFrame(NamedTuple):
    """A decoded frame: BGR pixels, presentation time in seconds, keyframe flag."""

    image: np.ndarray
    time_s: float
    is_keyframe: bool


class PacketInfo(NamedTuple):
    """A demuxed packet's time (seconds), keyframe flag and size (bytes)."""

    time_s: float
    is_keyframe: bool
    size: int


def _open_input(source: BinaryIO | bytes) -> Any:
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    try:
        return av.open(source, "r")
    except av.FFmpegError as error:
        raise VideoError(f"cannot open the video: {error}") from error


def decode_frames(source: BinaryIO | bytes) -> Iterator[DecodedFrame]:
    """Decode every frame of the first video stream of an MP4 (file object or bytes).

    Works on non-seekable readers too. Raises :class:`VideoError` on corrupt input.
    """
    container = _open_input(source)
    try:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            time_s = float(frame.time) if frame.time is not None else 0.0
            yield DecodedFrame(frame.to_ndarray(format="bgr24"), time_s, bool(frame.key_frame))
    except av.FFmpegError as error:
        raise VideoError(f"cannot decode the video: {error}") from error
    finally:
        container.close()


def read_packet_info(source: BinaryIO | bytes) -> list[PacketInfo]:
    """Demux (without decoding) the first video stream: one :class:`PacketInfo` per packet."""
    container = _open_input(source)
    try:
        stream = container.streams.video[0]
        return [
            PacketInfo(float(packet.pts * packet.time_base), packet.is_keyframe, packet.size)
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        ]
    except av.FFmpegError as error:
        raise VideoError(f"cannot read the video: {error}") from error
    finally:
        container.close()
