"""Wasatch OEM "WP Raman" UART codec: pure frame encoder, decoder and incremental stream parser.

No I/O and no clock here. Framing (shared/docs/protocols.md §2.2, from Wasatch's
OEM_Serial_Example_WPF client and ENG-0150 SPI code, which agree):

===== ==================================================================================
byte  field
===== ==================================================================================
0     ``<`` (0x3C)
1     length MSB
2     length LSB; length = 1 + number of data bytes (it counts the command byte)
3     command; +0x80 = write/set, plain = read/get
4..   data (multi-byte integers least significant byte first)
next  CRC-8/Maxim over bytes 1 .. last data byte
last  ``>`` (0x3E)
===== ==================================================================================

Replies use the same framing; a reply to a SET carries one status byte at offset 4 (WPF client).
The spectrum that follows ``AcquireImage`` is raw pixel bytes without any framing; the driver
reads it by count (see :mod:`ramanid.drivers.wasatch_device`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ramanid.drivers.crc import CRC8_MAXIM_TABLE, crc8_maxim
from ramanid.drivers.streambuffer import StreamBuffer

START = 0x3C
END = 0x3E
WRITE_BIT = 0x80
BAUD = 921_600

# UART command table (WPF client enum; protocols.md §2.2). The write form adds 0x80.
CMD_ACQUIRE = 0x0A
CMD_FIRMWARE_REV = 0x0D
CMD_FPGA_REV = 0x10
CMD_INTEGRATION = 0x11
CMD_CCD_OFFSET = 0x13
CMD_CCD_GAIN = 0x14
CMD_PIXEL_COUNT = 0x15
CMD_TEC_SETPOINT = 0x16
CMD_ACTUAL_INTEGRATION = 0x1F
CMD_ACTUAL_FRAMES = 0x20
CMD_TEST_PATTERN = 0x30
CMD_LASER_MOD = 0x33
CMD_LASER = 0x34
CMD_TEC_ENABLE = 0x38
CMD_CCD_TEMPERATURE = 0x49
CMD_PING = 0x4B
# EEPROM over UART is not documented; ramanid infers the ENG-0150 (SPI) register pair:
# write register 0x30 (= 0xB0 with the write bit) with 0x40 + page, then read 0x31 (64 bytes).
# It is a profile option of the driver and the simulator ([inferred], protocols.md §2.2).
CMD_EEPROM_SELECT = 0x30
CMD_EEPROM_READ = 0x31

STATUS_SUCCESS = 0
STATUS_LENGTH = 1
STATUS_CRC = 2
STATUS_UNRECOGNIZED = 3


class FrameError(ValueError):
    """A byte sequence that is not a valid Wasatch frame (the reason is the message)."""


@dataclass(frozen=True)
class Frame:
    """One Wasatch UART frame.

    Parameters
    ----------
    command
        The command byte as sent on the wire (write bit included).
    data
        Data bytes after the command byte.
    """

    command: int
    data: bytes = b""

    @property
    def is_write(self) -> bool:
        """True for a SET (write bit 0x80)."""
        return bool(self.command & WRITE_BIT)

    @property
    def base_command(self) -> int:
        """The command without the write bit."""
        return self.command & 0x7F


def encode(command: int, data: bytes = b"", *, write: bool = False) -> bytes:
    """Encode one frame.

    Parameters
    ----------
    command
        Command code (0..0xFF); ``write=True`` adds the write bit 0x80.
    data
        Data bytes (integers least significant byte first).
    write
        Set the write bit.
    """
    cmd = (command | WRITE_BIT) if write else command
    length = 1 + len(data)
    if not 0 <= cmd <= 0xFF or length > 0xFFFF:
        raise ValueError("command must be a byte and data shorter than 65535")
    body = bytes((length >> 8, length & 0xFF, cmd)) + bytes(data)
    return bytes((START,)) + body + bytes((crc8_maxim(body), END))


def encode_frame(frame: Frame) -> bytes:
    """Encode a :class:`Frame` (its ``command`` already carries the write bit)."""
    return encode(frame.command, frame.data)


def status_byte(code: int) -> int:
    """Wire byte of a status code (negative codes as two's complement, [unverified])."""
    return code & 0xFF


def status_code(byte: int) -> int:
    """Status code of a wire byte (inverse of :func:`status_byte`)."""
    return byte - 256 if byte >= 0x80 else byte


def decode(frame: bytes) -> Frame:
    """Decode exactly one frame.

    Raises
    ------
    FrameError
        Bad start/end byte, length that does not match, or CRC mismatch.
    """
    frame = bytes(frame)
    if len(frame) < 6:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than 6")
    if frame[0] != START:
        raise FrameError("bad start byte")
    length = (frame[1] << 8) | frame[2]
    if length < 1 or len(frame) != length + 5:
        raise FrameError("length field does not match the frame")
    if frame[-1] != END:
        raise FrameError("bad end byte")
    if crc8_maxim(frame[1:3 + length]) != frame[3 + length]:
        raise FrameError("CRC mismatch")
    return Frame(frame[3], frame[4:3 + length])


@dataclass(frozen=True)
class BadFrame:
    """Stream event: bytes were discarded (garbage or an invalid frame)."""

    reason: str
    discarded: int
    command: int | None = None


class StreamParser(StreamBuffer):
    """Incremental Wasatch frame parser: feed bytes in any chunking, get frames out.

    It scans for ``<``, reads the 16-bit length, waits for the whole frame, checks CRC and ``>``;
    on a bad frame it reports it and resynchronises from the byte after the ``<``.

    Parameters
    ----------
    max_length
        Largest length field accepted (guards against corrupted lengths).
    """

    def __init__(self, max_length: int = 512) -> None:
        self.max_length = max_length
        super().__init__()

    def take_raw(self, n: int) -> bytes:
        """Remove and return up to ``n`` buffered bytes without parsing them (raw streams)."""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | BadFrame]:
        """Add ``data`` and return the frames and bad-frame events it completes, in order."""
        buf = self._buf
        buf += data
        if len(buf) < self._wait:
            return []
        self._wait = 0
        out: list[Frame | BadFrame] = []
        pos = 0
        n = len(buf)
        table = CRC8_MAXIM_TABLE
        while True:
            start = buf.find(START, pos)
            if start < 0:
                if n > pos:
                    out.append(self._discard("garbage before start byte", n - pos, False))
                pos = n
                break
            if start > pos:
                out.append(self._discard("garbage before start byte", start - pos, False))
                pos = start
            if n - pos < 3:
                break
            length = (buf[pos + 1] << 8) | buf[pos + 2]
            if length < 1 or length > self.max_length:
                out.append(self._discard(f"implausible length {length}", 1, True))
                pos += 1
                continue
            total = length + 5
            if n - pos < total:
                self._wait = total
                break
            end = pos + 3 + length
            crc = 0
            for b in buf[pos + 1:end]:
                crc = table[crc ^ b]
            if buf[end + 1] != END:
                out.append(self._discard("bad end byte", 1, True, buf[pos + 3]))
                pos += 1
                continue
            if crc != buf[end]:
                out.append(self._discard("CRC mismatch", 1, True, buf[pos + 3]))
                pos += 1
                continue
            out.append(Frame(buf[pos + 3], bytes(buf[pos + 4:end])))
            pos += total
        if pos:
            del buf[:pos]
        return out

    def _discard(self, reason: str, n: int, bad: bool, command: int | None = None) -> BadFrame:
        self.garbage_bytes += n
        if bad:
            self.bad_frames += 1
        return BadFrame(reason, n, command)
