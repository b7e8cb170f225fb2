"""The batch hot path flattens the engine's columnar results exactly as its JSON records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ramanid.batch_engine import VERDICT_COLUMNS, columns_from_records, columns_from_resultset
from ramanid.io import read_batches
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(120)


def _varied_batch(shared_data: Path) -> SpectrumBatch:
    """Real measured scans plus derived cases: mixtures with a hazardous entry, weak and
    saturated signal, partial coverage, noise only (so every verdict and the hazard path occur).
    """
    rng = np.random.default_rng(11)
    files = sorted((shared_data / "enlighten" / "library-older").glob("*.csv"))
    axis = np.linspace(420.0, 2300.0, 900)
    real = {f.stem: np.interp(axis, b.axis, b.intensity[0])
            for f in files for b in read_batches(f)}
    names = sorted(real)
    rows, meta = [], []
    for i, name in enumerate(names):
        rows.append(real[name] + rng.normal(0, 0.01 * real[name].max(), axis.size))
        meta.append({"name": name, "calibration_id": "cal-1" if i % 2 else None})
    nitrate = real["ammonium nitrate"] / real["ammonium nitrate"].max()
    for name in ("lactose", "glucose", "sucrose"):
        base = real[name] / real[name].max()
        for f in (0.5, 0.2):
            rows.append(1000 * ((1 - f) * base + f * nitrate) + rng.normal(0, 5, axis.size))
            meta.append({"name": f"{name}+nitrate {f}"})
    rows.append(real["glucose"] * 1e-4 + rng.normal(0, 1.0, axis.size))      # weak
    rows.append(np.minimum(real["sucrose"] * 50, real["sucrose"].max() * 5))  # saturated
    partial = real["toluene"].copy()
    partial[axis > 700] = 0.0
    rows.append(partial)
    rows.append(rng.normal(100, 5, axis.size))                                 # noise only
    # bands at random places: a substance the library does not hold
    peaks = sum(1000 / (1 + ((axis - c) / 6.0) ** 2) for c in rng.uniform(500, 1750, 6))
    rows.append(peaks + rng.normal(0, 3, axis.size))
    meta += [{"name": "weak"}, {"name": "saturated"}, {"name": "partial"}, {"name": "noise"},
             {"name": "unknown"}]
    return SpectrumBatch(axis, np.array(rows), meta)


def test_fast_columns_equal_record_flattening(shared_data: Path) -> None:
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    batch = _varied_batch(shared_data)
    rs = Identifier(load_library()).run(batch)
    fast = columns_from_resultset(rs)
    slow = columns_from_records(rs.records())
    verdicts = set(slow["verdict"].tolist())
    assert {"match", "no_match"} <= verdicts and len(verdicts) >= 3
    assert any(level != "none" for level in slow["hazard_level"].tolist())
    for key in VERDICT_COLUMNS:
        a, b = fast[key], slow[key]
        assert a.dtype == b.dtype, key
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            assert a.tolist() == b.tolist(), key


def test_vectorised_rounding_is_pythons_round() -> None:
    from ramanid.batch_engine import _rounded

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-1.5, 1.5, 200_000),
                        np.arange(-64, 65) / 32.0,           # exact halfway cases at 4 digits
                        np.arange(-80, 81) / 16.0, [0.0, -0.0, 1.0]]).astype(np.float32)
    for digits in (2, 3, 4):
        assert _rounded(x, digits) == [round(v, digits) for v in x.astype(float).tolist()]
    wide = rng.uniform(0, 5000, 1000)                          # float64 takes the plain path
    assert _rounded(wide, 4) == [round(v, 4) for v in wide.tolist()]


def test_scans_off_the_library_axis_have_no_candidates(shared_data: Path) -> None:
    """A batch covering < 50 % of the library axis is not matched (``top_ids`` = -1)."""
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    batch = _varied_batch(shared_data)
    keep = batch.axis > 1500.0                       # 1500-2300 cm-1: ~20 % of 310-1800
    off = SpectrumBatch(batch.axis[keep], batch.intensity[:, keep], batch.meta)
    rs = Identifier(load_library()).run(off)
    assert (np.asarray(rs.top_ids) < 0).all()
    fast = columns_from_resultset(rs)
    slow = columns_from_records(rs.records())
    for key in VERDICT_COLUMNS:
        a, b = fast[key], slow[key]
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            assert a.tolist() == b.tolist(), key
    assert set(fast["verdict"].tolist()) == {"inconclusive"}
    assert fast["top_id"].tolist() == [None] * len(off)
    assert fast["candidates"].tolist() == ["[]"] * len(off)
    assert fast["best_provenance"].tolist() == [None] * len(off)
