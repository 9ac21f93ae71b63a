"""PacketAssembler: encoder buffers -> EncodedPacket, guarding against hardware quirks."""

from __future__ import annotations

import pytest

from doorbell.camera.h264 import PacketAssembler, nal_units

SPS = b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac"
PPS = b"\x00\x00\x00\x01\x68\xee\x3c\x80"
IDR = b"\x00\x00\x00\x01\x65\x88\x84\x00"
P = b"\x00\x00\x01\x41\x9a\x02"


def test_nal_units_finds_three_and_four_byte_start_codes():
    data = SPS + PPS + IDR + P
    assert [kind for kind, _s, _e in nal_units(data)] == [7, 8, 5, 1]
    _kind, start, end = nal_units(data)[1]
    assert data[start:end] == PPS
    assert nal_units(b"junk") == []


def test_timestamps_become_increasing_90khz_ticks_on_the_camera_clock():
    assembler = PacketAssembler(fps=10)
    assembler.anchor(50.0)
    first = assembler.add(SPS + PPS + IDR, True, 0)
    second = assembler.add(P, False, 100_000)
    same = assembler.add(P, False, 100_000)  # a repeated timestamp is nudged, never reused
    assert (first.pts, second.pts, same.pts) == (0, 9000, 9001)
    assert first.dts == first.pts and first.duration == 9000
    assert (first.time_s, second.time_s) == (50.0, pytest.approx(50.1))
    assert first.is_keyframe and not second.is_keyframe


def test_headers_in_a_buffer_of_their_own_go_in_front_of_the_next_picture():
    assembler = PacketAssembler(fps=10)
    assert assembler.add(SPS + PPS, False, 0) is None
    packet = assembler.add(IDR, True, 0)
    assert packet.data == SPS + PPS + IDR and packet.is_keyframe


def test_a_keyframe_without_headers_gets_the_last_ones_seen():
    assembler = PacketAssembler(fps=10)
    assembler.add(SPS + PPS + IDR, True, 0)
    assembler.add(P, False, 100_000)
    bare = assembler.add(IDR, True, 200_000)
    assert bare.data == SPS + PPS + IDR
    assert assembler.add(P, False, 300_000).data == P  # other pictures are left alone


def test_an_idr_slice_counts_as_a_keyframe_even_unflagged():
    assembler = PacketAssembler(fps=10)
    assert assembler.add(SPS + PPS + IDR, False, 0).is_keyframe
