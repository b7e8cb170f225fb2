"""The engine side of ``ramanid batch``: verdict columns from ``ramanid.identify`` results.

:func:`make_engine_processor` loads a library once and returns a function that maps a
:class:`~ramanid.spectrum.SpectrumBatch` to the verdict columns of the batch result table
(:data:`ramanid.batch_io.RESULT_COLUMNS`): the fields of ``ramanid identify --json`` with the
best candidate in ``top_id``/``top_name``/``top_score`` and lists as compact JSON text.

Two ways to the same columns:

* :func:`columns_from_records` flattens the engine's per-scan records (the ``--json`` contract);
* :func:`columns_from_resultset` builds them from the columnar :class:`ramanid.identify.ResultSet`
  directly, a few microseconds per scan instead of ~80: the batch hot path. Rows that need the
  engine's per-scan text logic (hazard alarms, non-measured references) are taken from the
  engine's own record for that row, so that logic has one copy. A test checks that both ways
  give equal columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
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


def make_engine_processor(library: str | None) -> Callable[[SpectrumBatch], batch_io.Table]:
    """Load ``library`` (None: the default) and return ``batch -> verdict columns``.

    Raises
    ------
    ramanid.errors.LibraryError
        The library cannot be loaded (missing, corrupt, tampered with).
    """
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    # one engine thread per worker: the batch's workers (processes, Dask) are the parallelism
    identifier = Identifier(load_library(library), workers=1)

    def process(batch: SpectrumBatch) -> batch_io.Table:
        return _calibrated_columns(identifier, batch)

    return process


def _calibrated_columns(identifier: Any, batch: SpectrumBatch) -> dict[str, np.ndarray]:
    """Verdict columns of ``batch`` after applying its devices' calibration records.

    As ``ramanid identify`` does (:func:`ramanid.cli.identify.apply_device_calibrations`, the one
    copy of that rule): rows that name a ``device_serial`` with a usable record (not FAILED) and
    carry no ``calibration_id`` are put on the record's calibrated axis before matching, so batch
    and identify give the same verdicts. Rows are grouped by serial (each group may end on its own
    axis) and the columns are returned in the batch's row order.
    """
    serials = [None if m.get("calibration_id") else m.get("device_serial") for m in batch.meta]
    if not any(serials):
        return columns_from_resultset(identifier.run(batch))
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
    division give Python's result bit for bit, vectorised; other input goes through ``round``.
    """
    a = np.asarray(a)
    if a.dtype.itemsize <= 4 and a.dtype.kind == "f" and digits <= 4:
        scale = 10.0 ** digits
        return (np.rint(a.astype(np.float64).ravel() * scale) / scale).tolist()
    return [round(x, digits) for x in a.astype(np.float64).ravel().tolist()]


def _text(values: list[float] | list[int]) -> np.ndarray:
    """Each number as ``json.dumps`` writes it (``repr``; NaN/Infinity for non-finite)."""
    if all(map(math.isfinite, values)):
        return np.array(list(map(repr, values)), dtype=object)
    return np.array([json.dumps(v) for v in values], dtype=object)


def _first_valid(ids: np.ndarray) -> np.ndarray:
    """Index of the first column >= 0 in each row (0 when none)."""
    return np.argmax(ids >= 0, axis=1)


def _join_valid(ids: np.ndarray, prefix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """JSON lists '[{..prefix..value},...]' of the entries with id >= 0, in column order."""
    n, k = ids.shape
    text = np.full(n, "", dtype=object)
    for j in range(k):
        valid = ids[:, j] >= 0
        piece = prefix[np.maximum(ids[:, j], 0)] + values[:, j] + "}"
        text = np.where(valid, np.where(text != "", text + "," + piece, piece), text)
    return "[" + text + "]"


def columns_from_resultset(rs: Any) -> dict[str, np.ndarray]:
    """Verdict columns straight from a :class:`ramanid.identify.ResultSet` (vectorised).

    Equal to ``columns_from_records(rs.records())``. The wording (reasons, warnings, the
    calibration status) comes from the engine's own functions; rows with a hazard alarm take
    their hazard fields from the engine's record for that row.
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

    scores = np.array(_rounded(rs.top_scores, 4), dtype=np.float64).reshape(n, k)
    cand = _join_valid(top_ids, tx.cand_prefix, _text(scores.ravel().tolist()).reshape(n, k))
    cids = rs.comp_ids.astype(np.intp)
    comp = _join_valid(cids, tx.comp_prefix,
                       _text(_rounded(rs.comp_fracs, 3)).reshape(cids.shape))

    # QC figures, as the records give them (ints for integer and boolean figures)
    qc_vals: dict[str, list[Any]] = {}
    for key, arr in rs.qc.items():
        arr = np.asarray(arr)
        qc_vals[key] = (arr.astype(np.int64).tolist() if arr.dtype.kind in "iub"
                        else _rounded(arr, 4))
    qc_txt = np.full(n, "{", dtype=object)
    for j, (key, vals) in enumerate(qc_vals.items()):
        qc_txt = qc_txt + (("," if j else "") + dumps(key) + ":") + _text(vals)
    qc_txt = qc_txt + "}"

    # the engine's wording: reasons, warnings and calibration status (one copy of that logic)
    cache: dict[Any, Any] = {}
    reason = np.asarray(ident.reason_texts(rs), dtype=object)
    warnings = ident.record_warnings(rs, cache=cache)
    warn_txt = np.array([dumps(w) for w in warnings], dtype=object)
    meta = [rs.meta[i] if i < len(rs.meta) else {} for i in range(n)]
    cal_txt = np.array([dumps(ident.calibration_of(m, cache)[0]) for m in meta], dtype=object)

    provenance = np.where(best0 >= 0, tx.provenance[np.maximum(best0, 0)], None)
    cols: dict[str, Any] = {
        "verdict": np.array(VERDICTS, dtype=object)[verdict],
        "reason": reason,
        "hazard_level": np.array(HAZARD_LEVELS, dtype=object)[rs.hazard_level.astype(np.intp)],
        "hazard_substances": np.full(n, "[]", dtype=object),
        "hazard_message": np.full(n, None, dtype=object),
        "top_id": np.where(has_best, tx.ids[np.maximum(best, 0)], None),
        "top_name": np.where(has_best, tx.names[np.maximum(best, 0)], None),
        "top_score": np.where(has_best, scores[rows, first], np.nan),
        "candidates": cand, "components": comp, "qc": qc_txt,
        "shift_cm1": np.array(_rounded(rs.shift, 2)),
        "residual_r": np.array(_rounded(rs.mix_r, 4)),
        "best_provenance": provenance.astype(object),
        "warnings": warn_txt, "calibration": cal_txt,
        "library_version": np.full(n, tx.version, dtype=object),
        "library_sha256": np.full(n, tx.sha256, dtype=object),
        "recipe": np.full(n, tx.recipe, dtype=object),
        "engine_version": np.full(n, tx.engine_version, dtype=object),
    }
    for key in QC_COLUMNS:
        cols[f"qc_{key}"] = (np.array(qc_vals[key], dtype=np.float64) if key in qc_vals
                             else np.full(n, np.nan))

    # hazard alarms: substances and handling message from the engine's record of that row
    hits = rs.hazard_hits.any(axis=1) if rs.hazard_hits.size else np.zeros(n, dtype=bool)
    for i in rows[hits].tolist():
        rec = ident._record(rs, i, reason=reason[i], warnings=warnings[i], scan_id="",
                            cache=cache)
        hz = rec.get("hazard") or {}
        cols["hazard_substances"][i] = dumps(hz.get("substances") or [])
        cols["hazard_message"][i] = hz.get("message") or None
    return cols
