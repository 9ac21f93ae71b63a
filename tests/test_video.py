"""H.264 encoding, GOP-aligned pre-roll and fragmented MP4 into a non-seekable sink."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest

from doorbell.config import CameraConfig, RecordingConfig
from doorbell.errors import VideoError
from doorbell.media.video import (
    EncodedPacket,
    H264Encoder,
    Mp4ClipWriter,
    decode_frames,
    encode_jpeg,
    read_packet_info,
)
from doorbell.recorder.preroll import PacketRing

W, H, FPS = 320, 240, 15
T0 = 5000.0  # camera timestamps are monotonic seconds, far from zero


class NonSeekableSink:
    """A write-only sink like the age encryptor: seek/tell raise, seekable() is False."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise OSError("this sink cannot seek")

    def tell(self) -> int:
        raise OSError("this sink cannot tell")

    def close(self) -> None:
        self.closed = True

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


class NonSeekableReader(io.RawIOBase):
    """A reader that cannot seek, like a decrypting stream."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._inner.readinto(buffer)


def scene(index: int) -> np.ndarray:
    """A moving bright bar on a tinted background: index recoverable from the bar position."""
    image = np.full((H, W, 3), (40, 90, 160), np.uint8)
    x = (index * 4) % (W - 16)
    image[:, x : x + 16] = 255
    return image


def encode(count: int, *, interval_s: float = 1.0) -> tuple[H264Encoder, list[EncodedPacket]]:
    encoder = H264Encoder(W, H, FPS, bitrate_kbps=400, keyframe_interval_s=interval_s)
    packets: list[EncodedPacket] = []
    for index in range(count):
        packets += encoder.encode(scene(index), T0 + index / FPS)
    packets += encoder.flush()
    return encoder, packets


def mux(encoder: H264Encoder, packets: list[EncodedPacket]) -> bytes:
    sink = NonSeekableSink()
    with Mp4ClipWriter(sink, encoder.stream_info) as writer:
        writer.write_all(packets)
    assert not sink.closed, "the writer must leave the sink open for the encryptor to finish"
    assert writer.bytes_written == len(sink.getvalue())
    return sink.getvalue()


def top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append(kind.decode())
        if size < 8:
            break
        offset += size
    return boxes


@pytest.fixture(scope="module")
def three_seconds() -> tuple[H264Encoder, list[EncodedPacket]]:
    return encode(3 * FPS)


def test_encoder_gives_one_packet_per_frame_in_order(three_seconds):
    _, packets = three_seconds
    assert len(packets) == 3 * FPS
    assert [p.time_s for p in packets] == [T0 + i / FPS for i in range(3 * FPS)]
    assert all(p.pts == p.dts for p in packets), "no B-frames: decode order is display order"
    assert [p.pts for p in packets] == sorted({p.pts for p in packets})


def test_keyframes_every_interval(three_seconds):
    _, packets = three_seconds
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keys == [0, 15, 30]


def test_clip_in_non_seekable_sink_decodes(three_seconds):
    encoder, packets = three_seconds
    data = mux(encoder, packets)
    frames = list(decode_frames(NonSeekableReader(data)))
    assert len(frames) == len(packets)
    assert frames[0].image.shape == (H, W, 3)
    assert frames[0].time_s == 0.0
    assert frames[0].is_keyframe
    steps = np.diff([f.time_s for f in frames])
    assert np.allclose(steps, 1 / FPS, atol=1e-4)
    # the picture survives: the bar is where frame 20 put it
    column = frames[20].image[:, :, :].mean(axis=(0, 2))
    assert abs(int(np.argmax(column)) - (20 * 4 + 8)) <= 8


def test_clip_is_fragmented_mp4_that_browsers_stream(three_seconds):
    encoder, packets = three_seconds
    data = mux(encoder, packets)
    boxes = top_level_boxes(data)
    assert boxes[:2] == ["ftyp", "moov"]
    assert boxes.count("moof") == 3, "one fragment per keyframe interval"
    assert boxes[-1] == "mfra", "random-access index at the end for seeking"
    moov = data[: data.index(b"moof")]
    assert b"avcC" in moov and b"mvex" in moov and b"avc1" in moov
    info = read_packet_info(data)
    assert [round(p.time_s, 3) for p in info if p.is_keyframe] == [0.0, 1.0, 2.0]


def test_clip_starting_mid_stream_is_rebased_to_zero(three_seconds):
    encoder, packets = three_seconds
    data = mux(encoder, packets[15:])
    frames = list(decode_frames(data))
    assert len(frames) == 30
    assert frames[0].time_s == 0.0


def test_writer_refuses_a_non_keyframe_start_and_disorder(three_seconds):
    encoder, packets = three_seconds
    with pytest.raises(VideoError, match="keyframe"):
        Mp4ClipWriter(NonSeekableSink(), encoder.stream_info).write(packets[1])
    writer = Mp4ClipWriter(NonSeekableSink(), encoder.stream_info)
    writer.write(packets[0])
    writer.write(packets[1])
    with pytest.raises(VideoError, match="order"):
        writer.write(packets[1])


def test_writer_without_packets_writes_nothing():
    sink = NonSeekableSink()
    Mp4ClipWriter(sink, H264Encoder(W, H, FPS).stream_info).close()
    assert sink.getvalue() == b""


def test_sink_errors_surface_as_video_error(three_seconds):
    encoder, packets = three_seconds

    class BrokenSink(NonSeekableSink):
        def write(self, data: bytes) -> int:
            raise OSError("disk gone")

    writer = Mp4ClipWriter(BrokenSink(), encoder.stream_info)
    with pytest.raises(VideoError):
        writer.write_all(packets)
        writer.close()


def test_encoder_rejects_wrong_frames():
    encoder = H264Encoder(W, H, FPS)
    with pytest.raises(VideoError, match="320x3"):
        encoder.encode(np.zeros((H, W), np.uint8), 0.0)
    with pytest.raises(VideoError, match="even"):
        H264Encoder(321, 240, FPS)


def test_from_config_uses_recording_settings():
    camera = CameraConfig(width=W, height=H, fps=10)
    encoder = H264Encoder.from_config(camera, RecordingConfig(keyframe_interval_s=0.5))
    packets = [p for i in range(12) for p in encoder.encode(scene(i), i / 10)]
    assert [i for i, p in enumerate(packets) if p.is_keyframe] == [0, 5, 10]
    assert encoder.stream_info.width == W and encoder.stream_info.fps == 10


def test_keyframes_follow_time_when_frames_drop():
    encoder = H264Encoder(W, H, FPS, keyframe_interval_s=1.0)
    times = [T0 + i / FPS for i in range(45) if not 5 <= i < 25]  # 1.3 s camera stall
    packets = [p for i, t in enumerate(times) for p in encoder.encode(scene(i), t)]
    key_times = [round(p.time_s - T0, 4) for p in packets if p.is_keyframe]
    # the first frame after the stall is a keyframe, then one per second again
    assert key_times == [0.0, round(25 / FPS, 4), round(40 / FPS, 4)]


# --- pre-roll ring -------------------------------------------------------------------------


def fake_packet(time_s: float, key: bool, size: int = 100) -> EncodedPacket:
    return EncodedPacket(b"x" * size, round(time_s * 90000), round(time_s * 90000), time_s, key)


def test_ring_starts_at_keyframe_and_covers_pre_roll():
    ring = PacketRing(3.0)
    ring.append(fake_packet(-0.1, False))  # before any keyframe: dropped
    for i in range(10 * FPS):
        ring.append(fake_packet(i / FPS, i % FPS == 0))
        first = ring.packets()[0]
        assert first.is_keyframe
        newest = i / FPS
        if newest >= 3.0:
            assert ring.duration_s >= 3.0, "must cover pre_roll_s once that much was seen"
            assert ring.duration_s < 4.0 + 1e-9, "at most one keyframe interval more"
    assert len(ring) <= 4 * FPS + 1


def test_ring_memory_is_bounded_by_bytes_without_keyframes():
    ring = PacketRing(3.0, max_bytes=5000)
    ring.append(fake_packet(0.0, True))
    for i in range(1, 500):
        ring.append(fake_packet(i / FPS, False))
        assert ring.nbytes <= 5000
    ring.append(fake_packet(50.0, True))
    assert ring.packets()[0].is_keyframe


def test_ring_take_empties_it():
    ring = PacketRing(1.0)
    for i in range(40):
        ring.append(fake_packet(i / FPS, i % FPS == 0))
    taken = ring.take()
    assert taken[0].is_keyframe and len(ring) == 0 and ring.nbytes == 0
    assert ring.start_time_s is None


def test_clip_from_ring_and_live_packets_has_no_gaps():
    encoder = H264Encoder(W, H, FPS, bitrate_kbps=400, keyframe_interval_s=1.0)
    ring = PacketRing(2.0)
    trigger_index = 77  # mid-GOP, like real motion
    sink = NonSeekableSink()
    writer = None
    for index in range(trigger_index + 2 * FPS):
        for packet in encoder.encode(scene(index), T0 + index / FPS):
            if index == trigger_index:
                ring.append(packet)
                writer = Mp4ClipWriter(sink, encoder.stream_info)
                writer.write_all(ring.take())
            elif writer is not None:
                writer.write(packet)
            else:
                ring.append(packet)
    assert writer is not None
    trigger_time = T0 + trigger_index / FPS
    assert writer.first_time_s is not None
    assert trigger_time - writer.first_time_s >= 2.0
    writer.close()
    frames = list(decode_frames(sink.getvalue()))
    first_index = round((writer.first_time_s - T0) * FPS)
    assert first_index % FPS == 0
    assert len(frames) == trigger_index + 2 * FPS - first_index
    assert np.allclose(np.diff([f.time_s for f in frames]), 1 / FPS, atol=1e-4)
    # the trigger frame is in the clip, at the right place
    trigger_frame = frames[trigger_index - first_index].image
    assert int(np.argmax(trigger_frame.mean(axis=(0, 2)))) in range(
        (trigger_index * 4) % (W - 16), (trigger_index * 4) % (W - 16) + 16
    )


# --- JPEG ----------------------------------------------------------------------------------


def test_encode_jpeg_scales_down_in_memory():
    data = encode_jpeg(scene(3), 160, quality=70)
    assert data[:3] == b"\xff\xd8\xff"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    small = cv2.imdecode(np.frombuffer(encode_jpeg(scene(3), 4000), np.uint8), 1)
    assert small.shape == (H, W, 3), "never scales up"
    with pytest.raises(VideoError):
        encode_jpeg(np.zeros((4, 4), np.float32), 10)
