"""Wasatch ENG-0034 EEPROM: the fields ramanid needs, as a pure encoder/decoder of 64-byte pages.

Offsets (page:byte) from Wasatch.PY ``EEPROM.py`` as tabulated in shared/docs/protocols.md §2.4;
scalars little-endian [inferred there]. Only the fields below are read or written; other bytes
are kept as they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PAGE_SIZE = 64
N_PAGES = 9


@dataclass
class Eeprom:
    """Decoded EEPROM fields.

    Parameters
    ----------
    model, serial
        Page 0 strings (16 bytes each).
    excitation_nm
        Laser wavelength; page 3:36 float (format >= 4), else page 0:39 u16.
    wavelength_coeffs
        c0..c3 from page 1, plus c4 from page 2:21 when format >= 8.
    active_pixels
        Active horizontal pixels (page 2:16).
    has_laser, has_cooling
        Page 0 feature flags.
    min_integration_ms, max_integration_ms
        Page 3:40 / 3:44 (format >= 5).
    laser_watchdog_s
        Page 3:52.
    detector
        Detector name (page 2:0).
    format
        Layout version (page 0:63).
    """

    model: str = ""
    serial: str = ""
    excitation_nm: float = 0.0
    wavelength_coeffs: tuple[float, ...] = ()
    active_pixels: int = 0
    has_laser: bool = True
    has_cooling: bool = False
    min_integration_ms: int = 1
    max_integration_ms: int = 0xFFFFFF
    laser_watchdog_s: int = 0
    detector: str = ""
    format: int = 15
    extra: dict[str, object] = field(default_factory=dict)


def _str(page: bytes, off: int, n: int) -> str:
    return page[off:off + n].split(b"\0", 1)[0].decode("ascii", "replace").strip()


def decode(pages: list[bytes]) -> Eeprom:
    """Decode pages 0..3 (each 64 bytes) into :class:`Eeprom`."""
    if len(pages) < 4 or any(len(p) != PAGE_SIZE for p in pages[:4]):
        raise ValueError("need four 64-byte EEPROM pages")
    p0, p1, p2, p3 = (bytes(p) for p in pages[:4])
    fmt = p0[63]
    coeffs = list(struct.unpack_from("<4f", p1, 0))
    if fmt >= 8:
        coeffs.append(struct.unpack_from("<f", p2, 21)[0])
    exc_u16 = struct.unpack_from("<H", p0, 39)[0]
    exc_f = struct.unpack_from("<f", p3, 36)[0] if fmt >= 4 else 0.0
    excitation = float(exc_f) if exc_f > 0 else float(exc_u16)
    e = Eeprom(
        model=_str(p0, 0, 16), serial=_str(p0, 16, 16), excitation_nm=excitation,
        wavelength_coeffs=tuple(float(c) for c in coeffs),
        active_pixels=struct.unpack_from("<H", p2, 16)[0],
        has_cooling=bool(p0[36]), has_laser=bool(p0[38]),
        detector=_str(p2, 0, 16), format=fmt, laser_watchdog_s=struct.unpack_from("<H", p3, 52)[0],
    )
    if fmt >= 5:
        e.min_integration_ms, e.max_integration_ms = struct.unpack_from("<II", p3, 40)
    return e


def encode(e: Eeprom) -> list[bytes]:
    """Encode :class:`Eeprom` into nine 64-byte pages (unused bytes zero)."""
    pages = [bytearray(PAGE_SIZE) for _ in range(N_PAGES)]
    p0, p1, p2, p3 = pages[:4]
    p0[0:16] = e.model.encode("ascii")[:16].ljust(16, b"\0")
    p0[16:32] = e.serial.encode("ascii")[:16].ljust(16, b"\0")
    struct.pack_into("<I", p0, 32, 921_600)
    p0[36], p0[38] = int(e.has_cooling), int(e.has_laser)
    struct.pack_into("<H", p0, 39, round(e.excitation_nm) & 0xFFFF)
    p0[63] = e.format
    coeffs = list(e.wavelength_coeffs) + [0.0] * (5 - len(e.wavelength_coeffs))
    struct.pack_into("<4f", p1, 0, *coeffs[:4])
    p2[0:16] = e.detector.encode("ascii")[:16].ljust(16, b"\0")
    struct.pack_into("<H", p2, 16, e.active_pixels)
    struct.pack_into("<f", p2, 21, coeffs[4])
    struct.pack_into("<H", p2, 25, e.active_pixels)
    struct.pack_into("<f", p3, 36, e.excitation_nm)
    struct.pack_into("<II", p3, 40, e.min_integration_ms, e.max_integration_ms)
    struct.pack_into("<H", p3, 52, e.laser_watchdog_s)
    return [bytes(p) for p in pages]
