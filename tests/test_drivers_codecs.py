"""Codec tests: worked hex frames from shared/docs/protocols.md (not our own encoder), Hypothesis
round-trips, byte-at-a-time and chunked feeding, random garbage."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ramanid.drivers import obp, wasatch, wasatch_eeprom
from ramanid.drivers.crc import crc8_maxim

pytestmark = pytest.mark.timeout(60)


def hexdump(text: str) -> bytes:
    """Parse a protocols.md hex dump (``00: c1 c0 ...`` lines)."""
    out = []
    for line in text.strip().splitlines():
        out.append(line.split(":", 1)[1] if ":" in line else line)
    return bytes.fromhex(" ".join(out))


# protocols.md §1.6, verbatim
GET_SERIAL_ACK = hexdump("""
00: c1 c0 00 11 04 00 00 00 00 01 00 00 00 00 00 00
16: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
32: 00 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00
48: 00 00 00 00 00 00 00 00 00 00 00 00 c5 c4 c3 c2
""")
SET_INTEGRATION_100MS = hexdump("""
00: c1 c0 00 11 04 00 00 00 10 00 11 00 00 00 00 00
16: 00 00 00 00 00 00 00 04 a0 86 01 00 00 00 00 00
32: 00 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00
48: 00 00 00 00 00 00 00 00 00 00 00 00 c5 c4 c3 c2
""")
SERIAL_REPLY = hexdump("""
00: c1 c0 00 11 01 00 00 00 00 01 00 00 00 00 00 00
16: 00 00 00 00 00 00 00 08 53 54 53 30 31 32 33 34
""") + GET_SERIAL_ACK[32:]


def test_obp_worked_frames_decode() -> None:
    m = obp.decode(GET_SERIAL_ACK)
    assert (m.msg_type, m.flags, m.data) == (obp.MSG_GET_SERIAL, obp.FLAG_ACK_REQUESTED, b"")
    m = obp.decode(SET_INTEGRATION_100MS)
    assert m.msg_type == obp.MSG_SET_INTEGRATION
    assert struct.unpack("<I", m.data)[0] == 100_000
    m = obp.decode(SERIAL_REPLY)
    assert m.is_response and not m.is_nack and m.data == b"STS01234"


def test_obp_worked_frames_encode() -> None:
    assert obp.encode(obp.Message(obp.MSG_GET_SERIAL, flags=obp.FLAG_ACK_REQUESTED)) == \
        GET_SERIAL_ACK
    assert obp.encode(obp.Message(obp.MSG_SET_INTEGRATION, struct.pack("<I", 100_000),
                                  flags=obp.FLAG_ACK_REQUESTED)) == SET_INTEGRATION_100MS
    assert obp.encode(obp.Message(obp.MSG_GET_SERIAL, b"STS01234",
                                  flags=obp.FLAG_RESPONSE)) == SERIAL_REPLY


def test_obp_nack_errno_bytes() -> None:
    # §1.6: NACK with error 6 -> bytes 4-7 = 09 00 06 00
    raw = obp.encode(obp.Message(obp.MSG_GET_SERIAL, flags=obp.FLAG_RESPONSE | obp.FLAG_NACK,
                                 errno=6))
    assert raw[4:8] == bytes.fromhex("09000600")
    assert obp.decode(raw).is_nack


def test_obp_raw_spectrum_layout() -> None:
    # §1.6: 1024 px reply is 2112 bytes, bytes_remaining = 14 08 00 00, footer at the end
    raw = obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM, bytes(2048), flags=1))
    assert len(raw) == 2112
    assert raw[40:44] == bytes.fromhex("14080000")
    assert raw[-4:] == bytes.fromhex("c5c4c3c2")
    assert raw[23] == 0  # no immediate data when a payload is present


def test_obp_md5_checked() -> None:
    raw = bytearray(obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM, bytes(range(40)),
                                           checksum_type=obp.CHECKSUM_MD5)))
    assert raw[44 + 40:44 + 56] == hashlib.md5(bytes(raw[:44 + 40])).digest()
    raw[50] ^= 0x01
    with pytest.raises(obp.FrameError, match="MD5"):
        obp.decode(bytes(raw))
    events = obp.StreamParser().feed(bytes(raw))
    assert not any(isinstance(e, obp.Message) for e in events)


def test_obp_rejects_bad_footer_and_both_data_kinds() -> None:
    bad = bytearray(GET_SERIAL_ACK)
    bad[-1] = 0
    with pytest.raises(obp.FrameError, match="footer"):
        obp.decode(bytes(bad))


messages = st.builds(
    obp.Message,
    msg_type=st.integers(0, 0xFFFFFFFF),
    data=st.binary(max_size=300),
    flags=st.integers(0, 0x3F),
    errno=st.integers(0, 0xFFFF),
    regarding=st.integers(0, 0xFFFFFFFF),
    version=st.sampled_from([obp.VERSION_SEABREEZE, obp.VERSION_STS_SAMPLE]),
    checksum_type=st.sampled_from([0, 1]),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_obp_round_trip(m: obp.Message) -> None:
    assert obp.decode(obp.encode(m)) == m


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.binary(max_size=80),
       st.lists(st.integers(1, 97), min_size=1, max_size=20))
def test_obp_stream_garbage_and_chunking(msgs: list[obp.Message], junk: bytes,
                                         sizes: list[int]) -> None:
    stream = junk + b"".join(obp.encode(m) for m in msgs)
    parser = obp.StreamParser()
    got: list[obp.Message] = []
    pos, i = 0, 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        got += [e for e in parser.feed(stream[pos:pos + n]) if isinstance(e, obp.Message)]
        pos += n
        i += 1
    # garbage may not swallow any real frame (it is shorter than a frame or fails validation)
    assert got[-len(msgs):] == msgs


def test_obp_byte_at_a_time_with_garbage_between() -> None:
    msgs = [obp.Message(obp.MSG_GET_SERIAL, b"STS01234", flags=1),
            obp.Message(obp.MSG_GET_RAW_SPECTRUM, bytes(range(256)) * 8, flags=1)]
    stream = b"\x00\xc1\xc1\xc0junk" + obp.encode(msgs[0]) + b"\xc1\xc0" + bytes(50) + \
        obp.encode(msgs[1])
    parser = obp.StreamParser()
    got = []
    for b in stream:
        got += [e for e in parser.feed(bytes([b])) if isinstance(e, obp.Message)]
    assert got == msgs
    assert parser.garbage_bytes > 0


# protocols.md §2.2 worked frames, verbatim
WASATCH_FRAMES = {
    "3c 00 08 10 30 32 2e 31 2e 32 33 83 3e": (0x10, b"02.1.23"),
    "3c 00 03 91 64 00 6a 3e": (0x91, bytes([0x64, 0x00])),
    "3c 00 01 11 07 3e": (0x11, b""),
    "3c 00 04 91 64 00 00 4a 3e": (0x91, bytes([0x64, 0, 0])),
    "3c 00 01 4b a2 3e": (0x4B, b""),
    "3c 00 01 0a ba 3e": (0x0A, b""),
}


def test_crc8_maxim_reference_values() -> None:
    assert crc8_maxim(b"123456789") == 0xA1
    from ramanid.drivers.crc import CRC8_MAXIM_TABLE

    assert list(CRC8_MAXIM_TABLE[:8]) == [0, 94, 188, 226, 97, 63, 221, 131]


@pytest.mark.parametrize("hexframe", list(WASATCH_FRAMES))
def test_wasatch_worked_frames(hexframe: str) -> None:
    raw = bytes.fromhex(hexframe)
    cmd, data = WASATCH_FRAMES[hexframe]
    f = wasatch.decode(raw)
    assert (f.command, f.data) == (cmd, data)
    assert wasatch.encode(cmd, data) == raw
    assert wasatch.StreamParser().feed(raw) == [f]


def test_wasatch_write_bit_and_bad_crc() -> None:
    raw = wasatch.encode(wasatch.CMD_INTEGRATION, (100).to_bytes(3, "little"), write=True)
    assert raw == bytes.fromhex("3c 00 04 91 64 00 00 4a 3e")
    bad = bytearray(raw)
    bad[5] ^= 0x10
    with pytest.raises(wasatch.FrameError, match="CRC"):
        wasatch.decode(bytes(bad))
    events = wasatch.StreamParser().feed(bytes(bad))
    assert not any(isinstance(e, wasatch.Frame) for e in events)
    assert any(isinstance(e, wasatch.BadFrame) and e.reason == "CRC mismatch" for e in events)


frames = st.builds(wasatch.Frame, command=st.integers(0, 255), data=st.binary(max_size=70))


@settings(max_examples=150, deadline=None)
@given(frames)
def test_wasatch_round_trip(f: wasatch.Frame) -> None:
    assert wasatch.decode(wasatch.encode_frame(f)) == f


@settings(max_examples=60, deadline=None)
@given(st.lists(frames, min_size=1, max_size=5), st.binary(max_size=40),
       st.lists(st.integers(1, 13), min_size=1, max_size=10))
def test_wasatch_stream_garbage_and_chunking(fs: list[wasatch.Frame], junk: bytes,
                                             sizes: list[int]) -> None:
    # garbage ends with '>' so it cannot leave a partial frame open across the real ones
    stream = junk.replace(b"<", b"") + b"".join(wasatch.encode_frame(f) for f in fs)
    parser = wasatch.StreamParser()
    got = []
    pos, i = 0, 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        got += [e for e in parser.feed(stream[pos:pos + n]) if isinstance(e, wasatch.Frame)]
        pos += n
        i += 1
    assert got == fs


def test_wasatch_resync_after_start_byte_in_garbage() -> None:
    good = wasatch.encode(wasatch.CMD_PING)
    # a stray '<' whose "length" would run past the good frame, then a corrupted frame
    stream = b"\x3c\x00\x02\x99" + b"\x3c\x00\x01\x4b\x00\x3e" + good
    parser = wasatch.StreamParser()
    got = []
    for b in stream:
        got += [e for e in parser.feed(bytes([b])) if isinstance(e, wasatch.Frame)]
    assert got == [wasatch.Frame(wasatch.CMD_PING)]


def test_wasatch_status_codes_twos_complement() -> None:
    assert wasatch.status_code(wasatch.status_byte(-4)) == -4
    assert wasatch.status_code(2) == 2


def test_eeprom_round_trip_and_offsets() -> None:
    e = wasatch_eeprom.Eeprom(model="WP-785XS", serial="WP-01990", excitation_nm=784.896,
                              wavelength_coeffs=(756.08, 0.1775, -4.1e-5, 1.1e-8, -1.4e-12),
                              active_pixels=1952, detector="IMX385", laser_watchdog_s=30)
    pages = wasatch_eeprom.encode(e)
    assert len(pages) == 9 and all(len(p) == 64 for p in pages)
    # documented offsets (protocols.md §2.4)
    assert pages[0][16:24] == b"WP-01990"
    assert struct.unpack_from("<H", pages[2], 16)[0] == 1952
    assert struct.unpack_from("<f", pages[3], 36)[0] == pytest.approx(784.896, abs=1e-4)
    d = wasatch_eeprom.decode(pages)
    assert (d.model, d.serial, d.active_pixels, d.laser_watchdog_s) == (
        "WP-785XS", "WP-01990", 1952, 30)
    assert d.wavelength_coeffs == pytest.approx(e.wavelength_coeffs, rel=1e-6)
