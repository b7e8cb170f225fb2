"""Generic delimited text spectra (CSV/TXT) and Horiba LabSpec two-column text exports.

Layout accepted: optional header lines (``# key: value`` metadata written by ramanid, LabSpec
``#key=value`` lines, free text, one column-name row), then rows of numbers separated by any of
``,`` ``;`` tab or spaces, with ``.`` or ``,`` as decimal mark. The first column is the axis; the
remaining columns are spectra (one column = one spectrum). A descending axis is flipped. An axis
column named like ``wavelength`` or ``nm`` is wavelength and is converted to Raman shift with the
laser wavelength.

ramanid's own CSV writer (:func:`write_csv`) puts the metadata in ``# key: value`` lines
(``# [i] key: value`` for the i-th spectrum when spectra differ) and this reader restores it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ramanid.errors import InputError
from ramanid.io._common import (
    PathLike,
    decode_value,
    encode_value,
    is_nm_unit,
    is_number,
    make_batch,
    parse_table,
    to_float,
)
from ramanid.spectrum import META_KEYS, SpectrumBatch

CSV_MAGIC = "# ramanid csv 1"
_SEPS: tuple[str | None, ...] = ("\t", ";", ",", None)
_META_LINE = re.compile(r"^#\s*(?:\[(\d+)\]\s*)?([A-Za-z_][\w .%()/-]*?)\s*[:=]\s*(.*)$")
# LabSpec header names (Horiba) -> standard metadata keys
_LABSPEC_KEYS = {
    "laser": "laser_nm", "laser (nm)": "laser_nm", "acq. time (s)": "integration_s",
    "acq. time": "integration_s", "accumulations": "averages", "date": "timestamp",
    "title": "name", "instrument": "device_model", "detector": "detector",
}


def _split_fields(line: str, sep: str | None) -> list[str]:
    return line.split(sep) if sep is not None else line.split()


def _row_numeric(line: str, sep: str | None) -> int:
    """Number of numeric fields if every non-empty field of ``line`` is a number, else 0."""
    fields = [f for f in _split_fields(line.strip(), sep)]
    if sep is not None and fields and not fields[-1].strip():
        fields = fields[:-1]  # trailing separator
    if len(fields) < 1:
        return 0
    for f in fields:
        f = f.strip()
        if not f or not is_number(f):
            return 0
        if sep == "," and "," in f:
            return 0
    return len(fields)


def sniff_layout(lines: Sequence[str]) -> tuple[str | None, bool, int]:
    """Find separator, decimal mark and the first data row of a delimited numeric table.

    Returns
    -------
    (sep, decimal_comma, first_data_row); ``first_data_row`` is -1 when no numeric rows exist.
    """
    best: tuple[str | None, bool, int] | None = None
    for sep in _SEPS:
        # first line from which the next (up to) 5 non-empty lines are numeric with >= 2 fields
        n = len(lines)
        for start in range(min(n, 400)):
            if not lines[start].strip() or lines[start].lstrip().startswith("#"):
                continue
            k = _row_numeric(lines[start], sep)
            if k < 2:
                continue
            probe = [ln for ln in lines[start:start + 8] if ln.strip()][:5]
            if all(_row_numeric(ln, sep) == k for ln in probe):
                dec_comma = sep != "," and any("," in ln for ln in probe)
                cand = (sep, dec_comma, start)
                if best is None or start < best[2]:
                    best = cand
                break
        if best is not None and best[2] == 0:
            break
    return best if best is not None else (None, False, -1)


def parse_header(header: Sequence[str]) -> tuple[dict[str, Any], dict[int, dict[str, Any]],
                                                   list[str] | None]:
    """Metadata from header lines: common ``# key: value``, per-spectrum ``# [i] key: value``."""
    common: dict[str, Any] = {}
    per: dict[int, dict[str, Any]] = {}
    for line in header:
        s = line.strip()
        if not s.startswith("#"):
            continue
        m = _META_LINE.match(s)
        if not m:
            continue
        idx, key, value = m.group(1), m.group(2).strip(), m.group(3).strip()
        k = key.lower()
        k = _LABSPEC_KEYS.get(k, k.replace(" ", "_"))
        val: Any = decode_value(k, value)
        if idx is not None:
            per.setdefault(int(idx), {})[k] = val
        else:
            common[k] = val
    names = None
    for line in reversed(header):
        s = line.strip()
        if s and not s.startswith("#"):
            names = [c.strip().strip('"') for c in re.split(r"[,;\t]", s) if c.strip()]
            if len(names) < 2:
                names = [c.strip().strip('"') for c in s.split()]
            break
    return common, per, names


def read_delimited(text: str, path: PathLike, *, laser_nm: float | None = None,
                   fmt: str = "csv") -> SpectrumBatch:
    """Read a delimited numeric table (see the module docstring) into one batch."""
    lines = text.split("\n")
    sep, dec_comma, start = sniff_layout(lines)
    if start < 0:
        if any(any(ch.isdigit() for ch in ln) for ln in lines):
            if all(_row_numeric(ln, None) <= 1 for ln in lines if ln.strip()
                   and not ln.startswith("#")):
                raise InputError("only one column of numbers; no axis", source=path,
                                 hint="the file needs two columns: Raman shift and intensity")
            raise InputError("no table of numbers found", source=path,
                             hint="expected rows like '1001.4, 523.0' (axis, intensity)")
        raise InputError("no numbers in the file", source=path,
                         hint="expected rows like '1001.4, 523.0' (axis, intensity)")
    header = lines[:start]
    data_lines = [ln for ln in lines[start:] if ln.strip() and not ln.lstrip().startswith("#")]
    while data_lines and _row_numeric(data_lines[-1], sep) == 0 and not any(
            ch.isdigit() for ch in data_lines[-1]):
        data_lines.pop()  # a text footer ("END", "[Data end]")
    table = parse_table(data_lines, sep, dec_comma, path)
    if table.shape[1] < 2:
        raise InputError("only one column of numbers; no axis", source=path,
                         hint="the file needs two columns: Raman shift and intensity")
    common, per, names = parse_header(header)
    n_spec = table.shape[1] - 1
    if "integration_s" in common and "integration_ms" not in common:
        sec = to_float(common.pop("integration_s"))
        common["integration_ms"] = None if sec is None else sec * 1000.0
    meta = []
    for i in range(n_spec):
        m = {**common, **per.get(i, {})}
        m.pop("x_units", None)
        m["format"] = fmt
        if names and len(names) == table.shape[1] and n_spec > 1 and not m.get("name"):
            m["name"] = names[i + 1]
        meta.append(m)
    x = table[:, 0]
    x_units = _axis_units(common.get("x_units"), names[0] if names else None)
    if x_units is None:
        lasers = {to_float(m.get("laser_nm")) for m in meta}
        laser = laser_nm if laser_nm is not None else (lasers.pop() if len(lasers) == 1 else None)
        x_units = "nm" if _looks_like_nm(x, laser) else "cm-1"
    return make_batch(x, table[:, 1:].T, meta, path, x_units=x_units, laser_nm=laser_nm)


def _axis_units(declared: str | None, column: str | None) -> str | None:
    """Units of the axis from a ``x_units`` header or the axis column name; None if unsaid."""
    for text in (declared, column):
        if not text:
            continue
        t = text.lower()
        if any(w in t for w in ("shift", "wavenumber", "cm-1", "cm^-1", "1/cm", "cm-¹")):
            return "cm-1"
        if is_nm_unit(t):
            return "nm"
        if text is declared:
            return text
    return None


def _looks_like_nm(x: np.ndarray, laser_nm: float | None) -> bool:
    """An axis entirely between the laser line and 1100 nm is taken as wavelength in nm."""
    if laser_nm is None or x.size < 2 or not np.all(np.isfinite(x)):
        return False
    lo, hi = float(np.min(x)), float(np.max(x))
    return laser_nm < lo and hi <= 1100.0 and 200.0 <= laser_nm <= 1100.0


def format_csv(batch: SpectrumBatch) -> str:
    """Render a batch as ramanid CSV text (metadata header + axis column + one column/spectrum)."""
    out = [CSV_MAGIC]
    keys: list[str] = list(META_KEYS)
    for m in batch.meta:
        keys += [k for k in m if k not in keys]
    n = len(batch)
    for k in keys:
        vals = [m.get(k) for m in batch.meta]
        if all(v is None for v in vals):
            continue
        if n == 1 or all(v == vals[0] for v in vals):
            out.append(f"# {k}: {encode_value(vals[0])}")
        else:
            for i, v in enumerate(vals):
                if v is not None:
                    out.append(f"# [{i}] {k}: {encode_value(v)}")
    names = ["raman_shift_cm-1"] + (["intensity"] if n == 1 else
                                    [f"intensity_{i}" for i in range(n)])
    out.append(",".join(names))
    table = np.column_stack([batch.axis, batch.intensity.T])
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in table.tolist())
    return "\n".join(out) + "\n" + body + "\n"
