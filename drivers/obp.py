"""Ocean Binary Protocol (OBP) codec: pure encoder, decoder and incremental stream parser.

No I/O and no clock here. Byte layout (shared/docs/protocols.md §1.2, from SeaBreeze's
``OBPMessage.cpp`` and pyseabreeze ``protocol.py``; all multi-byte fields little-endian):

====== ==== ==========================================================================
offset size field
====== ==== ==========================================================================
0      2    start bytes ``C1 C0``
2      2    protocol version (0x1100 SeaBreeze; 0x1000 in Ocean's STS serial sample)
4      2    flags (response, ACK, ACK requested, NACK, HW error, deprecated)
6      2    error number
8      4    message type
12     4    regarding (user tag echoed by the device)
16     6    reserved (zero)
22     1    checksum type (0 none, 1 MD5)
23     1    immediate data length (0..16)
24     16   immediate data (zero padded)
40     4    bytes remaining = payload length + 16 + 4
44     N    payload (only when the data is longer than 16 bytes)
44+N   16   checksum (MD5 of bytes 0..44+N-1 when type 1, else zero)
60+N   4    footer ``C5 C4 C3 C2``
====== ==== ==========================================================================
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ramanid.drivers.streambuffer import StreamBuffer

START = b"\xc1\xc0"
FOOTER = b"\xc5\xc4\xc3\xc2"
HEADER_LEN = 44
TRAILER_LEN = 20  # checksum (16) + footer (4)
MIN_FRAME = HEADER_LEN + TRAILER_LEN  # 64
MAX_IMMEDIATE = 16

VERSION_SEABREEZE = 0x1100
VERSION_STS_SAMPLE = 0x1000

FLAG_RESPONSE = 0x0001
FLAG_ACK = 0x0002
FLAG_ACK_REQUESTED = 0x0004
FLAG_NACK = 0x0008
FLAG_HW_ERROR = 0x0010
FLAG_PROTOCOL_DEPRECATED = 0x0020

CHECKSUM_NONE = 0
CHECKSUM_MD5 = 1

# Message types used by ramanid (OBPMessageTypes.h; protocols.md §1.3).
MSG_RESET = 0x00000000
MSG_GET_HW_REVISION = 0x00000080
MSG_GET_FW_REVISION = 0x00000090
MSG_GET_SERIAL = 0x00000100
MSG_GET_SERIAL_LENGTH = 0x00000101
MSG_GET_BAUD = 0x00000800
MSG_SET_BAUD = 0x00000810
MSG_SAVE_RS232 = 0x000008F0
MSG_ABORT = 0x00100000
MSG_GET_RAW_SPECTRUM = 0x00101100
MSG_GET_INTEGRATION = 0x00110000
MSG_SET_INTEGRATION = 0x00110010
MSG_SET_TRIGGER_MODE = 0x00110110
MSG_SET_LAMP_ENABLE = 0x00110410
MSG_GET_AVERAGES = 0x00120000
MSG_SET_AVERAGES = 0x00120010
MSG_GET_BOXCAR = 0x00121000
MSG_SET_BOXCAR = 0x00121010
MSG_GET_WL_COEFF_COUNT = 0x00180100
MSG_GET_WL_COEFF = 0x00180101
MSG_GET_NL_COEFF_COUNT = 0x00181100
MSG_GET_NL_COEFF = 0x00181101
MSG_GET_TEMPERATURES = 0x00400002

_HEAD = struct.Struct("<2sHHHII6sBB16sI")
assert _HEAD.size == HEADER_LEN


class FrameError(ValueError):
    """A byte sequence that is not a valid OBP message (the reason is the message)."""


@dataclass(frozen=True)
class Message:
    """One OBP message.

    Parameters
    ----------
    msg_type
        Message type code (e.g. :data:`MSG_GET_SERIAL`).
    data
        Message data; up to 16 bytes travel in the immediate field, longer data as payload.
    flags
        Flag bits (``FLAG_*``).
    errno
        Error number (0 = success).
    regarding
        User tag echoed by the device.
    version
        Protocol version field.
    checksum_type
        0 = none, 1 = MD5 over everything before the checksum.
    """

    msg_type: int
    data: bytes = b""
    flags: int = 0
    errno: int = 0
    regarding: int = 0
    version: int = VERSION_SEABREEZE
    checksum_type: int = CHECKSUM_NONE

    @property
    def is_nack(self) -> bool:
        """True when the NACK flag is set."""
        return bool(self.flags & FLAG_NACK)

    @property
    def is_ack(self) -> bool:
        """True when the ACK flag is set."""
        return bool(self.flags & FLAG_ACK)

    @property
    def is_response(self) -> bool:
        """True when the response-to-request flag is set."""
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def wire_length(self) -> int:
        """Number of bytes of the encoded message."""
        n = len(self.data)
        return MIN_FRAME + (n if n > MAX_IMMEDIATE else 0)


def encode(msg: Message) -> bytes:
    """Encode ``msg`` into OBP wire bytes.

    Data of up to 16 bytes goes into the immediate field, longer data into the payload.
    """
    data = bytes(msg.data)
    if len(data) > MAX_IMMEDIATE:
        immediate, imm_len, payload = b"", 0, data
    else:
        immediate, imm_len, payload = data, len(data), b""
    head = _HEAD.pack(START, msg.version, msg.flags, msg.errno, msg.msg_type, msg.regarding,
                      b"\0" * 6, msg.checksum_type, imm_len, immediate.ljust(16, b"\0"),
                      len(payload) + TRAILER_LEN)
    body = head + payload
    if msg.checksum_type == CHECKSUM_MD5:
        checksum = hashlib.md5(body).digest()
    else:
        checksum = b"\0" * 16
    return body + checksum + FOOTER


def _decode_unchecked(frame: bytes | memoryview, known_versions: frozenset[int] | None
                      ) -> Message:
    """Decode a complete frame whose length matches ``bytes_remaining`` (checks the rest)."""
    (start, version, flags, errno, msg_type, regarding, _res, ck_type, imm_len, immediate,
     remaining) = _HEAD.unpack_from(frame, 0)
    if start != START:
        raise FrameError("bad start bytes")
    if known_versions is not None and version not in known_versions:
        raise FrameError(f"unknown protocol version 0x{version:04x}")
    if imm_len > MAX_IMMEDIATE:
        raise FrameError(f"immediate length {imm_len} > 16")
    n_payload = remaining - TRAILER_LEN
    if len(frame) != HEADER_LEN + remaining:
        raise FrameError("frame length does not match bytes_remaining")
    if bytes(frame[-4:]) != FOOTER:
        raise FrameError("bad footer")
    if n_payload and imm_len:
        raise FrameError("both immediate data and payload present")
    end = HEADER_LEN + n_payload
    if ck_type == CHECKSUM_MD5:
        if hashlib.md5(frame[:end]).digest() != bytes(frame[end:end + 16]):
            raise FrameError("MD5 checksum mismatch")
    elif ck_type != CHECKSUM_NONE:
        raise FrameError(f"unknown checksum type {ck_type}")
    data = bytes(frame[HEADER_LEN:end]) if n_payload else bytes(immediate[:imm_len])
    return Message(msg_type, data, flags, errno, regarding, version, ck_type)


def decode(frame: bytes, known_versions: frozenset[int] | None = None) -> Message:
    """Decode exactly one OBP message.

    Parameters
    ----------
    frame
        The complete message bytes.
    known_versions
        If given, reject other protocol versions.

    Raises
    ------
    FrameError
        When the bytes are not one valid message (reason in the message).
    """
    frame = bytes(frame)
    if len(frame) < MIN_FRAME:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than 64")
    return _decode_unchecked(frame, known_versions)


@dataclass(frozen=True)
class BadFrame:
    """Stream event: bytes were discarded (garbage or an invalid frame)."""

    reason: str
    discarded: int


class StreamParser(StreamBuffer):
    """Incremental OBP parser: feed bytes in any chunking, get whole messages out.

    It scans for the start bytes ``C1 C0``, checks the header (version, immediate length,
    ``bytes_remaining`` within ``max_payload``), waits for the whole frame, then checks the footer
    and the MD5 checksum when present. After garbage or an invalid frame it resynchronises on the
    next start bytes (a bad frame is skipped from its second byte, so a real frame hidden inside
    it is still found).

    Parameters
    ----------
    max_payload
        Largest payload accepted (guards against a corrupted length field).
    known_versions
        Protocol versions accepted; ``None`` accepts any.
    """

    def __init__(self, max_payload: int = 1 << 20,
                 known_versions: frozenset[int] | None = frozenset(
                     {VERSION_SEABREEZE, VERSION_STS_SAMPLE})) -> None:
        self.max_payload = max_payload
        self.known_versions = known_versions
        super().__init__()

    def needed(self) -> int:
        """Bytes still missing for the frame being assembled (at least 1 when unknown)."""
        buf = self._buf
        if len(buf) < HEADER_LEN or buf[:2] != START:
            return max(1, MIN_FRAME - len(buf))
        remaining = int.from_bytes(buf[40:44], "little")
        return max(1, HEADER_LEN + remaining - len(buf))

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | BadFrame]:
        """Add ``data`` and return the events it completes, in order."""
        buf = self._buf
        buf += data
        if len(buf) < self._wait:
            return []
        self._wait = 0
        out: list[Message | BadFrame] = []
        pos = 0
        n = len(buf)
        while True:
            start = buf.find(START, pos)
            if start < 0:
                # keep a trailing 0xC1 that may be the first start byte
                keep = n - 1 if n > pos and buf[n - 1] == 0xC1 else n
                if keep > pos:
                    out.append(self._garbage(keep - pos))
                pos = keep
                break
            if start > pos:
                out.append(self._garbage(start - pos))
                pos = start
            if n - pos < HEADER_LEN:
                self._wait = HEADER_LEN
                break
            reason = self._check_header(buf, pos)
            if reason:
                out.append(self._bad(reason, 1))
                pos += 1
                continue
            total = HEADER_LEN + int.from_bytes(buf[pos + 40:pos + 44], "little")
            if n - pos < total:
                self._wait = total
                break
            try:
                msg = _decode_unchecked(memoryview(buf)[pos:pos + total], None)
            except FrameError as exc:
                out.append(self._bad(str(exc), 1))
                pos += 1
                continue
            out.append(msg)
            pos += total
        if pos:
            del buf[:pos]
        return out

    def _check_header(self, buf: bytearray, pos: int) -> str:
        version = buf[pos + 2] | (buf[pos + 3] << 8)
        if self.known_versions is not None and version not in self.known_versions:
            return f"unknown protocol version 0x{version:04x}"
        if buf[pos + 23] > MAX_IMMEDIATE:
            return "immediate length > 16"
        if buf[pos + 22] > CHECKSUM_MD5:
            return "unknown checksum type"
        remaining = int.from_bytes(buf[pos + 40:pos + 44], "little")
        if remaining < TRAILER_LEN or remaining - TRAILER_LEN > self.max_payload:
            return f"implausible bytes_remaining {remaining}"
        return ""

    def _garbage(self, n: int) -> BadFrame:
        self.garbage_bytes += n
        return BadFrame("garbage before start bytes", n)

    def _bad(self, reason: str, n: int) -> BadFrame:
        self.bad_frames += 1
        self.garbage_bytes += n
        return BadFrame(reason, n)
