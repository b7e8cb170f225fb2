"""The engine side of ``ramanid batch``: verdict columns from ``ramanid.identify`` results.

:func:`make_engine_processor` loads a library once and returns a function that maps a
:class:`~ramanid.spectrum.SpectrumBatch` to the verdict columns of the batch result table
(:data:`ramanid.batch_io.RESULT_COLUMNS`), flattened from the same record contract as
``ramanid identify --json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ramanid import batch_io
from ramanid.spectrum import SpectrumBatch

#: QC figures that get their own float column (all QC figures are also in the ``qc`` JSON).
QC_COLUMNS = ("snr", "saturation", "fluorescence", "coverage")


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
        return columns_from_records(identifier.run(batch).records())

    return process


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=batch_io._json_default, separators=(",", ":"))


def columns_from_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Flatten identify records (the ``--json`` contract) into verdict columns.

    Best candidate -> ``top_id``/``top_name``/``top_score``; lists and dicts -> JSON text.
    """
    n = len(records)
    cols: dict[str, list[Any]] = {k: [None] * n for k in (
        "verdict", "reason", "hazard_level", "hazard_substances", "hazard_message", "top_id",
        "top_name", "top_score", "candidates", "components", "qc", "library_version",
        "library_sha256", "recipe", "engine_version",
        *(f"qc_{k}" for k in QC_COLUMNS))}
    recipe_text: dict[int, str] = {}
    for i, r in enumerate(records):
        cols["verdict"][i] = r.get("verdict")
        cols["reason"][i] = r.get("reason")
        hz = r.get("hazard") or {}
        cols["hazard_level"][i] = hz.get("level", "none")
        cols["hazard_substances"][i] = _dumps(hz.get("substances") or [])
        cols["hazard_message"][i] = hz.get("message")
        cands = r.get("candidates") or []
        if cands:
            cols["top_id"][i] = cands[0].get("id")
            cols["top_name"][i] = cands[0].get("name")
            cols["top_score"][i] = cands[0].get("score")
        cols["candidates"][i] = _dumps(cands)
        cols["components"][i] = _dumps(r.get("components") or [])
        qc = r.get("qc") or {}
        cols["qc"][i] = _dumps(qc)
        for k in QC_COLUMNS:
            v = qc.get(k)
            cols[f"qc_{k}"][i] = float(v) if isinstance(v, (int, float, np.number)) else None
        lib = r.get("library") or {}
        cols["library_version"][i] = lib.get("version")
        cols["library_sha256"][i] = lib.get("sha256")
        recipe = r.get("recipe")
        key = id(recipe)
        if key not in recipe_text:
            recipe_text[key] = _dumps(recipe)
        cols["recipe"][i] = recipe_text[key]
        cols["engine_version"][i] = r.get("engine_version")
    return {k: batch_io.as_column(v, batch_io.COLUMN_KIND[k]) for k, v in cols.items()}
