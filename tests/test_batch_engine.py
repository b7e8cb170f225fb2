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
    _assert_same(fast, slow)


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


def _assert_same(fast: dict, slow: dict) -> None:
    for key in VERDICT_COLUMNS:
        a, b = fast[key], slow[key]
        assert a.dtype == b.dtype, key
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            assert a.tolist() == b.tolist(), key


def test_metadata_as_columns_gives_the_record_columns(shared_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Archive blocks go to the engine without per-row dicts (``bare_batch`` + ``MetaColumns``):
    the columns equal the records' also when the calibration status depends on the scan time
    (a device with a record: one status per timestamp) or not (no record: one per device)."""
    import ramanid.calibration as calibration

    from ramanid.batch_engine import MetaColumns, bare_batch
    from ramanid.identify import Identifier
    from ramanid.io.archive import ArchiveReader, write_archive
    from ramanid.library import load_library

    def fake_status(meta: dict, when: object = None) -> dict:
        serial, ts = meta.get("device_serial"), meta.get("timestamp")
        if serial != "REC-1":
            return {"id": None, "serial": serial, "state": "missing", "applied": False,
                    "warning": f"no calibration record for {serial}"}
        age = float(str(ts)[-2:]) if ts else 0.0
        return {"id": "rec-7", "serial": serial, "age_days": age, "applied": True,
                "state": "stale" if age > 30 else "ok",
                "warning": f"{age:.0f} days old" if age > 30 else None}

    monkeypatch.setattr(calibration, "scan_calibration", fake_status)
    batch = _varied_batch(shared_data)
    meta = [{**m, "device_serial": ["REC-1", "SN-2", None][i % 3],
             "timestamp": f"2025-01-01T00:00:{(7 * i) % 60:02d}" if i % 4 else None,
             "operator": "é" if i % 2 else None} for i, m in enumerate(batch.meta)]
    path = tmp_path / "a.h5"
    write_archive(path, [SpectrumBatch(batch.axis, batch.intensity, meta)])
    with ArchiveReader(path) as reader:
        block = reader.read_block(0, len(batch))
    ident = Identifier(load_library())
    rs = ident.run(bare_batch(block.axis, block.intensity))
    fast = columns_from_resultset(rs, MetaColumns(block.meta_columns(str(path)), len(block)))
    slow = columns_from_records(ident.run(block.to_batch(str(path))).records())
    assert len({c for c in slow["calibration"].tolist()}) >= 4
    _assert_same(fast, slow)


def test_a_change_of_the_engines_wording_is_followed(shared_data: Path) -> None:
    """The batch's reasons are the engine's own (Identifier.reason_texts): a change of its
    wording reaches the batch columns."""
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    ident = Identifier(load_library())
    rs = ident.run(_varied_batch(shared_data))
    plain = ident.reason_texts

    def reworded(rs_: object, rows: object = None) -> np.ndarray:
        return np.array([f"{t} (v2)" for t in plain(rs_, rows)], dtype=object)

    ident.reason_texts = reworded
    fast = columns_from_resultset(rs)
    assert fast["reason"].tolist() == [f"{t} (v2)" for t in plain(rs)]


def test_number_text_is_json_of_the_rounded_values() -> None:
    import json

    from ramanid.batch_engine import _number_text, _rounded, _rounded_array
    from ramanid.textfmt import fixed

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-2, 2, 5000), rng.uniform(0, 5e4, 500),
                        np.arange(-40, 41) / 8e4, [0.0, -0.0, 1e-5, -1e-5, 12345.00005]])
    for digits in (2, 3, 4):
        assert _rounded(x, digits) == [round(v, digits) for v in x.tolist()]
        r = _rounded_array(x, digits)
        want = [json.dumps(v) + "}" for v in r.tolist()]
        assert _number_text(r, "}", digits).tolist() == want
        assert _number_text(r[:50], "", digits).tolist() == [json.dumps(v) for v in r[:50]]
    ints = rng.integers(-3, 9, 300)
    assert _number_text(ints).tolist() == [str(v) for v in ints.tolist()]
    f32 = np.concatenate([rng.uniform(-1.2, 1.2, 3000), [np.nan, -0.0004, 0.0625]])
    f32 = f32.astype(np.float32)
    assert fixed(f32, 3).tolist() == [f"{float(v):.3f}" for v in f32]
    assert fixed(f32, 0, 100.0).tolist() == [f"{100 * float(v):.0f}" for v in f32]
    f64 = np.concatenate([rng.uniform(0, 1, 2000), [np.nan, np.inf, 0.7445, 0.0005, 1 / 3]])
    assert fixed(f64, 3).tolist() == [f"{v:.3f}" for v in f64.tolist()]
    assert fixed(f64, 0, 100.0).tolist() == [f"{100 * v:.0f}" for v in f64.tolist()]


def test_number_text_of_unit_range_values_and_zeros_of_both_signs() -> None:
    """Values in [-1, 1] (texts looked up in a table kept for the process), zeros of both
    signs in one column (they share a key: 0.0 and -0.0 must keep their own text), values just
    outside the table and values that are not rounded: each is ``json.dumps`` of the value."""
    import json

    from ramanid.batch_engine import _number_text, _rounded_array

    rng = np.random.default_rng(11)
    tiny = rng.uniform(-1e-6, 1e-6, 200)                       # round to 0.0 and -0.0
    cases = [rng.uniform(-1, 1, 4000).astype(np.float32), rng.uniform(0, 1, 3000),
             np.concatenate([tiny, rng.uniform(0, 1e-3, 200)]),
             np.array([-1.0, 1.0, 1.00004, -1.00006, 0.99996, 0.5]),
             np.concatenate([rng.uniform(-1, 1, 50), [-0.0]])]
    for digits in (0, 1, 3, 4):
        for x in cases:
            for tail in ("", "}"):
                r = _rounded_array(x, digits)
                want = [json.dumps(v) + tail for v in r.tolist()]
                assert _number_text(r, tail, digits).tolist() == want
                raw = np.asarray(x, dtype=np.float64)   # not rounded: no table, no grouping
                assert _number_text(raw, tail, digits).tolist() == \
                    [json.dumps(v) + tail for v in raw.tolist()]


def test_rows_resting_on_non_measured_references(shared_data: Path) -> None:
    """Rows whose result uses a non-measured reference get the engine's note row by row; the
    others share their group's warnings."""
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    ident = Identifier(load_library())
    ident.measured = np.arange(len(ident.entries)) % 2 == 0    # half the entries "synthetic"
    rs = ident.run(_varied_batch(shared_data))
    fast = columns_from_resultset(rs)
    slow = columns_from_records(rs.records())
    notes = sum("non_measured_reference" in w for w in slow["warnings"].tolist())
    assert 0 < notes < len(rs)
    _assert_same(fast, slow)


def test_partial_range_reasons_quote_the_range_thresholds(shared_data: Path) -> None:
    """Scans covering part of the library axis are judged by thresholds over that range
    (ramanid.identify.Identifier.entry_thresholds): the batch's reasons quote those."""
    from ramanid.identify import Identifier
    from ramanid.library import load_library

    full = _varied_batch(shared_data)
    keep = full.axis <= 1250.0
    batch = SpectrumBatch(full.axis[keep], full.intensity[:, keep], full.meta)
    ident = Identifier(load_library())
    rs = ident.run(batch)
    t_range = ident._result_thresholds(rs)
    assert not np.allclose(t_range, ident.thresholds.t_entry)
    slow = columns_from_records(rs.records())
    fast = columns_from_resultset(rs)
    assert fast["reason"].tolist() == slow["reason"].tolist()
    quoted = [r for r in slow["reason"].tolist() if "threshold" in r]
    assert quoted and all(f"{t:.3f}" in " ".join(quoted) for t in
                          t_range[rs.top_ids[:, 0][rs.verdict == 0]])
