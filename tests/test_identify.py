"""Verdict rules and the hazard layer on constructed cases built from real spectra.

The test library is built in memory (``ramanid.library.build_library``) from the raw spectra of
the shipped default library: measured ENLIGHTEN cutting agents and look-alikes, ammonium nitrate
(measured, hazard high) and the library's modelled fentanyl-class entries (hazard extreme).
Cases: pure, mixture, unknown (hold-out), weak, saturated, fluorescent, shifted, hazard.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramanid.identify import HAZARD_LEVELS, VERDICTS, Identifier, identify
from ramanid.io import read
from ramanid.library import LibrarySource, build_library, load_library
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(90)

MEASURED = ("Caffeine", "Lactose", "Glucose", "Sucrose", "Fructose", "Acetaminophen",
            "Sodium bicarbonate", "Calcium carbonate", "Citric acid", "Melamine", "Urea",
            "Ibuprofen", "Polystyrene", "Benzyl alcohol", "Toluene", "Cyclohexane",
            "Methanol", "Ethanol", "Glycerol", "Mannitol", "Ammonium nitrate", "Fentanyl",
            "Carfentanil")
FIELDS = ("substance", "substance_class", "hazard_level", "handling", "provenance_kind",
          "source", "licence", "instrument", "laser_nm", "acquisition")


def _sources(names=MEASURED, exclude=()):
    lib = load_library()
    out, raw = [], {}
    for e in lib.entries:
        if e.name not in names or e.name in exclude:
            continue
        if e.provenance_kind == "measured" and e.name != "Ammonium nitrate" and \
                e.acquisition.get("set") != "enlighten-library":
            continue  # one instrument for the look-alikes; library-older scans are the queries
        ax, v = lib.raw(e.id)
        raw[e.name] = (ax, v)
        out.append(LibrarySource(ax, v, name=e.name, **{f: getattr(e, f) for f in FIELDS}))
    return out, raw


@pytest.fixture(scope="module")
def world(shared_data):
    sources, raw = _sources()
    lib = build_library(sources)
    return Identifier(lib), lib, raw


def _scan(raw, parts, *, snr=200.0, scale=5000.0, seed=0, background=None, shift=0.0):
    """Mixture of real spectra at given spectral fractions (unit-norm centred weights)."""
    rng = np.random.default_rng(seed)
    axis = np.arange(300.0, 2300.0, 1.0)
    y = np.zeros_like(axis)
    for name, frac in parts:
        ax, v = raw[name]
        s = np.interp(axis - shift, ax, v, left=0.0, right=0.0)
        s = s - np.median(s)
        y += frac * s / np.linalg.norm(s - s.mean())
    y *= scale / y.max()
    if background is not None:
        y += background(axis)
    y += rng.normal(0, scale / snr, axis.size)
    return axis, y


def _run(ident, axis, rows):
    return ident.run(SpectrumBatch(axis, np.atleast_2d(rows))).records()


def test_pure_cross_instrument_scans_match(world, shared_data):
    ident, _, _ = world
    for name, want in (("glucose", "Glucose"), ("sucrose", "Sucrose"),
                       ("acetaminophen", "Acetaminophen"), ("toluene", "Toluene")):
        scan = read(shared_data / "enlighten" / "library-older" / f"{name}.csv")
        rec = ident.run(scan).records()[0]
        assert rec["verdict"] == "match", rec["reason"]
        assert rec["candidates"][0]["name"] == want
        assert rec["hazard"]["level"] == "none"
        assert rec["components"][0]["name"] == want


def test_mixture_of_two_cutting_agents(world):
    ident, _, raw = world
    axis, y = _scan(raw, [("Caffeine", 0.5), ("Lactose", 0.5)], snr=300)
    rec = _run(ident, axis, y)[0]
    assert rec["verdict"] == "mixture", rec["reason"]
    names = {c["name"]: c["fraction"] for c in rec["components"]}
    assert set(names) == {"Caffeine", "Lactose"}
    assert names["Caffeine"] == pytest.approx(0.5, abs=0.15)
    assert rec["hazard"]["level"] == "none"


def test_unknown_substance_is_no_match(world, shared_data):
    ident, _, raw = world
    # hold-out: caffeine removed from the library, then queried
    sources, _ = _sources(exclude=("Caffeine",))
    held = Identifier(build_library(sources))
    axis, y = _scan(raw, [("Caffeine", 1.0)], snr=300)
    rec = _run(held, axis, y)[0]
    assert rec["verdict"] == "no_match", rec["reason"]
    assert all(c["name"] != "Caffeine" for c in rec["candidates"])
    # sulfur (measured on another instrument) is not in the library
    rec = ident.run(read(shared_data / "enlighten" / "library-older" / "sulfur.csv")).records()[0]
    assert rec["verdict"] == "no_match"


def test_weak_saturated_fluorescent_are_inconclusive(world):
    ident, _, raw = world
    axis, clean = _scan(raw, [("Lactose", 1.0)], snr=300)
    _, weak = _scan(raw, [("Lactose", 1.0)], snr=3, seed=1)
    saturated = np.minimum(clean, 0.5 * clean.max())
    # fluorescence 500x the band height, with its shot noise (counts ~ 1 per unit)
    rng = np.random.default_rng(2)
    bg = 500 * clean.max() * np.exp(-(axis - 300) / 1500)
    fluor = clean + bg + rng.normal(0, np.sqrt(bg))
    recs = _run(ident, axis, np.vstack([clean, weak, saturated, fluor]))
    assert recs[0]["verdict"] == "match"
    for rec, word in zip(recs[1:], ("weak", "saturated", "fluorescence"), strict=False):
        assert rec["verdict"] == "inconclusive", rec["reason"]
        assert word in rec["reason"]
        assert rec["hazard"]["level"] == "none"


def test_moderate_fluorescence_and_shift_still_match(world):
    ident, _, raw = world
    axis, y = _scan(raw, [("Sucrose", 1.0)], snr=200, shift=8.0,
                    background=lambda x: 20000 * np.exp(-(x - 300) / 700) + 3000)
    rec = _run(ident, axis, y)[0]
    assert rec["verdict"] == "match", rec["reason"]
    assert rec["candidates"][0]["name"] == "Sucrose"
    assert rec["shift_cm1"] == pytest.approx(8.0, abs=1.0)


@pytest.mark.parametrize("hazard,level", [("Ammonium nitrate", "high"), ("Fentanyl", "extreme")])
def test_minor_hazard_component_alarms(world, hazard, level):
    ident, _, raw = world
    rows = []
    for i, cut in enumerate(("Lactose", "Caffeine", "Glucose")):
        axis, y = _scan(raw, [(cut, 0.8), (hazard, 0.2)], snr=200, seed=10 + i)
        rows.append(y)
    for rec in _run(ident, axis, np.vstack(rows)):
        assert rec["hazard"]["level"] == level, rec["reason"]
        assert hazard in [s["name"] for s in rec["hazard"]["substances"]]
        assert rec["hazard"]["message"]


def test_no_false_alarm_on_pure_cutting_agents(world):
    ident, _, raw = world
    cuts = ("Caffeine", "Lactose", "Glucose", "Sucrose", "Fructose", "Acetaminophen",
            "Sodium bicarbonate", "Mannitol", "Calcium carbonate")
    rows = []
    for i, cut in enumerate(c for c in cuts if c in raw):
        axis, y = _scan(raw, [(cut, 1.0)], snr=200, seed=20 + i)
        rows.append(y)
    recs = _run(ident, axis, np.vstack(rows))
    assert all(r["hazard"]["level"] == "none" for r in recs), [r["reason"] for r in recs]
    assert all(r["verdict"] == "match" for r in recs)


def test_records_contract_and_honesty_warnings(world):
    _ident, lib, raw = world
    axis, y = _scan(raw, [("Caffeine", 0.8), ("Fentanyl", 0.2)], snr=200)
    _axis2, y2 = _scan(raw, [("Lactose", 1.0)], snr=200)
    batch = SpectrumBatch(axis, np.vstack([y, y2]),
                          [{"source": "a.csv", "device_serial": "WP-1", "laser_nm": 785.0,
                            "calibration_id": "cal-7"},
                           {"source": "b.csv"}])
    recs = identify(batch, lib, top=3)
    json.dumps(recs)
    keys = {"source", "verdict", "reason", "hazard", "candidates", "components", "qc", "library",
            "recipe", "engine_version", "shift_cm1", "warnings", "device_serial", "laser_nm",
            "integration_ms", "timestamp"}
    for r in recs:
        assert keys <= set(r)
        assert r["verdict"] in VERDICTS and r["hazard"]["level"] in HAZARD_LEVELS
        assert len(r["candidates"]) == 3
        assert r["library"] == {"version": lib.version, "sha256": lib.sha256}
        assert set(r["qc"]) >= {"snr", "saturation", "fluorescence", "coverage"}
        codes = [w["code"] for w in r["warnings"]]
        assert "no_measured_reference_for_class" in codes   # opioids are modelled only
    assert recs[0]["source"] == "a.csv" and recs[0]["device_serial"] == "WP-1"
    # calibration: always the status of the record applied to the scan (a dict); "cal-7" is not
    # on this machine and b.csv had none applied: both warn, with the state the dict gives
    for r in recs:
        cal = r["calibration"]
        assert isinstance(cal, dict) and cal["state"] in ("ok", "missing", "failed", "stale")
        warn = [w for w in r["warnings"] if w["code"] == "calibration"]
        assert len(warn) == (cal["state"] != "ok")
        assert all(w["state"] == cal["state"] and w["message"] for w in warn)
    assert recs[0]["calibration"]["id"] == "cal-7" and recs[1]["calibration"]["id"] is None
    assert recs[0]["hazard"]["level"] == "extreme"
    nm = [w for w in recs[0]["warnings"] if w["code"] == "non_measured_reference"]
    assert nm and "Fentanyl" in nm[0]["entries"] and nm[0]["kind"] == "modelled"
    assert not any(w["code"] == "non_measured_reference" for w in recs[1]["warnings"])


def test_thresholds_come_from_the_library(world):
    ident, _, _ = world
    th = ident.thresholds
    assert 0.7 <= th.r_floor <= 0.9
    assert np.all(th.t_entry >= th.r_floor - 1e-9) and np.all(th.t_entry <= th.t_cap + 1e-9)
    names = [e.name for e in ident.entries]
    # fentanyl and carfentanil (close analogues) need more than the floor
    assert th.t_entry[names.index("Fentanyl")] > th.r_floor
    assert th.tau_hazard.shape == (ident.hazard_idx.size,) and np.all(th.tau_hazard >= 0)
    # deterministic: the same library gives the same thresholds
    again = Identifier(ident.library).thresholds
    assert np.array_equal(again.t_entry, th.t_entry) and again.tau_mix == th.tau_mix


def test_results_do_not_depend_on_chunking(world):
    ident, lib, raw = world
    rows = [_scan(raw, [(n, 1.0)], seed=i)[1]
            for i, n in enumerate(("Caffeine", "Urea", "Lactose"))]
    axis = _scan(raw, [("Caffeine", 1.0)])[0]
    batch = SpectrumBatch(axis, np.vstack(rows * 5))
    a = ident.run(batch)
    b = Identifier(lib, chunk=4, workers=2, thresholds=ident.thresholds).run(batch)
    assert np.array_equal(a.verdict, b.verdict) and np.array_equal(a.top_ids, b.top_ids)
    assert np.allclose(a.top_scores, b.top_scores, atol=1e-5)


def test_hazard_that_matches_on_its_own_alarms_even_when_ranked_second(world):
    ident, _, raw = world
    # ammonium nitrate's 1043 cm-1 band sits 3 cm-1 from sodium bicarbonate's: a 50/50 mix may
    # rank the bicarbonate first, but the scan also matches the hazardous entry on its own
    names = [e.name for e in ident.entries]
    if "Sodium bicarbonate" not in names:
        pytest.skip("no sodium bicarbonate entry")
    rows = [_scan(raw, [("Sodium bicarbonate", 0.5), ("Ammonium nitrate", 0.5)], seed=s)[1]
            for s in range(3)]
    axis = _scan(raw, [("Lactose", 1.0)])[0]
    for rec in _run(ident, axis, np.vstack(rows)):
        assert rec["hazard"]["level"] == "high", rec["reason"]


# --- requests from QA / calibration / report (10:01-10:39) -----------------------------------
def _strict():
    """Turn numpy RuntimeWarnings into errors (a scan must never print numpy warnings)."""
    import warnings
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", RuntimeWarning)
    return ctx


@pytest.mark.parametrize("axis", [np.linspace(15575.0, 15590.0, 64),   # KRY3.SPC-like
                                  np.array([500.0, 501.0]),               # two points
                                  np.linspace(200.0, 700.0, 400)])        # 26 % of the axis
def test_scans_off_the_library_axis_are_inconclusive_without_warnings(world, axis):
    _ident, lib, _ = world
    rng = np.random.default_rng(1)
    batch = SpectrumBatch(axis, rng.uniform(1, 2, (3, axis.size)))
    ctx = _strict()
    try:
        recs = identify(batch, lib)
    finally:
        ctx.__exit__(None, None, None)
    for r in recs:
        assert r["verdict"] == "inconclusive" and r["hazard"]["level"] == "none"
        assert "does not cover the library axis (310-1800 cm-1)" in r["reason"], r["reason"]
        assert r["candidates"] == [] and r["components"] == []
        json.dumps(r)


def test_flat_and_overflowing_spectra_say_no_signal(world):
    ident, _lib, raw = world
    axis, y = _scan(raw, [("Lactose", 1.0)])
    rows = np.vstack([0 * axis, 0 * axis + 7.0, 0 * axis - 3.0, y * 1e300 / y.max()])
    nan_row = np.where(axis > 1000, np.nan, y)[None, :]   # SpectrumBatch refuses it; arrays may
    ctx = _strict()
    try:
        recs = ident.run(SpectrumBatch(axis, rows)).records()
        recs += ident.run_processed(ident.recipe.process_array(axis, nan_row), [{}]).records()
    finally:
        ctx.__exit__(None, None, None)
    for r in recs[:3]:
        assert r["verdict"] == "inconclusive", r
        assert r["reason"] == "quality check failed: no Raman signal (flat spectrum)"
        assert r["qc"]["saturation"] == 0.0 and r["qc"]["snr"] == 0.0
    # 1e300 overflows float32: scaled, so the band structure still identifies lactose
    assert recs[3]["verdict"] == "match" and recs[3]["candidates"][0]["name"] == "Lactose"
    assert recs[4]["verdict"] == "inconclusive" and "not finite" in recs[4]["reason"]
    assert recs[4]["qc"]["nonfinite"] > 0


def test_library_without_approved_entries_is_a_library_error(shared_data):
    from ramanid.errors import LibraryError

    sources, _ = _sources(names=("Caffeine", "Lactose"))
    lib = build_library(sources, status="pending")
    assert len(lib.entries) == 0
    with pytest.raises(LibraryError, match="no approved entries") as exc:
        Identifier(lib)
    assert "ramanid library approve" in exc.value.one_line()


_NUMBERS = r"r=(?P<r>[0-9.]+)(?: \((?P<rc>[0-9.]+) corrected for the scan's noise\))?"


def _check_reason(rec, ident):
    """The numbers a reason quotes must satisfy the comparison it states."""
    import re
    reason = rec["reason"]
    m = re.search(_NUMBERS + r" (?P<op>>=|<|reaches) its threshold (?P<t>[0-9.]+)", reason)
    if rec["verdict"] in ("match", "no_match"):
        assert m, reason
        r = float(m["rc"] or m["r"])
        t = float(m["t"])
        if m["op"] == "<":
            assert rec["verdict"] == "no_match" and r < t, reason
        else:
            assert r >= t - 5e-4, reason
        if m["op"] == "reaches":
            u = re.search(r"but (\d+)% of the scan's band energy .* \(limit (\d+)%\)", reason)
            assert u and int(u[1]) >= int(u[2]), reason


def test_near_duplicate_hazard_analogues_do_not_hide_a_mixture(world):
    # Fentanyl and carfentanil (both in the library) correlate at ~0.97: each could stand in
    # for the other, so a backward significance test found neither significant and a 25 %
    # fentanyl + lactose scan came out no_match with empty components
    ident, _, raw = world
    names = [e.name for e in ident.entries]
    assert {"Fentanyl", "Carfentanil"} <= set(names)
    rows = [_scan(raw, [("Lactose", 1 - f), ("Fentanyl", f)], seed=s, snr=100)[1]
            for s, f in enumerate((0.25, 0.3, 0.4, 0.25))]
    axis = _scan(raw, [("Lactose", 1.0)])[0]
    for rec in _run(ident, axis, np.vstack(rows)):
        _check_reason(rec, ident)
        assert rec["hazard"]["level"] == "extreme", rec["reason"]
        assert rec["verdict"] == "mixture", rec["reason"]
        comp = {c["name"] for c in rec["components"]}
        assert "Lactose" in comp and comp & {"Fentanyl", "Carfentanil"}, rec["components"]
    # opioid-dominated scans, with a response tilt the library does not have: alarm whatever the
    # verdict (the group test on the hazardous candidates of the fit)
    rows = []
    for s, f in enumerate((0.6, 0.7, 0.8)):
        axis, y = _scan(raw, [("Caffeine", 1 - f), ("Fentanyl", f)], seed=s, snr=60, shift=3.0)
        rows.append(y * (1 + 0.4 * (axis - axis.mean()) / np.ptp(axis)))
    for rec in _run(ident, axis, np.vstack(rows)):
        assert rec["hazard"]["level"] == "extreme", rec["reason"]


def test_default_library_demo_mixture_is_reported_as_a_mixture(shared_data):
    from ramanid.cli.demo import _opioid_entry, examples_dir, simulate_mixture

    lib = load_library()
    entry = _opioid_entry(lib)
    scan = simulate_mixture(read(examples_dir() / "lactose.csv"), lib, entry)
    ident = Identifier(lib)
    rec = ident.run(scan).records()[0]
    _check_reason(rec, ident)
    assert rec["hazard"]["level"] == "extreme"
    assert rec["verdict"] == "mixture", rec["reason"]
    comp = [c for c in rec["components"]]
    hazardous = {e.name for e in lib.entries if e.hazard_level == "extreme"}
    assert any(c["name"] == "Lactose" for c in comp)
    assert any(c["name"] in hazardous and 0.1 < c["fraction"] < 0.5 for c in comp), comp


def test_reasons_never_contradict_their_numbers(world, shared_data):
    ident, _, raw = world
    axis = _scan(raw, [("Lactose", 1.0)])[0]
    cases = [[(n, 1.0)] for n in ("Caffeine", "Urea", "Glucose")]
    cases += [[("Caffeine", 0.6), ("Lactose", 0.4)], [("Glucose", 0.7), ("Fentanyl", 0.3)],
              [("Sucrose", 0.85), ("Carfentanil", 0.15)], [("Melamine", 0.5), ("Urea", 0.5)]]
    rows = [_scan(raw, c, seed=i, snr=snr)[1] for i, c in enumerate(cases) for snr in (8, 30, 300)]
    # unknowns: substances absent from this library, from another instrument
    for name in ("benzonitrile", "acetone", "isopropanol"):
        f = shared_data / "enlighten" / "library-older" / f"{name}.csv"
        if f.exists():
            b = read(f)
            rows.append(np.interp(axis, b.axis, b.intensity[0]))
    recs = _run(ident, axis, np.vstack(rows))
    assert {r["verdict"] for r in recs} >= {"match", "no_match", "mixture"}
    for rec in recs:
        _check_reason(rec, ident)
    # the vectorised texts are the records' texts (one copy of the wording)
    rs = ident.run(SpectrumBatch(axis, np.vstack(rows)))
    assert list(ident.reason_texts(rs)) == [r["reason"] for r in rs.records()]


def test_calibration_state_of_the_applied_record(world, tmp_path, monkeypatch):
    from ramanid.calibration.records import CalibrationRecord, save_record

    monkeypatch.setenv("RAMANID_HOME", str(tmp_path))
    ident, _lib, raw = world
    good = CalibrationRecord(serial="WP-9", kind="shift", standard="polystyrene", passed=True)
    bad = CalibrationRecord(serial="WP-8", kind="shift", standard="polystyrene", passed=False)
    save_record(good)
    save_record(bad)
    axis, y = _scan(raw, [("Caffeine", 1.0)])
    metas = [{"device_serial": "WP-9", "calibration_id": good.id},
             {"device_serial": "WP-8", "calibration_id": bad.id},
             {"device_serial": "WP-9"},                     # device has a record, not applied
             {}]
    recs = ident.run(SpectrumBatch(axis, np.vstack([y] * 4), metas)).records()
    states = [r["calibration"]["state"] for r in recs]
    assert states == ["ok", "failed", "missing", "missing"]
    for r, st in zip(recs, states, strict=True):
        warn = [w for w in r["warnings"] if w["code"] == "calibration"]
        if st == "ok":
            assert not warn and r["calibration"]["id"] == good.id
        else:
            assert len(warn) == 1 and warn[0]["state"] == st and warn[0]["message"]
    cal_msg = [next(w["message"] for w in r["warnings"] if w["code"] == "calibration")
               for r in recs[1:]]
    assert "FAILED" in cal_msg[0] and "not applied" in cal_msg[1]
    # the field output shows each state as it is (report.render_text reads the dict)
    from ramanid.report import render_text
    texts = [render_text([r]) for r in recs]
    assert "valid" in texts[0] and "FAILED" in texts[1]
    assert "not applied" in texts[2] and "none on record" not in texts[2]


def test_scan_id_is_the_archive_content_id(world):
    from ramanid.io.archive import scan_ids

    ident, lib, raw = world
    axis, y = _scan(raw, [("Urea", 1.0)])
    batch = SpectrumBatch(axis, np.vstack([y, y * 2, y]),
                          [{"source": "a"}, {"source": "b"}, {"source": "c", "scan_id": "kept-1"}])
    want = scan_ids(batch).tolist()
    assert want[2] == "kept-1" and want[0] != want[1]
    assert [r["scan_id"] for r in identify(batch, lib)] == want
    rs = ident.run(batch)
    assert ident._record(rs, 1)["scan_id"] == want[1]     # one row alone (batch special rows)


def test_threshold_cache_gives_the_derived_thresholds(world, tmp_path, monkeypatch):
    monkeypatch.setenv("RAMANID_HOME", str(tmp_path))
    ident, lib, _ = world
    first = Identifier(lib).thresholds                       # derived, then written
    files = list((tmp_path / "cache" / "engine").glob("thresholds-*.json"))
    assert len(files) == 1
    again = Identifier(lib).thresholds                       # read back
    for k in ("r_floor", "tau_mix", "max_unexplained"):
        assert getattr(again, k) == getattr(first, k) == getattr(ident.thresholds, k)
    assert np.array_equal(again.t_entry, ident.thresholds.t_entry)
    assert np.array_equal(again.tau_hazard, ident.thresholds.tau_hazard)
    # other parameters -> another cache file; a corrupt file is recomputed, not trusted
    Identifier(lib, max_shift=6.0)
    assert len(list((tmp_path / "cache" / "engine").glob("thresholds-*.json"))) == 2
    files[0].write_text("{not json")
    assert np.array_equal(Identifier(lib).thresholds.t_entry, ident.thresholds.t_entry)


def test_minor_opioid_alarms_at_half_grid_step_offsets(world):
    # a unit 1, 3 or 5 cm-1 off sits half a library grid step (2 cm-1) from the shifted copies;
    # with a 2 cm-1 shift search the detector missed these (QA 11:08)
    ident, _, raw = world
    assert ident.matcher.shifts[1] - ident.matcher.shifts[0] <= 1.0
    rows = [_scan(raw, [(c, 0.9), ("Fentanyl", 0.1)], seed=i, snr=300, shift=sh)[1]
            for i, (c, sh) in enumerate((("Lactose", 1.0), ("Caffeine", 3.0), ("Glucose", -5.0),
                                         ("Lactose", -1.0)))]
    axis = _scan(raw, [("Lactose", 1.0)])[0]
    for rec in _run(ident, axis, np.vstack(rows)):
        assert rec["hazard"]["level"] == "extreme", rec["reason"]
        assert abs(rec["shift_cm1"]) > 0.5


def test_polystyrene_in_the_beam_is_not_an_opioid_but_a_minor_opioid_is(world):
    # a cutting agent scanned through a polystyrene container (QA 11:19): the modelled opioids'
    # strongest bands are polystyrene's phenyl bands; the nested test against the benign model
    # selected over every non-hazard entry must clear it, and 20 % fentanyl must still alarm
    ident, _, raw = world
    benign = [_scan(raw, [(c, 0.8), ("Polystyrene", 0.2)], snr=200, seed=40 + i)[1]
              for i, c in enumerate(("Lactose", "Caffeine", "Lactose", "Caffeine"))]
    opioid = [_scan(raw, [("Lactose", 0.8), ("Fentanyl", 0.2)], snr=200, seed=50 + i)[1]
              for i in range(3)]
    axis = _scan(raw, [("Lactose", 1.0)])[0]
    recs = _run(ident, axis, np.vstack(benign + opioid))
    for rec in recs[:len(benign)]:
        assert rec["hazard"]["level"] not in ("high", "extreme"), rec["reason"]
    for rec in recs[len(benign):]:
        assert rec["hazard"]["level"] == "extreme", rec["reason"]
        assert "Fentanyl" in [s["name"] for s in rec["hazard"]["substances"]]


def test_benign_model_is_selected_over_every_non_hazard_entry(world):
    # greedy forward selection finds a minor component that is not among the top candidates
    # by score, takes one entry per substance, and stops when the gain is not significant
    from ramanid.mixture import greedy_select

    ident, lib, _ = world
    names = [e.name for e in lib.entries]
    G = ident.matcher.gram()
    la, ps = names.index("Lactose"), names.index("Polystyrene")
    b = 0.8 * G[la] + 0.2 * G[ps]          # products of the noise-free mixture with every entry
    safe = ~ident.is_hazard
    ids = greedy_select(G, b[None, :], 4, 1e-9, pool=safe, group=ident.subst)[0]
    assert list(ids[:2]) == [la, ps]
    assert np.all(ids[2:] == -1)           # nothing left to explain: selection stopped
    score = b / np.sqrt(np.diag(G) * (0.64 * G[la, la] + 0.32 * G[la, ps] + 0.04 * G[ps, ps]))
    top3 = np.argsort(-np.where(safe, score, -np.inf))[:3]
    assert ps not in top3                   # the old top-3-by-score model missed it
    one = greedy_select(G, b[None, :], 4, 1.0, pool=safe)[0]
    assert list(one) == [la, -1, -1, -1]    # the first entry always enters; the rest must pay
