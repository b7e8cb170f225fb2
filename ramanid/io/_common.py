"""Helpers shared by the format modules: loading bytes, decoding text, numeric tables, axes.

Every failure here raises :class:`ramanid.errors.InputError` with the file as ``source``, so the
CLI prints one line naming the file, the problem and what to do.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ramanid.errors import InputError
from ramanid.spectrum import SpectrumBatch

PathLike = str | os.PathLike[str]

#: keys of :data:`ramanid.spectrum.META_KEYS` whose values are numbers
FLOAT_KEYS = ("laser_nm", "integration_ms")
INT_KEYS = ("averages",)

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def load_bytes(path: PathLike) -> bytes:
    """Read a whole file, turning every OS-level failure into a one-line :class:`InputError`."""
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError("is a directory, not a spectrum file", source=p,
                             hint="give a file, or use `ramanid batch` for a directory")
        data = p.read_bytes()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("file not found", source=p, hint="check the path") from None
    except PermissionError:
        raise InputError("permission denied", source=p,
                         hint="check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", source=p,
                         hint="check the path and the disk") from None
    if not data.strip():
        raise InputError("the file is empty", source=p, hint="re-export the scan")
    return data


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def is_utf16(data: bytes) -> bool:
    """True when ``data`` starts with a UTF-16 byte-order mark (FF FE little-, FE FF big-endian),
    as Windows instrument software and Excel's "Unicode text" write."""
    return data[:2] in _UTF16_BOMS


def _mostly_control(text: str | bytes) -> bool:
    head = text[:4096]
    codes = head if isinstance(head, bytes) else [ord(c) for c in head]
    if 0 in codes:
        return True
    control = sum(1 for b in codes if b < 32 and b not in (9, 10, 13, 12))
    return control > max(2, len(head) // 100)


def is_binary(data: bytes) -> bool:
    """True when ``data`` does not look like text (NUL bytes or many control characters).

    UTF-16 text with a byte-order mark is text: it is judged on its decoded characters.
    """
    if is_utf16(data):
        try:
            return _mostly_control(_decode_utf16(data[:8192]))
        except UnicodeDecodeError:
            return True
    return _mostly_control(data)


def _decode_utf16(data: bytes) -> str:
    """Decode BOM-marked UTF-16; a code unit or surrogate pair cut at the end (a sniffed head)
    is dropped, anything else invalid raises :class:`UnicodeDecodeError`."""
    data = data[:len(data) - len(data) % 2]
    try:
        return data.decode("utf-16")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4 and exc.start > 2:
            return data[:exc.start].decode("utf-16")
        raise


def decode_text(data: bytes, path: PathLike) -> str:
    """Decode a text spectrum file and refuse binary data.

    UTF-16 with a byte-order mark (FF FE / FE FF), UTF-8 with or without BOM, else Latin-1;
    line ends normalised to ``\n``. Every text reader decodes through here.
    """
    if is_binary(data):
        raise InputError("binary data, not a text spectrum file", source=path,
                         hint="give a supported format (CSV/TXT, JCAMP-DX, SPC, ramanid HDF5)")
    if is_utf16(data):
        try:
            text = _decode_utf16(data)
        except UnicodeDecodeError:
            raise InputError("not valid UTF-16 text despite its byte-order mark", source=path,
                             hint="re-export the file as UTF-8 or UTF-16 text") from None
        return text.replace("\r\n", "\n").replace("\r", "\n")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def is_number(token: str) -> bool:
    """True when ``token`` is a plain decimal number (``.`` or ``,`` as decimal mark)."""
    t = token.strip()
    return bool(_NUMBER.match(t)) or t.lower() in ("nan", "inf", "-inf", "+inf")


def parse_table(lines: Sequence[str], sep: str | None, decimal_comma: bool,
                path: PathLike) -> np.ndarray:
    """Parse numeric rows into a 2-D float array; blank cells become NaN.

    Fast path: :func:`numpy.loadtxt` (C parser). Rows with blank cells or ragged lengths take a
    slower per-cell path.
    """
    body = "\n".join(lines)
    if decimal_comma:
        body = body.replace(",", ".")
    delim = sep if sep is not None else None
    try:
        arr = np.loadtxt(io.StringIO(body), delimiter=delim, dtype=np.float64, ndmin=2,
                         comments=None)
        return arr
    except ValueError:
        pass
    rows: list[list[float]] = []
    for line in body.split("\n"):
        if not line.strip():
            continue
        cells = line.split(delim) if delim is not None else line.split()
        row = []
        for c in cells:
            c = c.strip()
            try:
                row.append(float(c) if c else np.nan)
            except ValueError:
                row.append(np.nan)
        rows.append(row)
    if not rows:
        raise InputError("no numeric data found", source=path,
                         hint="the file needs rows of numbers (axis, intensity)")
    width = max(len(r) for r in rows)
    # a trailing separator gives an empty last cell on every row: drop all-NaN trailing columns
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    while out.shape[1] > 1 and np.all(np.isnan(out[:, -1])):
        out = out[:, :-1]
    return out


def to_float(value: Any) -> float | None:
    """Parse a header value as a float (``,`` decimal accepted); ``None`` when impossible."""
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    s = str(value).strip()
    if not s:
        return None
    try:
        return float(s.replace(",", ".")) if s.count(",") == 1 and "." not in s else float(s)
    except ValueError:
        return None


def coerce_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Convert the numeric standard keys to numbers (``None`` when empty or unparsable)."""
    out = dict(meta)
    for k in FLOAT_KEYS:
        if k in out and out[k] is not None:
            f = to_float(out[k])
            out[k] = f if f is not None and f > 0 else None
    for k in INT_KEYS:
        if k in out and out[k] is not None:
            f = to_float(out[k])
            out[k] = int(f) if f is not None and f >= 1 else None
    return out


#: metadata keys whose values are always text (never decoded as numbers)
TEXT_KEYS = frozenset(("source", "scan_id", "name", "device_serial", "device_model", "timestamp",
                       "units", "calibration_id", "operator", "format", "measurement_id",
                       "label", "comment"))


def encode_value(value: Any) -> str:
    """Render a metadata value for a text header: strings as they are, anything else as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str):
        return " ".join(value.split())
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return " ".join(str(value).split())


def decode_value(key: str, text: str | None) -> Any:
    """Inverse of :func:`encode_value` (text keys stay text; JSON numbers/lists are decoded)."""
    if text is None:
        return None
    t = text.strip()
    if key in TEXT_KEYS or not t:
        return t or None  # writers skip None values, so "None" here is a real string
    if t in ("None", "null"):
        return None
    if t[0] in "[{-0123456789" or t in ("true", "false"):
        try:
            return json.loads(t)
        except ValueError:
            return t
    return t


def is_nm_unit(text: str | None) -> bool:
    """True when a unit/column label means wavelength in nanometres."""
    if not text:
        return False
    t = text.lower()
    return bool(re.search(r"\bnm\b|nanomet|wavelength", t)) and "cm" not in t


def make_batch(axis: np.ndarray, intensity: np.ndarray, meta: list[dict[str, Any]],
               path: PathLike, *, x_units: str = "cm-1", laser_nm: float | None = None,
               drop_nonfinite_axis: bool = False) -> SpectrumBatch:
    """Build a checked :class:`SpectrumBatch` from a parsed axis and intensity block.

    Parameters
    ----------
    axis
        1-D x values as found in the file.
    intensity
        ``(n_spectra, n_points)`` or ``(n_points,)`` values.
    meta
        One dict per spectrum (extra keys are kept).
    path
        The file (for error messages and the ``source`` key when missing).
    x_units
        ``"cm-1"`` (Raman shift), ``"nm"`` (wavelength, converted with the laser wavelength),
        or any other unit string (kept as is in ``meta["x_units"]``, for IR/NMR files).
    laser_nm
        Excitation wavelength given by the caller; overrides the file's.
    drop_nonfinite_axis
        Drop points whose x is blank/NaN (instrument exports that leave the axis blank at the
        ends) instead of refusing the file.

    Notes
    -----
    A strictly decreasing axis is flipped. Raman shift (cm-1) = 1e7/laser_nm - 1e7/wavelength_nm
    (``ramanid.calibration.units.wavelength_to_shift``).
    """
    x = np.asarray(axis, dtype=np.float64).ravel()
    y = np.asarray(intensity, dtype=np.float64)
    if y.ndim == 1:
        y = y[np.newaxis, :]
    src = str(path)
    meta = [coerce_meta({**m, "source": src}) for m in meta]
    if laser_nm is not None:
        for m in meta:
            m["laser_nm"] = float(laser_nm)
    if drop_nonfinite_axis:
        keep = np.isfinite(x)
        x, y = x[keep], y[:, keep]
    if x.size == 0:
        raise InputError("no numeric data found", source=src,
                         hint="the file needs rows of numbers (axis, intensity)")
    if x.size < 2:
        raise InputError("only one data point", source=src,
                         hint="a spectrum needs at least two points")
    if not np.all(np.isfinite(x)):
        raise InputError("the spectral axis contains NaN, infinite or blank values", source=src,
                         hint="remove those rows from the file")
    if not np.all(np.isfinite(y)):
        raise InputError("the intensities contain NaN, infinite or blank values", source=src,
                         hint="re-export the scan or remove the bad points")
    if x.size > 1 and np.all(np.diff(x) < 0):
        x, y = x[::-1], y[:, ::-1]
    if x_units == "nm":
        lasers = {m.get("laser_nm") for m in meta}
        if None in lasers or not lasers:
            raise InputError("the axis is wavelength in nm but the laser wavelength is unknown",
                             source=src, hint="pass --laser-nm (e.g. --laser-nm 785)")
        if len(lasers) > 1:
            raise InputError("spectra with different laser wavelengths in one file", source=src,
                             hint="split the file")
        from ramanid.calibration.units import wavelength_to_shift

        x = wavelength_to_shift(x, lasers.pop())
        for m in meta:
            m["x_units"] = "cm-1"
            m["axis_converted_from"] = "nm"
    elif x_units != "cm-1":
        for m in meta:
            m["x_units"] = x_units
    else:
        for m in meta:
            m.setdefault("x_units", "cm-1")
    return SpectrumBatch(x, y, meta)  # checks the axis: repeated or unsorted points


#: What a declared non-Raman x unit says the file is (for the refusal message).
_NOT_RAMAN = {"s": "seconds", "seconds": "seconds", "sec": "seconds", "ms": "milliseconds",
              "us": "microseconds", "ns": "nanoseconds", "min": "minutes", "hours": "hours",
              "days": "days", "years": "years", "m/z": "m/z (a mass spectrum)",
              "mass units": "mass units (a mass spectrum)", "hz": "Hz (an NMR spectrum)",
              "khz": "kHz", "mhz": "MHz", "ghz": "GHz", "ppm": "ppm (an NMR spectrum)",
              "arbitrary": "arbitrary units", "nm (wavelength)": "nm with no laser wavelength",
              "um": "micrometres (an infrared spectrum)"}


def require_raman(batch: SpectrumBatch, source: PathLike | None = None) -> SpectrumBatch:
    """Return ``batch`` if its x axis is Raman shift (cm-1), else raise ``InputError``.

    The readers keep a non-Raman file's own axis (time, m/z, Hz, ppm, ...) and record its unit
    in ``meta["x_units"]``, so such files can still be read and converted; identifying them
    against a Raman library would be meaningless, so commands that identify call this first.
    A wavelength axis read without a laser wavelength is refused with the ``--laser-nm`` hint.
    """
    units = {str(m.get("x_units") or "cm-1") for m in batch.meta} or {"cm-1"}
    bad = sorted(units - {"cm-1"})
    if not bad:
        return batch
    unit = bad[0]
    src = source if source is not None else (batch.meta[0].get("source") if batch.meta else None)
    if unit == "nm (wavelength)":
        raise InputError("the x axis is wavelength in nm and the laser wavelength is unknown, "
                         "so it cannot be turned into Raman shift", source=src,
                         hint="if this is a Raman scan, pass --laser-nm (e.g. --laser-nm 785)")
    what = _NOT_RAMAN.get(unit.lower(), unit)
    raise InputError(f"the x axis is in {what}, not Raman shift (cm-1) or wavelength (nm): "
                     "this is not a Raman spectrum", source=src,
                     hint="check that this is the scan file you meant")
