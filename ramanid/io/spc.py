"""Galactic / Thermo SPC binary spectra, written from the published file-format description.

Source of the layout: Galactic Industries, "SPC file format" (GSPCIO / SPC.H description of the
``SPCHDR``, ``OSPCHDR``, ``SUBHDR`` and ``LOGSTC`` structures, 1996-1997), as republished by
Thermo Scientific. Facts used:

* Byte 1 (``fversn``): ``0x4B`` new format little-endian, ``0x4C`` new format big-endian,
  ``0x4D`` old (LabCalc) format.
* Byte 0 (``ftflgs``): ``0x01`` 16-bit integer Y, ``0x04`` multifile, ``0x08`` random Z,
  ``0x10`` ordered Z, ``0x20`` axis labels in ``fcatxt``, ``0x40`` XYXY (each subfile has its own
  X array), ``0x80`` an X array (float32) follows the main header.
* New header, 512 bytes: ``fexper`` u8 @2 (technique; 11 = Raman), ``fexp`` i8 @3, ``fnpts``
  i32 @4, ``ffirst`` f64 @8, ``flast`` f64 @16, ``fnsub`` i32 @24, ``fxtype``/``fytype``/
  ``fztype`` u8 @28-30, ``fdate`` u32 @32 (minute bits 0-5, hour 6-10, day 11-15, month 16-19,
  year 20-31), ``fres`` 9 chars @36, ``fsource`` 9 chars @45, ``fcmnt`` 130 chars @88,
  ``fcatxt`` 30 chars @218, ``flogoff`` i32 @248.
* Old header, 256 bytes: ``oexp`` i16 @2, ``onpts`` f32 @4, ``ofirst`` f32 @8, ``olast`` f32
  @12, ``oxtype``/``oytype`` u8 @16-17, year u16 @18, month/day/hour/minute u8 @20-23,
  ``ocmnt`` 130 chars @64; the first subfile header sits at byte 224 and its data at 256.
  Old-format 32-bit Y values are stored with their two 16-bit words swapped.
* Subfile header, 32 bytes: ``subflgs`` u8 @0, ``subexp`` i8 @1, ``subindx`` u16 @2,
  ``subtime`` f32 @4 (Z), ``subnext`` f32 @8, ``subnois`` f32 @12, ``subnpts`` i32 @16 (XYXY),
  ``subscan`` i32 @20, ``subwlevel`` f32 @24.
* Y values: float32 when the exponent is ``0x80`` (-128); otherwise integers scaled by
  ``2**(exp-32)`` (32-bit) or ``2**(exp-16)`` (16-bit).
* Y units codes (``fytype``, those used here): 0 arbitrary, 1 interferogram, 2 absorbance,
  3 Kubelka-Munk, 4 counts, 5 volts, 11 percent, 12 intensity, 13 relative intensity,
  128 transmission, 129 reflectance, 131 emission.
* X units codes (``fxtype``): 0 arbitrary, 1 cm-1, 2 um, 3 nm, 4 s, 5 min, 6 Hz, 7 kHz,
  8 MHz, 9 m/z, 10 ppm, 11 days, 12 years, 13 Raman shift cm-1, 14 eV, 16 diode number,
  17 channel, 18 degrees, 19 degF, 20 degC, 21 K, 22 data points, 23 ms, 24 us, 25 ns, 26 GHz,
  27 cm, 28 m, 29 mm, 30 hours.
* Log block at ``flogoff``: ``logsizd`` i32, ``logsizm`` i32, ``logtxto`` i32 (offset of the
  ``key=value`` text, CR-LF separated, NUL terminated, from the block start).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ramanid.errors import InputError
from ramanid.io._common import PathLike, make_batch, to_float
from ramanid.spectrum import SpectrumBatch

TSPREC, TCGRAM, TMULTI, TRANDM, TORDRD, TALABS, TXYXYS, TXVALS = (1, 2, 4, 8, 16, 32, 64, 128)
NEW_LSB, NEW_MSB, OLD = 0x4B, 0x4C, 0x4D
X_UNITS = {0: "arbitrary", 1: "cm-1", 2: "um", 3: "nm", 4: "s", 5: "min", 6: "Hz", 7: "kHz",
           8: "MHz", 9: "m/z", 10: "ppm", 11: "days", 12: "years", 13: "cm-1", 14: "eV",
           15: "text labels", 16: "diode number", 17: "channel", 18: "degrees", 19: "degF",
           20: "degC", 21: "K", 22: "data points", 23: "ms", 24: "us", 25: "ns", 26: "GHz",
           27: "cm", 28: "m", 29: "mm", 30: "hours", 255: "double interferogram"}
Y_UNITS = {0: "arbitrary", 1: "interferogram", 2: "absorbance", 3: "Kubelka-Munk", 4: "counts",
           5: "volts", 11: "percent", 12: "intensity", 13: "relative intensity",
           128: "transmission", 129: "reflectance", 131: "emission"}
EXPERIMENTS = {0: "general", 1: "gas chromatogram", 2: "chromatogram", 3: "HPLC", 4: "FT-IR",
               5: "NIR", 7: "UV-VIS", 8: "X-ray diffraction", 9: "mass spectrum", 10: "NMR",
               11: "Raman", 12: "fluorescence", 13: "atomic", 14: "chromatography diode array"}
_LASER_KEYS = ("laser", "laser wavelength", "laser_wavelength", "excitation", "laserwavelength",
               "excitation wavelength")


def sniff(data: bytes) -> bool:
    """True when ``data`` starts like an SPC file (version byte 0x4B, 0x4C or 0x4D)."""
    return len(data) >= 256 and data[1] in (NEW_LSB, NEW_MSB, OLD)


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def _need(data: bytes, end: int, path: PathLike, what: str) -> None:
    if end > len(data):
        raise InputError(f"SPC file truncated in {what} (needs {end} bytes, has {len(data)})",
                         source=path, hint="the file is incomplete; copy it again")


def _y_values(data: bytes, off: int, n: int, exp: int, flags: int, old: bool, end: str,
              path: PathLike) -> tuple[np.ndarray, int]:
    """Decode ``n`` ordinates at ``off``; returns (values, next offset)."""
    if exp == -128:
        _need(data, off + 4 * n, path, "Y data")
        return np.frombuffer(data, f"{end}f4", n, off).astype(np.float64), off + 4 * n
    if flags & TSPREC:
        _need(data, off + 2 * n, path, "Y data")
        raw = np.frombuffer(data, f"{end}i2", n, off).astype(np.float64)
        return raw * 2.0 ** (exp - 16), off + 2 * n
    _need(data, off + 4 * n, path, "Y data")
    if old:  # 32-bit values with the 16-bit words swapped
        words = np.frombuffer(data, "<u2", 2 * n, off).reshape(n, 2).astype(np.uint32)
        raw = ((words[:, 0] << 16) | words[:, 1]).view(np.int32).astype(np.float64)
    else:
        raw = np.frombuffer(data, f"{end}i4", n, off).astype(np.float64)
    return raw * 2.0 ** (exp - 32), off + 4 * n


def _log(data: bytes, logoff: int, end: str) -> dict[str, str]:
    if logoff <= 0 or logoff + 64 > len(data):
        return {}
    _sizd, _sizm, txto = struct.unpack_from(f"{end}iii", data, logoff)
    start = logoff + txto
    if txto <= 0 or start >= len(data):
        return {}
    text = _text(data[start:start + 65536]).replace("\r", "\n")
    out = {}
    for line in text.split("\n"):
        k, eq, v = line.partition("=")
        if eq and k.strip():
            out[k.strip()] = v.strip()
    return out


def _date(code: int) -> str | None:
    if not code:
        return None
    minute, hour = code & 0x3F, (code >> 6) & 0x1F
    day, month, year = (code >> 11) & 0x1F, (code >> 16) & 0x0F, code >> 20
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00"


def read_spc(data: bytes, path: PathLike, *, laser_nm: float | None = None
             ) -> list[SpectrumBatch]:
    """Read every subfile of an SPC file; one batch per distinct X axis.

    Non-Raman files (IR, NMR, MS ...) are read too; their x units are in ``meta["x_units"]``.
    """
    if len(data) < 2 or data[1] not in (NEW_LSB, NEW_MSB, OLD):
        raise InputError("not an SPC file (unknown version byte)", source=path,
                         hint="the file may be damaged or in another format")
    _need(data, 256, path, "the main header")
    flags, version = data[0], data[1]
    old = version == OLD
    end = ">" if version == NEW_MSB else "<"
    meta: dict[str, Any] = {"format": "spc"}
    if old:
        exp, onpts, first, last, xt, yt = struct.unpack_from("<hfffBB", data, 2)
        meta["units"] = Y_UNITS.get(yt)
        year, month, day, hour, minute = struct.unpack_from("<HBBBB", data, 18)
        npts = int(onpts) if np.isfinite(onpts) and abs(onpts) < 2**31 else 0
        nsub = None
        technique = None
        meta["comment"] = _text(data[64:194])
        if 1 <= month <= 12 and 1 <= day <= 31:
            meta["timestamp"] = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00"
        logs: dict[str, str] = {}
        off = 224  # first subheader is part of the 256-byte old header
        xarr = None
    else:
        _need(data, 512, path, "the main header")
        exp = struct.unpack_from("b", data, 3)[0]
        technique = data[2]
        npts, first, last, nsub = struct.unpack_from(f"{end}iddi", data, 4)
        xt, yt = data[28], data[29]
        meta["units"] = Y_UNITS.get(yt)
        meta["timestamp"] = _date(struct.unpack_from(f"{end}I", data, 32)[0])
        meta["resolution"] = _text(data[36:45]) or None
        meta["device_model"] = _text(data[45:54]) or None
        meta["comment"] = _text(data[88:218]) or None
        logs = _log(data, struct.unpack_from(f"{end}i", data, 248)[0], end)
        off = 512
        xarr = None
        if flags & TXVALS and not flags & TXYXYS:
            _need(data, off + 4 * npts, path, "the X array")
            xarr = np.frombuffer(data, f"{end}f4", npts, off).astype(np.float64)
            off += 4 * npts
    meta["experiment"] = EXPERIMENTS.get(technique) if technique is not None else None
    x_units = X_UNITS.get(xt, f"code {xt}")
    raman = technique == 11 or xt == 13
    if x_units == "nm" and not raman and laser_nm is None:
        x_units = "nm (wavelength)"
    for k, v in logs.items():
        if k.strip().lower() in _LASER_KEYS and to_float(v.split()[0] if v.split() else ""):
            meta["laser_nm"] = to_float(v.split()[0])
    freq = to_float(logs.get("RAMANFREQ"))  # FT-Raman (Nicolet): laser line in cm-1
    if freq and "laser_nm" not in meta:
        meta["laser_nm"] = 1e7 / freq
    if logs:
        meta["log"] = "; ".join(f"{k}={v}" for k, v in list(logs.items())[:40])
    multi = bool(flags & TMULTI)
    if not multi:
        nsub = 1
    spectra: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = []
    i = 0
    width = 2 if flags & TSPREC and exp != -128 else 4
    while (nsub is None and off + 32 + width * max(npts, 1) <= len(data)) or (
            nsub is not None and i < nsub):
        _need(data, off + 32, path, f"subfile {i} header")
        sexp = struct.unpack_from("b", data, off + 1)[0]
        z, = struct.unpack_from(f"{end}f", data, off + 4)
        snpts, = struct.unpack_from(f"{end}i", data, off + 16)
        off += 32  # (old format: the first subheader is bytes 224-255 of the main header)
        n = snpts if flags & TXYXYS else npts
        if n <= 0:
            raise InputError(f"subfile {i} has {n} points", source=path,
                             hint="the SPC file is damaged")
        # per-subfile exponent in new-format multifiles; float Y whenever fexp says so
        e = sexp if multi and exp != -128 else exp
        if flags & TXYXYS:  # own X array after each subheader (also seen without TMULTI)
            _need(data, off + 4 * n, path, f"subfile {i} X array")
            x = np.frombuffer(data, f"{end}f4", n, off).astype(np.float64)
            off += 4 * n
        elif xarr is not None:
            x = xarr
        else:
            x = np.linspace(first, last, n) if n > 1 else np.asarray([first], dtype=np.float64)
        y, off = _y_values(data, off, n, e, flags, old, end, path)
        m = {**meta, "subfile": i, "z": float(z)}
        spectra.append((x, y, m))
        i += 1
    out: list[SpectrumBatch] = []
    for x, y, m in spectra:
        b = make_batch(x, y, [m], path, x_units=x_units, laser_nm=laser_nm)
        if out and out[-1].axis.shape == b.axis.shape and np.array_equal(out[-1].axis, b.axis):
            out[-1] = SpectrumBatch.concat([out[-1], b])
        else:
            out.append(b)
    if not out:
        raise InputError("the SPC file holds no spectra", source=path,
                         hint="the file is empty or damaged")
    return out
