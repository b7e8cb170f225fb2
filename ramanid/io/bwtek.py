"""B&W Tek (BWSpec / BWRam 4.x) text exports.

Layout (observed in BWSpec4.11 / BWRam4.11 exports): about 88 ``key;value`` header lines with
``,`` as decimal mark (``laser_wavelength;784,82``, ``intigration times(ms);3200``,
``average number``, ``model``, ``title``, ``c code``, ``Date``, ``coefs_a0..a3`` pixel->wavelength
polynomial). The exports carry no field named serial number; ``c code`` is constant per unit and
differs between units in the CHARISMA data (RUW, SDI, TUO, SBF), so it is used as
``device_serial``., then the column row
``Pixel;Wavelength;Wavenumber;Raman Shift;Dark;Reference;Raw data #1;Dark Subtracted #1;...``
and ``;``-separated rows. Pixels outside the calibrated range have blank axis cells; those rows are
dropped. The spectrum is ``Raman Shift`` (cm-1, may start below 0 near the laser line) and
``Dark Subtracted #1``.

:func:`read_columns` returns every column by name (pixel, wavelength, dark, raw ...) for
calibration work that needs the raw pixel axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ramanid.errors import InputError
from ramanid.io._common import PathLike, decode_text, load_bytes, make_batch, parse_table, to_float
from ramanid.spectrum import SpectrumBatch

_KEYS = {
    "laser_wavelength": "laser_nm",
    "intigration times(ms)": "integration_ms",
    "integration times(ms)": "integration_ms",
    "average number": "averages",
    "model": "device_model",
    "title": "device_title",
    "c code": "device_serial",  # per-unit code; the exports carry no other serial number
    "operator": "operator",
    "date": "timestamp",
    "file version": "software",
}


def sniff(lines: list[str]) -> bool:
    """True when the text looks like a B&W Tek export."""
    if lines and lines[0].startswith("File Version;BW"):
        return True
    return any(ln.startswith("Pixel;Wavelength;") for ln in lines[:200])


def _split(text: str, path: PathLike) -> tuple[dict[str, Any], list[str], list[str]]:
    lines = text.split("\n")
    col = next((i for i, ln in enumerate(lines[:400]) if ln.startswith("Pixel;")), None)
    if col is None:
        raise InputError("B&W Tek header found but no 'Pixel;...' column row", source=path,
                         hint="re-export the spectrum from BWSpec with all columns")
    header: dict[str, Any] = {}
    for ln in lines[:col]:
        key, sep, value = ln.partition(";")
        if sep:
            header[key.strip()] = value.strip()
    names = [c.strip() for c in lines[col].split(";")]
    while names and not names[-1]:
        names.pop()
    return header, names, [ln for ln in lines[col + 1:] if ln.strip()]


def read_columns(path: PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return the raw header (``key -> text``) and every numeric column by its name.

    Blank cells are NaN. Use this for calibration work on the pixel or wavelength axis.
    """
    data = load_bytes(path)
    header, names, rows = _split(decode_text(data, path), path)
    table = parse_table(rows, ";", True, path)
    return header, {n: table[:, i] for i, n in enumerate(names) if i < table.shape[1]}


def read_bwtek(text: str, path: PathLike, *, laser_nm: float | None = None) -> SpectrumBatch:
    """Read a B&W Tek export: ``Raman Shift`` axis, ``Dark Subtracted #1`` intensity."""
    header, names, rows = _split(text, path)
    table = parse_table(rows, ";", True, path)
    cols = {n: i for i, n in enumerate(names) if i < table.shape[1]}
    meta: dict[str, Any] = {"format": "bwtek", "units": "counts"}
    low = {k.lower(): v for k, v in header.items()}
    for key, std in _KEYS.items():
        if low.get(key):
            meta[std] = low[key]
    for k in ("laser_nm", "integration_ms"):
        if k in meta:
            meta[k] = to_float(meta[k])
    if meta.get("timestamp"):
        meta["timestamp"] = str(meta["timestamp"]).replace(" ", "T", 1)
    coefs = [to_float(low.get(f"coefs_a{i}")) for i in range(4)]
    if all(c is not None for c in coefs):
        meta["wavecal_coeffs"] = coefs
    ycol = next((n for n in ("Dark Subtracted #1", "Raw data #1") if n in cols), None)
    if ycol is None:
        raise InputError("no 'Dark Subtracted #1' column", source=path,
                         hint="re-export the spectrum from BWSpec with all columns")
    meta["intensity_column"] = ycol
    y = table[:, cols[ycol]]
    if "Raman Shift" in cols and np.isfinite(table[:, cols["Raman Shift"]]).sum() >= 2:
        x, units = table[:, cols["Raman Shift"]], "cm-1"
    elif "Wavelength" in cols and np.isfinite(table[:, cols["Wavelength"]]).sum() >= 2:
        x, units = table[:, cols["Wavelength"]], "nm"
    else:
        raise InputError("neither the Raman Shift nor the Wavelength column holds values",
                         source=path, hint="calibrate the spectrometer in BWSpec and re-export")
    return make_batch(x, y, [meta], path, x_units=units, laser_nm=laser_nm,
                      drop_nonfinite_axis=True)
