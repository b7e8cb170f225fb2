"""JCAMP-DX reader (all XYDATA compression forms) and writer.

Written from the published specifications, not from other code:
R. S. McDonald and P. A. Wilks, "JCAMP-DX: A Standard Form for Exchange of Infrared Spectra in
Computer Readable Form", Appl. Spectrosc. 42 (1988) 151-162 (LDR syntax, ``(X++(Y..Y))`` tables,
ASDF compression); A. N. Davies and P. Lampen, "JCAMP-DX for NMR", Appl. Spectrosc. 47 (1993)
1093-1099 (``NTUPLES``/``PAGE``/``DATA TABLE``); JCAMP-DX 5.01 (compound files, ``LINK`` blocks).

Facts used
----------
* A labelled data record (LDR) starts a line with ``##LABEL=``; labels compare after removing
  spaces, ``-``, ``/`` and ``_`` and upper-casing; ``$$`` starts a comment to end of line.
* A block runs from ``##TITLE=`` to ``##END=``; a ``LINK`` block holds nested blocks.
* ``(X++(Y..Y))``: each line starts with the abscissa of its first ordinate (in ``XFACTOR``
  units); ordinates are in ``YFACTOR`` units. The x values are ``FIRSTX + i*(LASTX-FIRSTX)/
  (NPOINTS-1)``.
* ASDF ordinate forms: AFFN/FIX (blank-separated), PAC (values delimited by their sign),
  SQZ (``@``=0, ``A``-``I``=+1..+9, ``a``-``i``=-1..-9 replace the leading digit),
  DIF (``%``=0, ``J``-``R``=+1..+9, ``j``-``r``=-1..-9: difference to the previous ordinate),
  DUP (``S``-``Z``=1..8, ``s``=9: the previous token occurs this many times in total; a
  repeated DIF repeats the difference).
* DIF y-check: when a line ends in DIF form, the first ordinate of the next line repeats the
  last ordinate of that line; it is a check value, compared and dropped.
* ``(XY..XY)`` (``XYPOINTS``, ``PEAK TABLE``, and ``XYDATA`` in some files) hold x,y pairs.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ramanid.errors import InputError
from ramanid.io._common import PathLike, decode_value, encode_value, make_batch, to_float
from ramanid.spectrum import SpectrumBatch

_SQZ = {c: v for v, c in enumerate("@ABCDEFGHI")} | {c: -(v + 1) for v, c in
                                                       enumerate("abcdefghi")}
_DIF = {"%": 0} | {c: v + 1 for v, c in enumerate("JKLMNOPQR")} | {
    c: -(v + 1) for v, c in enumerate("jklmnopqr")}
_DUP = {c: v + 1 for v, c in enumerate("STUVWXYZ")} | {"s": 9}
# ASDF characters -> canonical tokens: SQZ -> signed digit, DIF -> "d" + signed digit, DUP ->
# "u" + digit; PAC signs and "," ";" become separators; "?" (missing value) -> nan.
_ASDF = str.maketrans(
    {**{c: f" {v}" for c, v in _SQZ.items()}, **{c: f" d{v}" for c, v in _DIF.items()},
     **{c: f" u{v}" for c, v in _DUP.items()}, "+": " +", "-": " -", ",": " ", ";": " ",
     "?": " nan", "\x01": "e"})
_ASDF_CHARS = re.compile(r"[@A-DF-Za-df-z%?]")
_EXPONENT = re.compile(r"(?<=[\d.])[eE](?=[+-]\d)")
_XY_SPLIT = re.compile(r"[\s,;]+")


def norm_label(label: str) -> str:
    """Normalise an LDR label: upper case without spaces, ``-``, ``/``, ``_``."""
    return re.sub(r"[\s\-/_]", "", label).upper()


@dataclass
class Block:
    """One JCAMP-DX block: ordered LDRs and its nested blocks."""

    ldrs: list[tuple[str, str, str]] = field(default_factory=list)  # (norm, raw label, value)
    children: list[Block] = field(default_factory=list)

    def get(self, label: str, default: str | None = None) -> str | None:
        """First value of the (normalised) label."""
        for n, _, v in self.ldrs:
            if n == label:
                return v.strip()
        return default

    def num(self, label: str) -> float | None:
        """The label's value as a float (first field), ``None`` when absent or not a number."""
        v = self.get(label)
        if v is None:
            return None
        return to_float(v.split()[0].rstrip(",")) if v.split() else None


def _strip_comment(line: str) -> str:
    i = line.find("$$")
    return line if i < 0 else line[:i]


def parse_blocks(text: str, path: PathLike) -> list[Block]:
    """Split JCAMP-DX text into top-level blocks (nested LINK blocks as children)."""
    roots: list[Block] = []
    stack: list[Block] = []
    label: str | None = None
    raw = ""
    buf: list[str] = []

    def flush() -> None:
        if label is None:
            return
        value = "\n".join(buf)
        n = norm_label(label)
        if n == "TITLE":
            blk = Block()
            if stack:
                stack[-1].children.append(blk)
            else:
                roots.append(blk)
            stack.append(blk)
        if stack:
            stack[-1].ldrs.append((n, raw, value))
        if n == "END" and stack:
            stack.pop()

    for line in text.split("\n"):
        s = line.lstrip()
        if s.startswith("##"):
            flush()
            lab, eq, val = s[2:].partition("=")
            if not eq:
                label, raw, buf = None, "", []
                continue
            label, raw = lab.strip(), lab.strip()
            buf = [_strip_comment(val)]
        elif label is not None:
            buf.append(_strip_comment(line))
    flush()
    if not roots:
        raise InputError("no JCAMP-DX block (##TITLE= ... ##END=) found", source=path,
                         hint="the file is not JCAMP-DX or is truncated")
    return roots


def _bad_token(tokens: list[str], path: PathLike) -> InputError:
    for t in tokens:
        try:
            float(t[1:] if t[:1] in ("d", "u") else t)
        except ValueError:
            break
    else:  # pragma: no cover - called only after a failed conversion
        t = "?"
    return InputError(f"unexpected characters {t!r} in compressed data", source=path,
                      hint="the JCAMP-DX data table is corrupt")


def decode_xpp(lines: list[str], path: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``(X++(Y..Y))`` lines into (line x values, index of each line's first ordinate,
    all ordinates), in file units. Vectorised: characters are mapped to tokens, then DUP
    expansion, DIF accumulation and y-checks are array operations.

    Raises
    ------
    InputError
        On a bad character, a DIF/DUP without a preceding value, or a failed DIF y-check.
    """
    text = "\n".join(lines)
    if "e" in text or "E" in text:
        text = _EXPONENT.sub("\x01", text)
    if _ASDF_CHARS.search(text):
        text = text.translate(_ASDF).replace("e +", "e+").replace("e -", "e-")
    else:  # AFFN/FIX/PAC only: just split values at their signs
        text = (text.replace("+", " +").replace("-", " -").replace("\x01 ", "e")
                .replace(",", " ").replace(";", " "))
    per_line = [ln.split() for ln in text.split("\n")]
    counts = [len(t) for t in per_line if t]
    empty = np.zeros(0)
    if not counts:
        return empty, empty.astype(int), empty
    flat = [tok for t in per_line for tok in t]
    head = np.array([t[0] for t in flat])
    kind = (head == "d").astype(np.int8) + 2 * (head == "u").astype(np.int8)
    try:
        val = np.array([float(t.lstrip("du")) for t in flat])
    except ValueError:
        raise _bad_token(flat, path) from None
    line_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if np.any(kind[line_start] != 0):
        i = int(np.flatnonzero(kind[line_start] != 0)[0])
        raise InputError(f"data line {i + 1} does not start with an x value", source=path,
                         hint="the JCAMP-DX data table is corrupt")
    xs = val[line_start]
    is_ord = np.ones(len(flat), dtype=bool)
    is_ord[line_start] = False
    line_of = np.repeat(np.arange(len(counts)), counts)
    # y-check: the first ordinate of a line repeats the last one when that line ended in DIF
    check = np.zeros(len(flat), dtype=bool)
    prev_dif = False
    for ln, (st, n) in enumerate(zip(line_start.tolist(), counts, strict=True)):
        if n < 2:
            continue
        if prev_dif and kind[st + 1] == 0 and ln:
            check[st + 1] = True
        last = st + n - 1
        prev_dif = bool(kind[last] == 1 or (kind[last] == 2 and n > 2 and kind[last - 1] == 1))
    kind, val, check, line_of = kind[is_ord], val[is_ord], check[is_ord], line_of[is_ord]
    if kind.size == 0:
        return xs, empty.astype(int), empty
    # DUP: the previous token occurs `count` times in total (a DIF repeats its difference)
    dup = np.flatnonzero(kind == 2)
    rep = np.ones(kind.size, dtype=np.int64)
    if dup.size:
        prev = dup - 1
        if prev.size and (prev[0] < 0 or np.any(kind[prev] == 2)
                          or np.any(line_of[prev] != line_of[dup])):
            raise InputError("DUP count without a value before it on its line", source=path,
                             hint="the JCAMP-DX data table is corrupt")
        rep[prev] = np.maximum(val[dup].astype(np.int64), 1)
        keep = kind != 2
        kind, val, check, line_of, rep = (kind[keep], val[keep], check[keep], line_of[keep],
                                          rep[keep])
    first_copy = np.zeros(int(rep.sum()), dtype=bool)
    first_copy[np.concatenate([[0], np.cumsum(rep)[:-1]])] = True
    kind, val, line_of = np.repeat(kind, rep), np.repeat(val, rep), np.repeat(line_of, rep)
    check = np.repeat(check, rep) & first_copy
    is_abs = kind == 0
    if not is_abs[0]:
        raise InputError("DIF value before any ordinate", source=path,
                         hint="the JCAMP-DX data table is corrupt")
    cs = np.cumsum(np.where(is_abs, 0.0, val))
    abs_pos = np.flatnonzero(is_abs)
    y = (val[abs_pos] - cs[abs_pos])[np.cumsum(is_abs) - 1] + cs
    cpos = np.flatnonzero(check)
    if cpos.size:
        bad = ~np.isclose(y[cpos], y[cpos - 1], rtol=1e-9, atol=1e-6)
        if bad.any():
            i = int(cpos[np.flatnonzero(bad)[0]])
            raise InputError(f"DIF y-check failed on data line {int(line_of[i]) + 1} "
                             f"({y[i]:g} != {y[i - 1]:g})", source=path,
                             hint="the file is corrupt or truncated")
    final = np.arange(y.size) - np.cumsum(check)
    lines_with = np.unique(line_of, return_index=True)[1]  # first expanded token of each line
    starts = final[lines_with]
    has_ord = np.isin(np.arange(len(counts)), line_of)
    return xs[has_ord], starts, y[~check]


def check_x(line_x: np.ndarray, starts: np.ndarray, first: float, delta: float,
            factor: float) -> str | None:
    """X-check: each line's abscissa should be the grid x of its first ordinate (within half a
    step plus 0.1 % of the range, for rounded LASTX). Returns a description of the first
    mismatch, or ``None``. Advisory only: some writers put ``0`` on every line (NMR FIDs); lost
    or spliced lines are caught by the NPOINTS count."""
    if line_x.size == 0 or delta == 0:
        return None
    expected = first + starts * delta
    tol = 0.5 * abs(delta) + 1e-3 * abs(delta) * max(int(starts[-1]), 1)
    bad = np.flatnonzero(np.abs(line_x * factor - expected) > tol)
    if bad.size:
        i = int(bad[0])
        return f"line {i + 1}: x={line_x[i] * factor:g}, expected {expected[i]:g}"
    return None


def decode_xy(lines: list[str], path: PathLike, width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(XY..XY)`` pairs (``width=3``: ``(XYW..XYW)`` / ``(XYM..XYM)`` triplets, the
    third value dropped), AFFN; ``?`` is a missing value."""
    vals: list[float] = []
    for line in lines:
        for tok in _XY_SPLIT.split(line.strip()):
            if not tok:
                continue
            if tok == "?":
                vals.append(math.nan)
                continue
            try:
                vals.append(float(tok))
            except ValueError:
                raise InputError(f"bad value {tok!r} in an (XY..XY) table", source=path,
                                 hint="the JCAMP-DX data table is corrupt") from None
    if len(vals) % width:
        raise InputError(f"the number of values in an (XY..XY) table is not a multiple of "
                         f"{width}", source=path,
                         hint="the JCAMP-DX data table is corrupt or truncated")
    a = np.asarray(vals, dtype=np.float64).reshape(-1, width)
    return a[:, 0], a[:, 1]


def _units(xunits: str | None) -> str:
    u = (xunits or "").strip().upper()
    if u in ("1/CM", "CM-1", "CM^-1", "WAVENUMBERS", "1/CM "):
        return "cm-1"
    if u in ("NANOMETERS", "NM", "NANOMETER"):
        return "nm"
    return u.lower() or "unknown"


_META_LDRS = {"TITLE": "name", "SPECTROMETERDATASYSTEM": "device_model", "OWNER": "owner",
              "ORIGIN": "origin", "DATATYPE": "data_type", "JCAMPDX": "jcamp_version",
              "YUNITS": "units"}
def _block_meta(blk: Block) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    ours = any(n.startswith("$RAMANID.") for n, _, _ in blk.ldrs)  # written by ramanid
    for n, raw, v in blk.ldrs:
        v = v.strip()
        if n in _META_LDRS and v and not ours:
            meta[_META_LDRS[n]] = v
        elif n == "LONGDATE" and v:
            meta["timestamp"] = v.replace("/", "-").replace(" ", "T", 1).split()[0]
        elif n.startswith("$RAMANID.") and v:
            key = raw.split(".", 1)[1].strip().lower()
            if key not in ("source", "format"):
                meta[key] = decode_value(key, _unquote(v))
        elif n in (".LASERWAVELENGTH", "$LASERWAVELENGTH", "$LASER", "$EXCITATIONWAVELENGTH",
                   ".EXCITATIONWAVELENGTH") and to_float(v.split()[0] if v else "") and \
                "laser_nm" not in meta:
            meta["laser_nm"] = to_float(v.split()[0])
    meta["format"] = "jcamp"
    if "data_type" not in meta:
        meta["data_type"] = blk.get("DATATYPE")
    if "timestamp" not in meta and not ours:
        date = blk.get("DATE")
        if date:
            d = date.replace("/", "-")
            t = blk.get("TIME")
            meta["timestamp"] = f"{d}T{t}" if t else d
    return meta


def _spectra_of(blk: Block, path: PathLike, laser_nm: float | None) -> list[SpectrumBatch]:
    out: list[SpectrumBatch] = []
    meta = _block_meta(blk)
    xfac = blk.num("XFACTOR") or 1.0
    yfac = blk.num("YFACTOR") or 1.0
    xunits = _units(blk.get("XUNITS"))
    for i, (n, _, v) in enumerate(blk.ldrs):
        if n not in ("XYDATA", "XYPOINTS", "PEAKTABLE", "DATATABLE"):
            continue
        head, _, rest = v.partition("\n")
        form = head.replace(" ", "").upper()
        lines = rest.split("\n")
        m = dict(meta)
        if n == "DATATABLE":
            out += _ntuples_page(blk, i, form, lines, m, path, laser_nm)
            continue
        if "++" in form:
            npoints = blk.num("NPOINTS")
            firstx, lastx = blk.num("FIRSTX"), blk.num("LASTX")
            line_x, starts, y = decode_xpp(lines, path)
            if npoints is None or firstx is None or lastx is None:
                raise InputError("(X++(Y..Y)) table without NPOINTS/FIRSTX/LASTX", source=path,
                                 hint="the JCAMP-DX header is incomplete")
            if len(y) != int(npoints):
                raise InputError(f"decoded {len(y)} points but NPOINTS={int(npoints)}",
                                 source=path, hint="the file is corrupt or truncated")
            if int(npoints) > 1:
                xc = check_x(line_x, starts, firstx, (lastx - firstx) / (int(npoints) - 1), xfac)
                if xc:
                    m["x_check_failed"] = xc
            x = np.linspace(firstx, lastx, int(npoints))
            y = y * yfac
        else:
            x, y = decode_xy(lines, path, 3 if re.search(r"\(XY[WM]", form) else 2)
            x, y = x * xfac, y * yfac
            if n == "PEAKTABLE":
                m["data_class"] = "peak table"
        out.append(_finish(x, y, m, xunits, path, laser_nm))
    return out


def _finish(x: np.ndarray, y: np.ndarray, meta: dict[str, Any], xunits: str,
            path: PathLike, laser_nm: float | None) -> SpectrumBatch:
    raman = "RAMAN" in str(meta.get("data_type", "")).upper()
    if xunits == "nm" and not raman and laser_nm is None and meta.get("laser_nm") is None:
        xunits = "nm (wavelength)"  # UV/VIS etc.: keep the wavelength axis as it is
    if x.size > 1 and np.all(np.diff(x) < 0):
        x, y = x[::-1], y[::-1]
    if raman and xunits != "nm" and xunits not in ("cm-1",):
        meta.setdefault("x_units_declared", xunits)
        xunits = "cm-1"
    return make_batch(x, y, [meta], path, x_units=xunits, laser_nm=laser_nm)


def _ntuples_page(blk: Block, index: int, form: str, lines: list[str], meta: dict[str, Any],
                  path: PathLike, laser_nm: float | None) -> list[SpectrumBatch]:
    """Decode one ``##DATA TABLE=`` of an NTUPLES block (e.g. NMR real or imaginary page)."""

    def col(label: str) -> list[str]:
        v = blk.get(label)
        return [c.strip() for c in v.split(",")] if v else []

    symbols = [s.upper() for s in col("SYMBOL")]
    m = re.match(r"\(?\(?(\w+)\+\+\((\w+)\.\.\w+\)\)?", form.split(",")[0])
    if not m or not symbols:
        raise InputError(f"unsupported NTUPLES data table form {form!r}", source=path,
                         hint="only (X++(Y..Y)) pages are read")
    xs, ys = m.group(1).upper(), m.group(2).upper()
    if xs not in symbols or ys not in symbols:
        raise InputError(f"NTUPLES symbols {xs}/{ys} not declared", source=path,
                         hint="the JCAMP-DX header is incomplete")
    ix, iy = symbols.index(xs), symbols.index(ys)

    def num(label: str, i: int) -> float | None:
        c = col(label)
        return to_float(c[i]) if i < len(c) else None

    npts = num("VARDIM", iy) or num("VARDIM", ix)
    first, last = num("FIRST", ix), num("LAST", ix)
    xfac, yfac = num("FACTOR", ix) or 1.0, num("FACTOR", iy) or 1.0
    units = col("UNITS")
    page = next((v.strip() for n, _, v in reversed(blk.ldrs[:index]) if n == "PAGE"), None)
    line_x, starts, y = decode_xpp(lines, path)
    if npts is None or first is None or last is None:
        raise InputError("NTUPLES page without VAR_DIM/FIRST/LAST", source=path,
                         hint="the JCAMP-DX header is incomplete")
    if int(npts) > 1:
        xc = check_x(line_x, starts, first, (last - first) / (int(npts) - 1), xfac)
        if xc:
            meta["x_check_failed"] = xc
    if len(y) != int(npts):
        raise InputError(f"decoded {len(y)} points but VAR_DIM={int(npts)}", source=path,
                         hint="the file is corrupt or truncated")
    x = np.linspace(first, last, int(npts))
    names = col("VARNAME")
    meta = {**meta, "page": page, "variable": names[iy] if iy < len(names) else ys}
    return [_finish(x, y * yfac, meta, _units(units[ix] if ix < len(units) else None), path,
                    laser_nm)]


def read_jcamp(text: str, path: PathLike, *, laser_nm: float | None = None
               ) -> list[SpectrumBatch]:
    """Read every spectrum of a JCAMP-DX file (compound files: every block, in order).

    Returns one batch per spectrum block; blocks sharing an axis are merged by
    :func:`ramanid.io.read`.
    """
    out: list[SpectrumBatch] = []

    def walk(blk: Block) -> None:
        out.extend(_spectra_of(blk, path, laser_nm))
        for c in blk.children:
            walk(c)

    for root in parse_blocks(text, path):
        walk(root)
    if not out:
        raise InputError("no spectrum data (XYDATA, XYPOINTS, PEAK TABLE) in the file",
                         source=path, hint="the JCAMP-DX file holds no data table")
    merged: list[SpectrumBatch] = []
    for b in out:
        if merged and merged[-1].axis.shape == b.axis.shape and \
                np.array_equal(merged[-1].axis, b.axis):
            merged[-1] = SpectrumBatch.concat([merged[-1], b])
        else:
            merged.append(b)
    return merged


# -- writer -----------------------------------------------------------------------------------
_SQZ_POS = "@ABCDEFGHI"
_SQZ_NEG = "@abcdefghi"
_DIF_POS = "%JKLMNOPQR"
_DIF_NEG = "%jklmnopqr"
_DUP_CH = "STUVWXYZs"


def _sqz(v: int, table_pos: str, table_neg: str) -> str:
    s = str(abs(v))
    return (table_pos if v >= 0 else table_neg)[int(s[0])] + s[1:]


def _dup(n: int) -> str:
    s = str(n)
    return _DUP_CH[int(s[0]) - 1] + s[1:]


def encode_difdup(values: np.ndarray, x_start: np.ndarray, per_line: int = 10) -> list[str]:
    """Encode integer ordinates as DIFDUP lines with y-checks (``x_start``: x of each line)."""
    lines = []
    v = [int(a) for a in values]
    i, n, li = 0, len(v), 0
    while i < n:
        chunk = v[i:i + per_line + 1] if i + per_line < n else v[i:]
        # first value absolute (SQZ); then DIFs; the last value of this line is repeated as the
        # y-check at the start of the next line
        out = [f"{x_start[li]:.10g}", _sqz(chunk[0], _SQZ_POS, _SQZ_NEG)]
        difs = [b - a for a, b in itertools.pairwise(chunk)]
        j = 0
        while j < len(difs):
            k = j
            while k + 1 < len(difs) and difs[k + 1] == difs[j]:
                k += 1
            out.append(_sqz(difs[j], _DIF_POS, _DIF_NEG))
            if k > j:
                out.append(_dup(k - j + 1))
            j = k + 1
        lines.append("".join(out))
        step = len(chunk) - 1 if i + per_line < n else len(chunk)
        if step == 0:
            break
        i += step
        li += 1
    return lines


def _y_factor(y: np.ndarray) -> float:
    """Largest power of ten that keeps ``y`` exact, but never coarser than 9 significant digits
    of the largest ordinate (so DIFDUP is lossless for data with few decimals)."""
    peak = float(np.max(np.abs(y))) or 1.0
    top = math.floor(math.log10(peak))
    k = top - 8
    while k < top:
        f = 10.0 ** (k + 1)
        if np.max(np.abs(np.rint(y / f) * f - y)) > 1e-9 * peak:
            break
        k += 1
    return 10.0 ** k


def _quote(text: str) -> str:
    """A ``$RAMANID.`` value that holds ``$$`` (a JCAMP comment start) or starts with ``"`` is
    written as a JSON string with ``$`` escaped (``\\u0024``); :func:`_unquote` reverses it."""
    if "$$" in text or text.startswith('"'):
        return json.dumps(text).replace("$", "\\u0024")
    return text


def _unquote(text: str) -> str:
    """Inverse of :func:`_quote` (other values unchanged)."""
    if text.startswith('"'):
        try:
            val = json.loads(text)
        except ValueError:
            return text
        if isinstance(val, str):
            return val
    return text


def _ldr(label: str, value: Any) -> str:
    return f"##{label}={' '.join(str(value).split())}"


def format_jcamp(batch: SpectrumBatch, *, form: str = "affn") -> str:
    """Render a batch as JCAMP-DX 5.01 text (one block per spectrum, a LINK block when several).

    Parameters
    ----------
    batch
        Spectra to write (axis in cm-1).
    form
        ``"affn"`` (exact decimal ordinates, ``(X++(Y..Y))`` when the axis is evenly spaced,
        else ``(XY..XY)``) or ``"difdup"`` (compressed integers with ``YFACTOR`` chosen to keep
        9 significant digits of the largest ordinate; needs an evenly spaced axis).
        Standard metadata go into ``##$RAMANID.<key>=`` LDRs that :func:`read_jcamp` restores.
    """
    if form not in ("affn", "difdup"):
        raise ValueError(f"unknown JCAMP-DX form {form!r}")
    x = batch.axis
    d = np.diff(x)
    even = bool(np.allclose(d, (x[-1] - x[0]) / (len(x) - 1), rtol=1e-9, atol=1e-9))
    blocks = []
    for r in range(len(batch)):
        blocks.append(_format_block(x, batch.intensity[r], batch.meta[r], even, form,
                                    block_id=r + 1 if len(batch) > 1 else None))
    if len(batch) == 1:
        return blocks[0]
    head = [_ldr("TITLE", "ramanid batch"), _ldr("JCAMP-DX", "5.01"), _ldr("DATA TYPE", "LINK"),
            _ldr("BLOCKS", len(batch))]
    return "\n".join(head) + "\n" + "".join(blocks) + _ldr("END", "") + "\n"


def _format_block(x: np.ndarray, y: np.ndarray, meta: dict[str, Any], even: bool, form: str,
                  block_id: int | None) -> str:
    title = meta.get("name") or Path(str(meta.get("source") or "ramanid spectrum")).stem
    out = [_ldr("TITLE", title),
           _ldr("JCAMP-DX", "5.01"), _ldr("DATA TYPE", "RAMAN SPECTRUM")]
    if block_id is not None:
        out.append(_ldr("BLOCK_ID", block_id))
    out += [_ldr("ORIGIN", meta.get("origin") or "ramanid"),
            _ldr("OWNER", meta.get("owner") or "unknown")]
    if meta.get("device_model"):
        out.append(_ldr("SPECTROMETER/DATA SYSTEM", meta["device_model"]))
    if meta.get("timestamp"):
        out.append(_ldr("LONGDATE", meta["timestamp"]))
    for k, v in meta.items():
        if v is None or k in ("x_units",) or "\n" in str(v):
            continue
        out.append(_ldr(f"$RAMANID.{k}", _quote(encode_value(v))))
    out += [_ldr("XUNITS", "1/CM"), _ldr("YUNITS", meta.get("units") or "ARBITRARY UNITS")]
    n = len(x)
    if not even:
        out += [_ldr("XFACTOR", 1), _ldr("YFACTOR", 1), _ldr("FIRSTX", repr(float(x[0]))),
                _ldr("LASTX", repr(float(x[-1]))), _ldr("NPOINTS", n),
                _ldr("FIRSTY", repr(float(y[0]))), "##XYPOINTS=(XY..XY)"]
        out += [f"{float(a)!r}, {float(b)!r}" for a, b in zip(x, y, strict=True)]
    else:
        delta = (x[-1] - x[0]) / (n - 1)
        if form == "difdup":
            yfac = _y_factor(y)
            iy = np.rint(y / yfac).astype(np.int64)
        else:
            yfac = 1.0
        out += [_ldr("XFACTOR", 1), _ldr("YFACTOR", repr(yfac)), _ldr("FIRSTX", repr(float(x[0]))),
                _ldr("LASTX", repr(float(x[-1]))), _ldr("DELTAX", repr(float(delta))),
                _ldr("NPOINTS", n), _ldr("FIRSTY", repr(float(y[0]))), "##XYDATA=(X++(Y..Y))"]
        if form == "difdup":
            per = 10
            starts = x[0] + delta * np.arange(0, n, per)
            out += encode_difdup(iy, starts, per)
        else:
            per = 5
            for i in range(0, n, per):
                out.append(" ".join([f"{float(x[i])!r}"] + [repr(float(v)) for v in y[i:i + per]]))
    out.append(_ldr("END", ""))
    return "\n".join(out) + "\n"
