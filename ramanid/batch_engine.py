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
                   "best_provenance", "warnings", "library_version", "library_sha256",
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

    identifier = Identifier(load_library(library))

    def process(batch: SpectrumBatch) -> batch_io.Table:
        return columns_from_resultset(identifier.run(batch))

    return process


def dumps(obj: Any) -> str:
    """Compact JSON text (the form of every JSON column)."""
    return json.dumps(obj, default=batch_io._json_default, separators=(",", ":"))


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
        self.t_entry = np.asarray(ident.thresholds.t_entry, dtype=np.float64)
        lib = ident.library
        self.version = getattr(lib, "version", None)
        self.sha256 = getattr(lib, "sha256", None)
        self.recipe = dumps(ident.recipe.to_dict())
        self.engine_version = ENGINE_VERSION
        self.class_warnings = list(ident._class_warnings)
        self.warn_cal = dumps([*self.class_warnings, {
            "code": "calibration", "state": "missing",
            "message": "no calibration record was applied to this scan"}])
        self.warn_plain = dumps(self.class_warnings)


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


def columns_from_resultset(rs: Any) -> dict[str, np.ndarray]:
    """Verdict columns straight from a :class:`ramanid.identify.ResultSet` (vectorised).

    Equal to ``columns_from_records(rs.records())``; rows with a hazard alarm or resting on a
    non-measured reference are taken from the engine's record for that row.
    """
    from ramanid.identify import HAZARD_LEVELS, REASONS, VERDICTS

    ident = rs.identifier
    tx = _entry_text(ident)
    n = len(rs)
    rows = np.arange(n)
    verdict = rs.verdict.astype(np.intp)
    top_ids = rs.top_ids.astype(np.intp)
    best = top_ids[:, 0]
    k = top_ids.shape[1]

    # candidates: '[{"id":..,"name":..,"score":s},...]'
    scores = np.array(_rounded(rs.top_scores, 4), dtype=np.float64).reshape(n, k)
    score_txt = _text(scores.ravel().tolist()).reshape(n, k)
    cand = np.full(n, "[", dtype=object)
    for j in range(k):
        cand = cand + ("," if j else "") + tx.cand_prefix[top_ids[:, j]] + score_txt[:, j] + "}"
    cand = cand + "]"

    # components (valid ids are >= 0)
    cids = rs.comp_ids.astype(np.intp)
    c = cids.shape[1]
    frac_txt = _text(_rounded(rs.comp_fracs, 3)).reshape(n, c)
    comp = np.full(n, "", dtype=object)
    for j in range(c):
        valid = cids[:, j] >= 0
        piece = tx.comp_prefix[np.maximum(cids[:, j], 0)] + frac_txt[:, j] + "}"
        comp = np.where(valid, np.where(comp != "", comp + "," + piece, piece), comp)
    comp = "[" + comp + "]"

    # QC figures, as the records round them
    qc_vals: dict[str, list[Any]] = {}
    for key, arr in rs.qc.items():
        qc_vals[key] = (np.asarray(arr).astype(np.int64).tolist() if arr.dtype.kind in "iu"
                        else _rounded(np.asarray(arr), 4))
    qc_txt = np.full(n, "{", dtype=object)
    for j, (key, vals) in enumerate(qc_vals.items()):
        qc_txt = qc_txt + (("," if j else "") + dumps(key) + ":") + _text(vals)
    qc_txt = qc_txt + "}"

    # reasons (the engine's wording)
    names = tx.names[best].tolist()
    top0 = rs.top_scores[:, 0].astype(np.float64).tolist()
    thr = tx.t_entry[best].tolist()
    mix_r = rs.mix_r.astype(np.float64).tolist()
    n_comp = (cids >= 0).sum(axis=1).tolist()
    vcodes = verdict.tolist()
    rcodes = rs.reason.astype(np.intp).tolist()
    reason = np.empty(n, dtype=object)
    for i in range(n):
        v = vcodes[i]
        if v == 3:
            reason[i] = f"quality check failed: {REASONS[rcodes[i]]}"
        elif v == 0:
            reason[i] = f"best match {names[i]} r={top0[i]:.3f} >= its threshold {thr[i]:.3f}"
        elif v == 1:
            reason[i] = (f"mixture of {n_comp[i]} significant components explains the scan "
                         f"(r={mix_r[i]:.3f})")
        else:
            reason[i] = (f"no library entry explains the scan: best {names[i]} r={top0[i]:.3f}"
                         f" < its threshold {thr[i]:.3f}")

    calibrated = np.array([(rs.meta[i] if i < len(rs.meta) else {}).get("calibration_id")
                           is not None for i in range(n)], dtype=bool)
    cols: dict[str, Any] = {
        "verdict": np.array(VERDICTS, dtype=object)[verdict],
        "reason": reason,
        "hazard_level": np.array(HAZARD_LEVELS, dtype=object)[rs.hazard_level.astype(np.intp)],
        "hazard_substances": np.full(n, "[]", dtype=object),
        "hazard_message": np.full(n, None, dtype=object),
        "top_id": tx.ids[best], "top_name": tx.names[best], "top_score": scores[:, 0],
        "candidates": cand, "components": comp, "qc": qc_txt,
        "shift_cm1": np.array(_rounded(rs.shift, 2)),
        "residual_r": np.array(_rounded(rs.mix_r, 4)),
        "best_provenance": tx.provenance[best],
        "warnings": np.where(calibrated, tx.warn_plain, tx.warn_cal).astype(object),
        "library_version": np.full(n, tx.version, dtype=object),
        "library_sha256": np.full(n, tx.sha256, dtype=object),
        "recipe": np.full(n, tx.recipe, dtype=object),
        "engine_version": np.full(n, tx.engine_version, dtype=object),
    }
    for key in QC_COLUMNS:
        cols[f"qc_{key}"] = (np.array(qc_vals[key], dtype=np.float64) if key in qc_vals
                             else np.full(n, np.nan))

    # rows the engine words individually: hazard alarms, results on non-measured entries
    special = rs.hazard_hits.any(axis=1) if rs.hazard_hits.size else np.zeros(n, dtype=bool)
    if tx.unmeasured.any():
        um = tx.unmeasured
        special = special | ((verdict == 0) & um[best])
        special |= ((cids >= 0) & um[np.maximum(cids, 0)]).any(axis=1)
        if rs.hazard_hits.size:
            special |= (rs.hazard_hits & um[ident.hazard_idx][None, :]).any(axis=1)
    special_rows = rows[special]
    if special_rows.size:
        recipe_text: dict[int, str] = {}
        for i in special_rows.tolist():
            row = _record_row(ident._record(rs, i), recipe_text)
            for key in VERDICT_COLUMNS:
                col, value = cols[key], row[key]
                if col.dtype.kind == "f":
                    col[i] = np.nan if value is None else value
                else:
                    col[i] = None if value == "" else value
    return cols


# -- calibration status (as ``ramanid identify`` completes its records) ----------------------
def apply_calibration_status(table: batch_io.Table, meta: Sequence[dict[str, Any]]) -> None:
    """Fill the ``calibration`` column and make the calibration warning agree with it.

    For each scan, :func:`ramanid.calibration.scan_calibration` gives the status of the
    calibration applied to it (or why none was); as in ``ramanid identify``, the engine's
    generic calibration warning is replaced by the one of that status (none when it is ok).
    Statuses are computed once per device and calibration id when they do not depend on the
    scan's time (no record on this machine), else once per distinct timestamp. Rows without a
    verdict (errors) are left alone.
    """
    try:
        from ramanid.calibration import scan_calibration
    except ImportError:        # calibration package absent: keep the engine's warning
        return
    statuses: dict[tuple[Any, ...], dict[str, Any] | None] = {}
    timeless: dict[tuple[Any, Any], bool] = {}
    rewritten: dict[tuple[str, str], str] = {}
    cal_col, warn_col, ok = table["calibration"], table["warnings"], table["status"]
    for i, m in enumerate(meta):
        if ok[i] != "ok":
            continue
        dev = (m.get("device_serial"), m.get("calibration_id"))
        key = dev if timeless.get(dev) else (*dev, m.get("timestamp"))
        if key not in statuses:
            try:
                st = dict(scan_calibration(dict(m)))
            except Exception:  # a broken calibration store must not stop the batch
                st = None
            statuses[key] = st
            if st is not None and st.get("age_days") is None and dev not in timeless:
                timeless[dev] = True
                statuses[dev] = st
        st = statuses[key]
        if st is None:
            continue
        text = dumps(st)
        cal_col[i] = text
        wkey = (warn_col[i] or "[]", text)
        if wkey not in rewritten:
            kept = [w for w in json.loads(wkey[0])
                    if not (isinstance(w, dict) and w.get("code") == "calibration")]
            if st.get("warning"):
                kept.append({"code": "calibration", "state": st.get("state"),
                             "message": st["warning"]})
            rewritten[wkey] = dumps(kept)
        warn_col[i] = rewritten[wkey]
