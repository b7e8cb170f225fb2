"""The engine side of ``ramanid batch``: verdict columns from ``ramanid.identify`` results.

:func:`make_engine_processor` loads a library once and returns a function that maps a
:class:`~ramanid.spectrum.SpectrumBatch` to the verdict columns of the batch result table
(:data:`ramanid.batch_io.RESULT_COLUMNS`): the fields of ``ramanid identify --json`` with the
best candidate in ``top_id``/``top_name``/``top_score`` and lists as compact JSON text.

Two ways to the same columns:

* :func:`columns_from_records` flattens the engine's per-scan records (the ``--json`` contract);
* :func:`columns_from_resultset` builds them from the columnar :class:`ramanid.identify.ResultSet`
  directly, about a microsecond per scan instead of ~80: the batch hot path. Every text is
  built once per distinct value and spread over the rows that share it:

  - ``reason``: :meth:`ramanid.identify.Identifier.reason_texts` for the whole batch (itself
    column-wise: one text per kind of reason and shown figure).
  - ``warnings`` and ``calibration``: the engine's own functions called once per calibration
    key (device, calibration id, and scan time when the device has a record), the JSON text
    written once per key; rows whose result rests on a non-measured reference go row by row.
  - hazard substances and message of alarm rows: the engine's findings for that row
    (:meth:`ramanid.identify.Identifier.hazard_findings`).

  A test checks that both ways give equal columns on batches of varied verdicts.

Scan metadata may come as columns (:class:`MetaColumns`, from archive blocks) instead of one
dict per row: the engine then gets a batch without per-row dicts (:func:`bare_batch`), and the
dicts are made only for the few rows the engine's text functions need.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ramanid import batch_io
from ramanid.spectrum import SpectrumBatch

#: QC figures that get their own float column (all QC figures are also in the ``qc`` JSON).
QC_COLUMNS = ("snr", "saturation", "fluorescence", "coverage")
VERDICT_COLUMNS = ("verdict", "reason", "hazard_level", "hazard_substances", "hazard_message",
                   "top_id", "top_name", "top_score", "candidates", "components", "qc",
                   *(f"qc_{k}" for k in QC_COLUMNS), "shift_cm1", "residual_r",
                   "best_provenance", "warnings", "calibration", "library_version",
                   "library_sha256",
                   "recipe", "engine_version")
#: Metadata keys that decide a scan's calibration status (``Identifier.calibration_of``).
_CAL_KEYS = ("device_serial", "calibration_id", "timestamp")


# -- metadata as columns ---------------------------------------------------------------------------
class MetaColumns:
    """Per-row scan metadata held as columns; a row's dict is built only when asked for.

    Parameters
    ----------
    columns
        Column arrays by key, in the key order of the rows' dicts (as
        :meth:`ramanid.io.archive.Block.meta_columns` gives them: unknown strings None,
        unknown numbers NaN).
    n
        Number of rows.

    Notes
    -----
    :meth:`row` gives the same dict as :meth:`ramanid.io.archive.Block.to_batch` puts in
    ``SpectrumBatch.meta`` (before the batch adds its blank standard keys).
    """

    def __init__(self, columns: Mapping[str, np.ndarray], n: int) -> None:
        self.columns = dict(columns)
        self.n = n
        self._values: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return self.n

    def values(self, key: str) -> list[Any]:
        """Python values of column ``key`` (None where unknown or when there is no column)."""
        hit = self._values.get(key)
        if hit is None:
            from ramanid.io.archive import column_values

            col = self.columns.get(key)
            hit = [None] * self.n if col is None else column_values(col)
            self._values[key] = hit
        return hit

    def row(self, i: int) -> dict[str, Any]:
        """The metadata dict of row ``i``."""
        from ramanid.io.archive import column_values

        return {k: column_values(c[i:i + 1])[0] for k, c in self.columns.items()}

    def take(self, index: slice | np.ndarray) -> MetaColumns:
        """The rows ``index`` (a slice or index array)."""
        columns = {k: c[index] for k, c in self.columns.items()}
        return MetaColumns(columns, len(np.arange(self.n)[index]))

    def rows(self) -> list[dict[str, Any]]:
        """Every row's dict (the slow form; for code that needs ``SpectrumBatch.meta``)."""
        cols = [self.values(k) for k in self.columns]
        keys = list(self.columns)
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True)] \
            if cols else [{} for _ in range(self.n)]


def bare_batch(axis: np.ndarray, intensity: np.ndarray) -> SpectrumBatch:
    """A checked :class:`SpectrumBatch` whose rows share one empty metadata dict.

    For the engine only (it does not read the rows' metadata): building one dict per row with
    the standard keys costs about 1.5 us per scan. The metadata then travels as
    :class:`MetaColumns`.

    Raises
    ------
    ramanid.errors.InputError
        As :meth:`SpectrumBatch.check` (axis or intensities unusable).
    """
    batch = object.__new__(SpectrumBatch)
    batch.axis = np.asarray(axis, dtype=np.float64)
    values = np.asarray(intensity)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    batch.intensity = values
    batch.meta = [{}] * int(values.shape[0])
    batch.check()
    return batch


# -- the processor ---------------------------------------------------------------------------------
class EngineProcessor:
    """``batch -> verdict columns`` on one library (the engine built once per worker).

    Call with a batch, and optionally its metadata as :class:`MetaColumns` (the batch may then
    be a :func:`bare_batch`).
    """

    def __init__(self, library: str | None) -> None:
        from ramanid.identify import Identifier
        from ramanid.library import load_library

        # one engine thread per worker: the batch's workers (processes, Dask) are the parallelism
        self.identifier = Identifier(load_library(library), workers=1)

    def __call__(self, batch: SpectrumBatch, meta: MetaColumns | None = None) -> batch_io.Table:
        return _calibrated_columns(self.identifier, batch, meta)


def make_engine_processor(library: str | None) -> EngineProcessor:
    """Load ``library`` (None: the default) and return ``batch -> verdict columns``.

    Raises
    ------
    ramanid.errors.LibraryError
        The library cannot be loaded (missing, corrupt, tampered with).
    """
    return EngineProcessor(library)


def _any_usable_record(serials: Iterable[str]) -> bool:
    """True when some device of ``serials`` has a calibration record that would be applied.

    The test :func:`ramanid.cli.identify.apply_device_calibrations` makes before changing
    anything (a broken calibration store counts as no record).
    """
    try:
        from ramanid.calibration import usable_record
    except ImportError:  # pragma: no cover - calibration part absent
        return False
    for serial in serials:
        try:
            if usable_record(serial):
                return True
        except Exception:  # as apply_device_calibrations: a broken store is no record
            continue
    return False


def _calibrated_columns(identifier: Any, batch: SpectrumBatch,
                        meta: MetaColumns | None = None) -> dict[str, np.ndarray]:
    """Verdict columns of ``batch`` after applying its devices' calibration records.

    As ``ramanid identify`` does (:func:`ramanid.cli.identify.apply_device_calibrations`, the one
    copy of that rule): rows that name a ``device_serial`` with a usable record (not FAILED) and
    carry no ``calibration_id`` are put on the record's calibrated axis before matching, so batch
    and identify give the same verdicts. Rows are grouped by serial (each group may end on its own
    axis) and the columns are returned in the batch's row order. ``meta``: the rows' metadata
    as columns when ``batch`` carries none (:func:`bare_batch`).
    """
    if meta is None:
        serials = [None if m.get("calibration_id") else m.get("device_serial")
                   for m in batch.meta]
    else:
        serials = [None if c else s for s, c in zip(meta.values("device_serial"),
                                                    meta.values("calibration_id"), strict=True)]
    if not any(serials):
        return columns_from_resultset(identifier.run(batch), meta)
    if meta is not None:
        if not _any_usable_record({s for s in serials if s}):   # nothing would be applied
            return columns_from_resultset(identifier.run(batch), meta)
        batch = SpectrumBatch(batch.axis, batch.intensity, meta.rows())
    from ramanid.cli.identify import apply_device_calibrations

    whole = apply_device_calibrations([batch])
    if len(whole) == 1:   # nothing to apply, or one device's record applied to every row
        return columns_from_resultset(identifier.run(whole[0]))
    groups: dict[Any, list[int]] = {}
    for row, serial in enumerate(serials):
        groups.setdefault(serial, []).append(row)
    parts: list[dict[str, np.ndarray]] = []
    order: list[int] = []
    for serial, rows in groups.items():
        part = batch if len(groups) == 1 else batch[rows]
        if serial:
            part = SpectrumBatch.concat(apply_device_calibrations([part]))
        parts.append(columns_from_resultset(identifier.run(part)))
        order.extend(rows)
    if len(parts) == 1:
        return parts[0]
    back = np.argsort(np.asarray(order), kind="stable")
    return {k: np.concatenate([p[k] for p in parts])[back] for k in parts[0]}


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=batch_io._json_default)


def dumps(obj: Any) -> str:
    """Compact JSON text (the form of every JSON column); one encoder reused for speed."""
    return _ENCODER.encode(obj)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float, np.number)) else None


# -- from records ----------------------------------------------------------------------------------
def _record_row(r: dict[str, Any], recipe_text: dict[int, str]) -> dict[str, Any]:
    hz = r.get("hazard") or {}
    cands = r.get("candidates") or []
    qc = r.get("qc") or {}
    lib = r.get("library") or {}
    recipe = r.get("recipe")
    if id(recipe) not in recipe_text:
        recipe_text[id(recipe)] = dumps(recipe)
    row = {
        "verdict": r.get("verdict"), "reason": r.get("reason"),
        "hazard_level": hz.get("level", "none"),
        "hazard_substances": dumps(hz.get("substances") or []),
        "hazard_message": hz.get("message"),
        "top_id": cands[0].get("id") if cands else None,
        "top_name": cands[0].get("name") if cands else None,
        "top_score": cands[0].get("score") if cands else None,
        "candidates": dumps(cands), "components": dumps(r.get("components") or []),
        "qc": dumps(qc), "shift_cm1": _num(r.get("shift_cm1")),
        "residual_r": _num(r.get("residual_r")), "best_provenance": r.get("best_provenance"),
        "warnings": dumps(r.get("warnings") or []),
        "calibration": None if r.get("calibration") is None else dumps(r.get("calibration")),
        "library_version": lib.get("version"), "library_sha256": lib.get("sha256"),
        "recipe": recipe_text[id(recipe)], "engine_version": r.get("engine_version"),
    }
    for k in QC_COLUMNS:
        row[f"qc_{k}"] = _num(qc.get(k))
    return row


def columns_from_records(records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Flatten identify records (the ``--json`` contract) into verdict columns."""
    recipe_text: dict[int, str] = {}
    rows = [_record_row(r, recipe_text) for r in records]
    return {k: batch_io.as_column([row[k] for row in rows], batch_io.COLUMN_KIND[k])
            for k in VERDICT_COLUMNS}


# -- from the columnar result set ---------------------------------------------------------
class _EntryText:
    """Per-library strings reused for every scan (built once per Identifier)."""

    def __init__(self, ident: Any) -> None:
        from ramanid.identify import ENGINE_VERSION

        entries = ident.entries
        self.ids = np.array([str(e.id) for e in entries], dtype=object)
        self.names = np.array([e.name for e in entries], dtype=object)
        self.cand_prefix = np.array([f'{{"id":{dumps(str(e.id))},"name":{dumps(e.name)},'
                                     '"score":' for e in entries], dtype=object)
        self.comp_prefix = np.array([f'{{"id":{dumps(str(e.id))},"name":{dumps(e.name)},'
                                     '"fraction":' for e in entries], dtype=object)
        self.provenance = np.array([getattr(e, "provenance_kind", "measured")
                                    for e in entries], dtype=object)
        self.unmeasured = ~np.asarray(ident.measured, dtype=bool)
        lib = ident.library
        self.version = getattr(lib, "version", None)
        self.sha256 = getattr(lib, "sha256", None)
        self.recipe = dumps(ident.recipe.to_dict())
        self.engine_version = ENGINE_VERSION


_TEXT: dict[int, tuple[Any, _EntryText]] = {}


def _entry_text(ident: Any) -> _EntryText:
    hit = _TEXT.get(id(ident))
    if hit is None or hit[0] is not ident:
        hit = (ident, _EntryText(ident))
        _TEXT[id(ident)] = hit
    return hit[1]


def _rounded(a: np.ndarray, digits: int) -> list[float]:
    """``round(float(x), digits)`` of every element, exactly as the records round.

    For float32 input (24-bit significands) and ``digits <= 4`` the product ``x * 10**digits``
    is exact in float64, so ``rint`` (half to even, like ``round``) and one correctly rounded
    division give Python's result bit for bit, vectorised. Other input is rounded the same way
    where the product is not within its own rounding error of a tie (so ``rint`` of the
    product is the correct rounding of the exact value), and by ``round`` elsewhere.
    """
    return _rounded_array(a, digits).tolist()


def _rounded_array(a: np.ndarray, digits: int) -> np.ndarray:
    """:func:`_rounded` as a float64 array."""
    a = np.asarray(a)
    x = a.astype(np.float64).ravel()
    scale = 10.0 ** digits
    if a.dtype.kind == "f" and a.dtype.itemsize <= 4 and digits <= 4:
        return np.rint(x * scale) / scale
    if a.dtype.kind in "iub" or digits > 15 or digits < 0:
        return np.array([round(v, digits) for v in x.tolist()], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        y = x * scale
        out = np.rint(y) / scale
        # distance of the product from the nearest tie (k + 0.5), against its rounding error
        tie = np.abs(np.abs(y - np.floor(y)) - 0.5)
        unsure = ~(tie > 1e-9 * np.maximum(np.abs(y), 1.0)) | ~(np.abs(y) < 2.0 ** 50)
    if unsure.any():
        rows = np.flatnonzero(unsure)
        out[rows] = [round(v, digits) for v in x[rows].tolist()]
    return out


def _text(values: list[float] | list[int]) -> np.ndarray:
    """Each number as ``json.dumps`` writes it (``repr``; NaN/Infinity for non-finite)."""
    if all(map(math.isfinite, values)):
        return np.array(list(map(repr, values)), dtype=object)
    return np.array([json.dumps(v) for v in values], dtype=object)


#: ``json.dumps(k / 10**digits) + tail`` for every ``|k| <= 10**digits`` (numbers in [-1, 1]:
#: scores, fractions, most QC figures), by ``(digits, tail)``; built once per process.
_UNIT_TEXT: dict[tuple[int, str], np.ndarray] = {}
#: Most decimals :func:`_number_text` keeps such a table for (20,001 texts at 4).
_UNIT_DIGITS = 4


def _unit_text(digits: int, tail: str) -> np.ndarray:
    hit = _UNIT_TEXT.get((digits, tail))
    if hit is None:
        m = 10 ** digits
        # k / m as Python divides (both divisions are correctly rounded: the same float)
        hit = _text((np.arange(-m, m + 1, dtype=np.int64) / float(m)).tolist())
        if tail:
            hit = hit + tail
        _UNIT_TEXT[(digits, tail)] = hit
    return hit


def _number_text(values: np.ndarray, tail: str = "", digits: int | None = None) -> np.ndarray:
    """``json.dumps(v) + tail`` of every element of a float64 or int array.

    Values of a small integer range (ints, or floats rounded to ``digits`` decimals by
    :func:`_rounded_array`: ``k / 10**digits``) are written once per distinct value, found
    with a table over the range (no sort); values ``k / 10**digits`` in [-1, 1] are looked up
    in a table of texts kept for the process (:func:`_unit_text`); others one by one.
    """
    values = np.asarray(values)
    flat = values.ravel()
    if flat.size == 0:
        return np.empty(values.shape, dtype=object)
    keys = None
    if values.dtype.kind in "iu":
        keys = flat.astype(np.int64)
    elif digits is not None and np.isfinite(flat).all() and np.abs(flat).max() < 1e12:
        keys = np.rint(flat * 10.0 ** digits).astype(np.int64)
        m = 10 ** digits
        # exact: each value is the float k / m (a -0.0 would be written "-0.0": not in the table)
        if 0 <= digits <= _UNIT_DIGITS and np.abs(keys).max() <= m \
                and np.array_equal(flat, keys / float(m)) and not np.signbit(flat[keys == 0]).any():
            return _unit_text(digits, tail)[keys + m].reshape(values.shape)
    if keys is not None:
        lo = int(keys.min())
        span = int(keys.max()) - lo + 1
        if span <= 4 * flat.size + 64:
            present = np.zeros(span, dtype=bool)
            present[keys - lo] = True
            slot = (np.cumsum(present) - 1)[keys - lo]
            rep = np.empty(int(present.sum()), dtype=flat.dtype)
            rep[slot] = flat
            # one value per key (rounded input), zeros of one sign (0.0 and -0.0 read "0.0"
            # and "-0.0")
            if np.array_equal(rep[slot], flat) and \
                    np.array_equal(np.signbit(rep[slot]), np.signbit(flat)):
                texts = _text(rep.tolist())
                return (texts + tail if tail else texts)[slot].reshape(values.shape)
    texts = _text(flat.tolist())
    return (texts + tail if tail else texts).reshape(values.shape)


def _first_valid(ids: np.ndarray) -> np.ndarray:
    """Index of the first column >= 0 in each row (0 when none)."""
    return np.argmax(ids >= 0, axis=1)


def _join_valid(ids: np.ndarray, prefix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """JSON lists '[{..prefix..value},...]' of the entries with id >= 0, in column order.

    ``values`` hold each entry's closing text (the number and ``}``).
    """
    n, k = ids.shape
    valid = ids >= 0
    if k and not (valid[:, 1:] <= valid[:, :-1]).all():   # gaps: the general form
        text = batch_io.filled(n, "")
        for j in range(k):
            piece = prefix[np.maximum(ids[:, j], 0)] + values[:, j]
            text = np.where(valid[:, j], np.where(text != "", text + "," + piece, piece), text)
        return "[" + text + "]"
    # valid entries first in every row (the engine pads with -1): append column by column
    text = batch_io.filled(n, "[")
    comma = "," + prefix
    for j in range(k):
        v = valid[:, j]
        if not v.any():
            break
        piece = (prefix if j == 0 else comma)[np.maximum(ids[:, j], 0)] + values[:, j]
        if v.all():
            text = text + piece
        else:
            text[v] = text[v] + piece[v]
    return text + "]"


def _factorize(values: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """Integer code of each value (first appearance order) and the first row of each code."""
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
    _, first = np.unique(codes, return_index=True)
    return codes, first.tolist()


# -- warnings and calibration status ---------------------------------------------------------------
def _cal_groups(ident: Any, meta_values: Callable[[str], list[Any]],
                meta_row: Callable[[int], dict[str, Any]], n: int,
                cache: dict[Any, Any]) -> tuple[np.ndarray, list[int]]:
    """Group rows by calibration status: a code per row and one row of each group.

    Rows of one device and calibration id share their status when the device has no record
    (``Identifier.calibration_of`` caches it per device then); otherwise rows are told apart by
    their scan time too, which the record's age depends on.
    """
    serial, cal_id, when = (meta_values(k) for k in _CAL_KEYS)
    dev, dev_first = _factorize(list(zip(serial, cal_id, strict=True)))

    def has_record(i: int) -> bool:   # the status of row i depends on its time
        ident.calibration_of(meta_row(i), cache)
        return (serial[i], cal_id[i]) not in cache

    timeless = [not has_record(i) for i in dev_first]
    if all(timeless):
        return dev, dev_first
    keys = [(d, None) if timeless[d] else (d, w) for d, w in zip(dev.tolist(), when,
                                                                 strict=True)]
    return _factorize(keys)


def _warnings_and_calibration(ident: Any, rs: Any, tx: _EntryText,
                              meta: MetaColumns | None,
                              cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``warnings`` and ``calibration`` JSON of every row.

    The engine's :meth:`Identifier.record_warnings` and :meth:`Identifier.calibration_of` are
    called once per calibration group (the warnings of a row are the non-measured reference
    note, the library's class notes and the calibration note: without the first they depend
    only on the calibration status); rows whose result uses a non-measured reference are done
    row by row.
    """
    n = len(rs)
    if meta is None:
        rows_meta = [rs.meta[i] if i < len(rs.meta) else {} for i in range(n)]

        def values(key: str) -> list[Any]:
            return [m.get(key) for m in rows_meta]

        def row(i: int) -> dict[str, Any]:
            return rows_meta[i]
    else:
        values, row = meta.values, meta.row
    verdict = rs.verdict.astype(np.intp)
    from ramanid.identify import VERDICTS

    best = rs.top_ids[:, 0].astype(np.intp)
    un = tx.unmeasured
    unmeasured = (verdict == VERDICTS.index("match")) & (best >= 0) & un[np.maximum(best, 0)]
    cids = rs.comp_ids.astype(np.intp)
    unmeasured |= ((cids >= 0) & un[np.maximum(cids, 0)]).any(axis=1)
    if rs.hazard_hits.shape[1]:
        unmeasured |= (rs.hazard_hits & un[ident.hazard_idx][None, :]).any(axis=1)

    group, first = _cal_groups(ident, values, row, n, cache)
    own_meta = meta is not None and len(rs.meta) == n

    def engine_warnings(rows: list[int]) -> list[list[dict[str, Any]]]:
        if own_meta:   # the engine reads the rows' metadata: give it theirs
            for i in rows:
                rs.meta[i] = row(i)
        return ident.record_warnings(rs, np.asarray(rows, dtype=np.intp), cache=cache)

    cal_text = np.array([dumps(ident.calibration_of(row(i), cache)[0]) for i in first],
                        dtype=object)[group]
    # one row without non-measured references in each group (where the group has one)
    plain = np.flatnonzero(~unmeasured)
    _, at = np.unique(group[plain], return_index=True)
    reps = plain[at].tolist()
    group_text = batch_io.filled(len(first), None)
    if reps:
        for i, w in zip(reps, engine_warnings(reps), strict=True):
            group_text[group[i]] = dumps(w)
    warn_text = group_text[group]
    if unmeasured.any():
        rows = np.flatnonzero(unmeasured).tolist()
        for i, w in zip(rows, engine_warnings(rows), strict=True):
            warn_text[i] = dumps(w)
    return warn_text, cal_text


def columns_from_resultset(rs: Any, meta: MetaColumns | None = None) -> dict[str, np.ndarray]:
    """Verdict columns straight from a :class:`ramanid.identify.ResultSet` (vectorised).

    Equal to ``columns_from_records(rs.records())``. The wording (reasons, warnings, the
    calibration status) is the engine's (see the module notes); rows with a hazard alarm take
    their hazard fields from the engine's findings for that row.

    Parameters
    ----------
    rs
        The engine's results.
    meta
        The scans' metadata as columns when ``rs.meta`` holds no real rows
        (:func:`bare_batch`); None: ``rs.meta``.
    """
    from ramanid.identify import HAZARD_LEVELS, VERDICTS

    ident = rs.identifier
    tx = _entry_text(ident)
    n = len(rs)
    verdict = rs.verdict.astype(np.intp)
    top_ids = rs.top_ids.astype(np.intp)
    k = top_ids.shape[1]
    rows = np.arange(n)
    first = _first_valid(top_ids)
    best = top_ids[rows, first]
    has_best = best >= 0
    best0 = top_ids[:, 0]

    scores = _rounded_array(rs.top_scores, 4).reshape(n, k)
    cand = _join_valid(top_ids, tx.cand_prefix, _number_text(scores, "}", 4))
    cids = rs.comp_ids.astype(np.intp)
    comp = _join_valid(cids, tx.comp_prefix,
                       _number_text(_rounded_array(rs.comp_fracs, 3).reshape(cids.shape), "}", 3))

    # QC figures, as the records give them (ints for integer and boolean figures)
    qc_vals: dict[str, np.ndarray] = {}
    for key, arr in rs.qc.items():
        arr = np.asarray(arr)
        qc_vals[key] = (arr.astype(np.int64) if arr.dtype.kind in "iub"
                        else _rounded_array(arr, 4))
    qc_txt = batch_io.filled(n, "{")
    for j, (key, vals) in enumerate(qc_vals.items()):
        tail = "}" if j == len(qc_vals) - 1 else ""
        qc_txt = qc_txt + ((("," if j else "") + dumps(key) + ":") + _number_text(vals, tail, 4))
    if not qc_vals:
        qc_txt = qc_txt + "}"

    # the engine's wording: reasons, warnings and calibration status
    cache: dict[Any, Any] = {}
    reason = np.asarray(ident.reason_texts(rs), dtype=object)
    warn_txt, cal_txt = _warnings_and_calibration(ident, rs, tx, meta, cache)

    provenance = np.where(best0 >= 0, tx.provenance[np.maximum(best0, 0)], None)
    cols: dict[str, Any] = {
        "verdict": np.array(VERDICTS, dtype=object)[verdict],
        "reason": reason,
        "hazard_level": np.array(HAZARD_LEVELS, dtype=object)[rs.hazard_level.astype(np.intp)],
        "hazard_substances": batch_io.filled(n, "[]"),
        "hazard_message": batch_io.filled(n, None),
        "top_id": np.where(has_best, tx.ids[np.maximum(best, 0)], None),
        "top_name": np.where(has_best, tx.names[np.maximum(best, 0)], None),
        "top_score": np.where(has_best, scores[rows, first], np.nan),
        "candidates": cand, "components": comp, "qc": qc_txt,
        "shift_cm1": np.array(_rounded(rs.shift, 2)),
        "residual_r": np.array(_rounded(rs.mix_r, 4)),
        "best_provenance": provenance.astype(object),
        "warnings": warn_txt, "calibration": cal_txt,
        "library_version": batch_io.filled(n, tx.version),
        "library_sha256": batch_io.filled(n, tx.sha256),
        "recipe": batch_io.filled(n, tx.recipe),
        "engine_version": batch_io.filled(n, tx.engine_version),
    }
    for key in QC_COLUMNS:
        cols[f"qc_{key}"] = (qc_vals[key].astype(np.float64) if key in qc_vals
                             else np.full(n, np.nan))

    # hazard alarms: the substances that alarmed and the handling message of the worst
    hits = rs.hazard_hits.any(axis=1) if rs.hazard_hits.size else np.zeros(n, dtype=bool)
    if hits.any():
        alarm = np.flatnonzero(hits)
        subst, message = _hazard_fields(ident, rs, alarm)
        cols["hazard_substances"][alarm] = subst
        cols["hazard_message"][alarm] = message
    return cols


def _hazard_fields(ident: Any, rs: Any, rows: np.ndarray) -> tuple[list[str], list[str | None]]:
    """``hazard_substances`` JSON and ``hazard_message`` of the alarm ``rows``: the engine's own
    findings (:meth:`ramanid.identify.Identifier.hazard_findings`, the record's wording), row by
    row (alarms are a few rows of a batch)."""
    subst: list[str] = []
    message: list[str | None] = []
    for i in rows.tolist():
        hz, text = ident.hazard_findings(rs, i)
        subst.append(dumps(hz))
        message.append(text or None)
    return subst, message
