"""Wasatch ENLIGHTEN CSV exports.

Layout (observed in ENLIGHTEN 4.x exports): about 60 ``key,value`` header lines (``Serial Number``,
``Model``, ``Laser Wavelength``, ``Integration Time`` in ms, ``Scan Averaging``, ``Timestamp``, the
``CCD C0..C4`` wavelength coefficients ...), a blank line, then a column row starting with
``Pixel,`` or ``Wavenumber,`` (e.g. ``Pixel,Wavelength,Wavenumber,Processed``) and numeric rows.
Older exports have only the column row. The axis is the ``Wavenumber`` column (Raman shift, cm-1),
else ``Wavelength`` (nm, converted with the laser wavelength); the intensity is the last column
(``Processed``; the column of that name when other columns follow it).
"""

from __future__ import annotations

from typing import Any

from ramanid.errors import InputError
from ramanid.io._common import PathLike, make_batch, parse_table
from ramanid.spectrum import SpectrumBatch

_COLUMN_ROW = ("pixel,", "wavenumber,", "wavelength,")
_KEYS = {
    "serial number": "device_serial",
    "model": "device_model",
    "laser wavelength": "laser_nm",
    "integration time": "integration_ms",
    "scan averaging": "averages",
    "timestamp": "timestamp",
    "label": "label",
    "measurement id": "measurement_id",
    "enlighten version": "software",
    "detector": "detector",
}


def sniff(lines: list[str]) -> bool:
    """True when the first lines look like an ENLIGHTEN export."""
    if lines and lines[0].startswith("ENLIGHTEN Version"):
        return True
    for line in lines[:120]:
        low = line.strip().lower()
        if low.startswith(_COLUMN_ROW) and ("wavenumber" in low or "wavelength" in low) \
                and "," in low and low.startswith("pixel,"):
            return True
    return False


def _timestamp(value: str) -> str:
    v = value.strip()
    return v.replace(" ", "T", 1) if len(v) >= 19 and v[10] == " " else v


def read_enlighten(text: str, path: PathLike, *, laser_nm: float | None = None) -> SpectrumBatch:
    """Read one ENLIGHTEN CSV export (see the module docstring)."""
    lines = text.split("\n")
    col = next((i for i, ln in enumerate(lines[:400])
                if ln.strip().lower().startswith(_COLUMN_ROW)), None)
    if col is None:
        raise InputError("ENLIGHTEN header found but no 'Pixel,'/'Wavenumber,' column row",
                         source=path, hint="re-export the spectrum from ENLIGHTEN as CSV")
    meta: dict[str, Any] = {"format": "enlighten-csv", "units": "counts"}
    coeffs: dict[int, float] = {}
    for line in lines[:col]:
        key, sep, value = line.partition(",")
        if not sep:
            continue
        k = key.strip().lower()
        if k in _KEYS and value.strip():
            meta[_KEYS[k]] = value.strip()
        elif k.startswith("ccd c") and k[5:].isdigit():
            try:
                coeffs[int(k[5:])] = float(value)
            except ValueError:
                pass
    if "timestamp" in meta:
        meta["timestamp"] = _timestamp(meta["timestamp"])
    if coeffs:
        meta["wavecal_coeffs"] = [coeffs[i] for i in sorted(coeffs)]
    names = [c.strip().lower() for c in lines[col].split(",")]
    rows = [ln for ln in lines[col + 1:] if ln.strip()]
    table = parse_table(rows, ",", False, path)
    if table.shape[0] == 0:
        raise InputError("no data rows after the column row", source=path,
                         hint="re-export the spectrum from ENLIGHTEN")
    if table.shape[1] < 2:
        raise InputError("only one column of numbers; no axis", source=path,
                         hint="the file needs an axis and an intensity column")
    names = names[: table.shape[1]]
    yi = names.index("processed") if "processed" in names else table.shape[1] - 1
    meta["intensity_column"] = names[yi] if yi < len(names) else None
    if "wavenumber" in names:
        x, units = table[:, names.index("wavenumber")], "cm-1"
    elif "wavelength" in names:
        x, units = table[:, names.index("wavelength")], "nm"
    else:
        x, units = table[:, 0], "cm-1"
    return make_batch(x, table[:, yi], [meta], path, x_units=units, laser_nm=laser_nm)
