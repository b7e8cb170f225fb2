"""Calibration: conversions, peak finding, refusals on bad inputs, records, status, apply, CLI.

Real lamp/standard spectra from ../shared/data/charisma; records in a temporary RAMANID_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from ramanid.calibration import (
    CalibrationRecord,
    apply_calibration,
    calibration_status,
    load_record,
    save_record,
)
from ramanid.calibration.excitation import fit_excitation
from ramanid.calibration.intensity import fit_intensity
from ramanid.calibration.peaks import find_peaks
from ramanid.calibration.rawfile import RawMeasurement, read_raw
from ramanid.calibration.reference import lamp_lines, load_astm_e1840, srm_for_laser
from ramanid.calibration.units import (
    air_refractive_index,
    air_wavelength_to_shift,
    laser_from_band,
    shift_to_air_wavelength,
    wavelength_to_shift,
)
from ramanid.calibration.wavelength import fit_wavelength

from ramanid.errors import CalibrationError
from ramanid.spectrum import SpectrumBatch

BW785 = "charisma/ICV_BW785"
NEON785 = f"{BW785}/Ne_785nm_x20_50ms.txt"
SI785 = f"{BW785}/S0N02_iRPlus785_Z100_100_3100ms.txt"
PST785 = f"{BW785}/PST02_iRPlus785_Z100_100_9000ms.txt"
SRM785 = f"{BW785}/NISTSRM2241_BW785_100x_25sx5.txt"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RAMANID_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def neon_fit(shared_data):
    return fit_wavelength(read_raw(shared_data / NEON785))


# -- units and reference values -----------------------------------------------------------------
def test_air_vacuum_shift_matches_textbook_scale():
    n = float(air_refractive_index(785.0))
    assert 1.00027 < n < 1.00028  # Edlen/Morton standard air near 785 nm
    # air-consistent shift is smaller than the naive 1/lambda_air difference by the factor n
    naive = float(wavelength_to_shift(850.0, 785.0))
    true = float(air_wavelength_to_shift(850.0, 785.0))
    assert naive - true == pytest.approx(naive * (n - 1), rel=0.02)
    s = np.array([200.0, 1001.4, 3054.3])
    assert np.allclose(air_wavelength_to_shift(shift_to_air_wavelength(s, 785.0), 785.0), s,
                       atol=1e-3)


def test_laser_from_band_inverts_shift():
    lam0 = laser_from_band(819.80, 520.7)
    assert 786.0 < lam0 < 786.4  # algorithms.md example: ~786.24 nm (air/vacuum aside)
    assert float(air_wavelength_to_shift(819.80, lam0)) == pytest.approx(520.7, abs=1e-3)


def test_reference_tables(shared_data):
    pst = load_astm_e1840("polystyrene", shared_data / "enlighten" / "astm-e1840-peaks.json")
    assert 1001.4 in pst.shifts and pst.intensity_class[pst.shifts == 1001.4][0] == 0
    assert len(pst.shifts) == 11
    wl, _ = lamp_lines("neon", 830, 850)
    assert np.any(np.isclose(wl, 837.7608, atol=1e-4))
    # blends closer than the resolution are dropped or reduced to the dominant line
    wl_res, _ = lamp_lines("neon", 826, 827, resolution_nm=0.3)
    assert wl_res.size < lamp_lines("neon", 826, 827)[0].size
    with pytest.raises(CalibrationError, match="certified for 785"):
        srm_for_laser(532.0, "2241")
    with pytest.raises(CalibrationError, match="unknown lamp"):
        lamp_lines("krypton", 500, 900)


def test_peaks_subpixel_on_known_gaussian():
    x = np.arange(400, dtype=float)
    rng = np.random.default_rng(1)
    centres = np.array([100.37, 250.81])
    y = sum(1000 * np.exp(-0.5 * ((x - c) / 2.0) ** 2) for c in centres) + 50
    y = y + rng.normal(0, 5, x.size)
    pk = find_peaks(x, y, min_snr=10)
    assert len(pk) == 2
    assert np.allclose(pk.position, centres, atol=0.05)
    assert np.allclose(pk.fwhm, 2.3548 * 2.0, rtol=0.15)


# -- real lamp and standard -----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_neon_fit_real_bwtek(neon_fit):
    assert neon_fit.x_kind == "pixel"
    assert len(neon_fit.lines["x"]) >= 15
    assert min(neon_fit.loo_rms_cm1.values()) < 0.25
    grid = np.linspace(*neon_fit.domain, 100)
    assert np.all(np.diff(neon_fit(grid)) > 0)
    # pixel_coeffs reproduce the polynomial part
    from ramanid.calibration.units import pixel_to_wavelength
    poly = pixel_to_wavelength(neon_fit.pixel_coeffs(), grid)
    part = neon_fit(grid) - (np.interp(grid, neon_fit.knots_x, neon_fit.knots_nm)
                             if neon_fit.knots_x else 0)
    assert np.allclose(poly, part, atol=1e-6)


@pytest.mark.timeout(60)
def test_too_few_lines_refused(shared_data):
    ne = read_raw(shared_data / NEON785)
    k = slice(0, 300)  # a detector strip holding only a handful of lines
    strip = RawMeasurement(ne.source, ne.x[k], ne.x_kind, ne.counts[k], ne.laser_nm,
                           ne.wavelength_coeffs, ne.header, ne.saturated[k])
    with pytest.raises(CalibrationError, match=r"only \d+ (emission peaks|neon lines)"):
        fit_wavelength(strip)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", [
    "charisma/FNMT-B_BW785/NIST_785nm_100%_2500msx3_1.txt",  # SRM glass the index calls "Neon"
    PST785,  # a polystyrene spectrum offered as a lamp
])
def test_not_a_neon_spectrum_refused(shared_data, path):
    with pytest.raises(CalibrationError, match=r"do not (fit|match) neon lines"):
        fit_wavelength(read_raw(shared_data / path))


@pytest.mark.timeout(60)
def test_wrong_lamp_named_refused(shared_data):
    ne = read_raw(shared_data / NEON785)
    with pytest.raises(CalibrationError, match="argon"):
        fit_wavelength(ne, lamp="argon")
    with pytest.raises(CalibrationError, match="no mercury lines"):
        fit_wavelength(ne, lamp="mercury")


@pytest.mark.timeout(60)
def test_wrong_laser_refused(shared_data, neon_fit):
    si = read_raw(shared_data / SI785)
    good = fit_excitation(si, neon_fit)
    assert abs(good.laser_nm - 784.82) < 0.2
    assert float(air_wavelength_to_shift(good.band_nm, good.laser_nm)) == pytest.approx(520.7,
                                                                                        abs=1e-3)
    with pytest.raises(CalibrationError, match="wrong laser"):
        fit_excitation(si, neon_fit, nominal_laser_nm=787.0)
    with pytest.raises(CalibrationError, match="does not cover"):
        fit_excitation(si, neon_fit, nominal_laser_nm=532.0)
    with pytest.raises(CalibrationError, match=r"no band near 520\.7"):
        fit_excitation(read_raw(shared_data / PST785), neon_fit)
    with pytest.raises(CalibrationError, match="certified for 785"):
        fit_intensity(np.linspace(100, 3000, 500), np.ones(500), 532.0, srm="2241")


@pytest.mark.timeout(60)
def test_intensity_correction_only_inside_certified_range(shared_data, neon_fit):
    from ramanid.calibration.shift import raman_axis
    m = read_raw(shared_data / SRM785)
    shift = raman_axis(m.x, neon_fit, 784.78)
    corr = fit_intensity(shift, m.counts, 784.78)
    assert corr.srm == "2241" and corr.lo_cm1 >= 200 and corr.hi_cm1 <= 3500
    y = np.ones((2, shift.size))
    out = corr.apply(shift, y)
    outside = (shift < corr.lo_cm1) | (shift > corr.hi_cm1)
    assert outside.any() and np.all(out[:, outside] == 1.0)
    assert np.all(out[:, ~outside] > 0)
    # the factor follows certificate / measurement: larger where the detector is less sensitive
    assert corr.factor_at(np.array([2800.0]))[0] > corr.factor_at(np.array([1000.0]))[0]


# -- records, status, apply ----------------------------------------------------------------------
def test_status_missing_and_never_raises(home):
    st = calibration_status("NOPE-1")
    assert st["state"] == "missing" and "NOPE-1" in st["warning"] and st["id"] is None
    assert calibration_status(None)["state"] == "missing"
    assert load_record("NOPE-1") is None


def test_record_round_trip_status_states(home):
    rec = CalibrationRecord(serial="SN 1 x", kind="excitation", standard="silicon 520.7 cm-1",
                            laser_nm=784.77, passed=True, valid_days=30)
    path = save_record(rec)
    assert path.is_file() and path.parent.name == "SN_1_x"
    back = load_record("SN 1 x")
    assert back.to_dict() == rec.to_dict()
    assert json.loads(path.read_text())["format"] == "ramanid-calibration/1"
    assert calibration_status("SN 1 x")["state"] == "ok"
    later = datetime.now(timezone.utc) + timedelta(days=31)
    st = calibration_status("SN 1 x", when=later)
    assert st["state"] == "stale" and "31 days old" in st["warning"]
    failed = CalibrationRecord(serial="SN 1 x", kind="shift", standard="polystyrene",
                               passed=False, created=(datetime.now(timezone.utc) + timedelta(
                                   seconds=5)).isoformat())
    save_record(failed)
    st = calibration_status("SN 1 x")
    assert st["state"] == "failed" and st["id"] == failed.id and "FAILED" in st["warning"]
    # a damaged file beside the records does not hide them
    (path.parent / "junk.json").write_text("{not json")
    assert load_record("SN 1 x").id == failed.id


@pytest.mark.timeout(60)
def test_apply_to_pixels_and_batch(home, shared_data, neon_fit):
    rec = CalibrationRecord(serial="DEV", kind="excitation", standard="silicon",
                            laser_nm=784.77, wavelength=neon_fit.to_dict(), passed=True)
    save_record(rec)
    rec = load_record("DEV")
    pst = read_raw(shared_data / PST785)
    batch = apply_calibration((pst.x, pst.counts, [{"source": "pst"}]), rec)
    assert isinstance(batch, SpectrumBatch) and len(batch) == 1
    assert batch.meta[0]["calibration_id"] == rec.id and batch.meta[0]["laser_nm"] == 784.77
    assert np.all(np.diff(batch.axis) > 0)
    top = batch.axis[np.argmax(np.where((batch.axis > 950) & (batch.axis < 1050),
                                        batch.intensity[0], -np.inf))]
    assert abs(top - 1001.4) < 2.5  # the primary polystyrene band (grid point nearest)
    # a batch on the instrument's own shift axis is re-derived with the calibrated laser
    own = SpectrumBatch(np.linspace(200, 2000, 500), np.ones((1, 500)),
                        [{"laser_nm": 785.0, "source": "x"}])
    moved = apply_calibration(own, rec)
    assert np.allclose(moved.axis - own.axis, moved.axis[0] - own.axis[0], atol=0.05)
    assert moved.axis[0] - own.axis[0] == pytest.approx(1e7 / 785.0 ** 2 * 0.23, rel=0.05)
    with pytest.raises(CalibrationError, match="no pixel"):
        apply_calibration((pst.x, pst.counts, [{}]),
                          CalibrationRecord(serial="D2", kind="shift", standard="p", passed=True))


# -- command line -------------------------------------------------------------------------------
def _cli(*args, home):
    env = {**os.environ, "RAMANID_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "ramanid", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.timeout(300)
def test_cli_full_sequence(tmp_path, shared_data):
    home = tmp_path / "h"
    d = shared_data / BW785
    r = _cli("calibrate", "wavelength", "--device", "ICV785", str(shared_data / NEON785),
             home=home)
    assert r.returncode == 0, r.stderr
    assert "PASS" in r.stdout and "837.7608" in r.stdout
    r = _cli("calibrate", "excitation", "--device", "ICV785", str(shared_data / SI785),
             str(d / "S1N02_iRPlus785_Z100_100_2000ms.txt"), home=home)
    assert r.returncode == 0, r.stderr
    assert "laser 784.7" in r.stdout
    r = _cli("calibration", "check", "--device", "ICV785", str(shared_data / PST785),
             "--tolerance", "3", "--json", home=home)
    res = json.loads(r.stdout)
    rows = {b["reference_cm1"]: b for b in res["bands"]}
    assert abs(rows[1001.4]["error_cm1"]) < 1.0 and rows[1001.4]["pass"]
    assert res["calibration"]["state"] == "ok"
    assert r.returncode == (0 if res["passed"] else 1)
    r = _cli("calibration", "check", "--device", "ICV785", str(shared_data / PST785),
             "--bands", "620.9,1001.4,1031.8,1155.3,1583.1,1602.3", "--tolerance", "1", home=home)
    assert r.returncode == 0 and "6 of 6 judged bands pass" in r.stdout, r.stdout
    assert "PASS" in r.stdout
    r = _cli("calibration", "check", "--device", "ICV785", str(shared_data / PST785),
             "--tolerance", "0.01", home=home)
    assert r.returncode == 1 and "FAIL" in r.stdout
    r = _cli("calibrate", "intensity", "--device", "ICV785",
             str(d / "NISTSRM2241_BW785_100x_25sx5.txt"), home=home)
    assert r.returncode == 0, r.stderr
    r = _cli("calibration", "show", "ICV785", "--json", home=home)
    shown = json.loads(r.stdout)
    cur = shown["records"][-1]
    assert cur["kind"] == "intensity" and cur["wavelength"] and cur["laser_nm"] and \
        cur["intensity"]["srm"] == "2241"
    r = _cli("calibration", "show", home=home)
    assert "ICV785" in r.stdout and "ok" in r.stdout
    # refusal: wrong lamp -> one line, exit 1, no traceback, nothing saved
    r = _cli("calibrate", "wavelength", "--device", "OTHER", str(shared_data / PST785),
             home=home)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "neon" in r.stderr
    assert not (home / "calibration" / "OTHER").exists()
    # excitation without a wavelength calibration is refused
    r = _cli("calibrate", "excitation", "--device", "NEW", str(shared_data / SI785), home=home)
    assert r.returncode == 1 and "no wavelength calibration" in r.stderr


def test_scan_calibration_uses_applied_record_and_scan_time(home):
    from ramanid.calibration import scan_calibration
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rec = CalibrationRecord(serial="S9", kind="excitation", standard="silicon", passed=True,
                            valid_days=30, created=t0.isoformat())
    save_record(rec)
    fresh = scan_calibration({"device_serial": "S9", "calibration_id": rec.id,
                              "timestamp": "2026-01-11T00:00:00Z"})
    assert fresh["state"] == "ok" and fresh["age_days"] == pytest.approx(10.0)
    assert fresh["applied"] and fresh["warning"] is None
    old = scan_calibration({"device_serial": "S9", "calibration_id": rec.id,
                            "timestamp": "2026-03-01T00:00:00Z"})
    assert old["state"] == "stale"
    unused = scan_calibration({"device_serial": "S9", "calibration_id": None})
    assert unused["state"] == "missing" and not unused["applied"] and rec.id in unused["warning"]
    foreign = scan_calibration({"device_serial": "S9", "calibration_id": "elsewhere"})
    assert foreign["state"] == "missing" and "not on this machine" in foreign["warning"]


def test_packaged_astm_copy_is_the_shared_file(shared_data):
    from ramanid.calibration.reference import default_astm_path
    packaged = default_astm_path()
    assert packaged is not None and packaged.parent.name == "data"
    shared = shared_data / "enlighten" / "astm-e1840-peaks.json"
    assert packaged.read_bytes() == shared.read_bytes()
    assert (packaged.parent / "LICENSE.astm-e1840-peaks").is_file()


@pytest.mark.timeout(60)
def test_apply_to_file_batch_recovers_pixels(home, shared_data, neon_fit):
    """A B&W Tek file read by ramanid.io (factory shift axis + wavecal_coeffs) gets the same
    calibrated axis as its raw pixels."""
    from ramanid.io import read
    rec = CalibrationRecord(serial="DEV2", kind="excitation", standard="silicon",
                            laser_nm=784.77, wavelength=neon_fit.to_dict(), passed=True)
    batch = read(shared_data / PST785)
    raw = read_raw(shared_data / PST785)
    via_file = apply_calibration(batch, rec)
    via_pixels = apply_calibration((raw.x, raw.counts, [{}]), rec)
    inside = (via_pixels.axis > via_file.axis[0]) & (via_pixels.axis < via_file.axis[-1])
    expect = np.interp(via_pixels.axis[inside], via_file.axis, via_file.intensity[0])
    assert np.corrcoef(expect, via_pixels.intensity[0, inside])[0, 1] > 0.999
    # the file holds a contiguous run of the detector's pixels: align by the counts themselves
    a, b = via_file.intensity[0], via_pixels.intensity[0]
    k = next(i for i in range(b.size - a.size + 1) if np.array_equal(b[i:i + 20], a[:20]))
    assert np.array_equal(b[k:k + a.size], a)
    assert np.max(np.abs(via_file.axis - via_pixels.axis[k:k + a.size])) < 0.05


def _synthetic_lamp(lamp: str, true_coeffs, factory_coeffs, seed: int) -> RawMeasurement:
    """A SYNTHETIC lamp exposure (test fixture, not a measurement): NIST lines of ``lamp`` drawn
    as Gaussians on a 2048-pixel detector with a known dispersion, plus noise."""
    from ramanid.calibration.units import pixel_to_wavelength
    rng = np.random.default_rng(seed)
    px = np.arange(2048, dtype=float)
    wl = pixel_to_wavelength(true_coeffs, px)
    lines, inten = lamp_lines(lamp, wl[0], wl[-1])
    y = np.full(px.size, 500.0)
    for w, a in zip(lines, inten, strict=True):
        y += 40.0 * a * np.exp(-0.5 * ((wl - w) / 0.12) ** 2)
    y = rng.poisson(y).astype(float) - 500.0
    return RawMeasurement("synthetic", px, "pixel", y, 785.0, list(factory_coeffs), {},
                          np.zeros(px.size, dtype=bool))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_dispersion_from_factory_offset(seed):
    rng = np.random.default_rng(100 + seed)
    true = [780.0 + rng.uniform(-5, 5), 0.1450 + rng.uniform(-2e-3, 2e-3), -4.0e-6, -6.0e-10]
    # the instrument's own (factory) scale is off by up to 1.5 nm and a small stretch
    factory = [true[0] + rng.uniform(-1.5, 1.5), true[1] * (1 + rng.uniform(-1e-3, 1e-3)),
               true[2], true[3]]
    meas = _synthetic_lamp("neon", true, factory, seed)
    wf = fit_wavelength(meas)
    px = np.linspace(0, 2047, 200)
    from ramanid.calibration.units import pixel_to_wavelength
    err = np.abs(wf(px) - pixel_to_wavelength(true, px))
    span = (px >= min(wf.lines["x"])) & (px <= max(wf.lines["x"]))
    assert np.max(err[span]) < 0.01  # nm (~0.1 cm-1), between the outermost matched lines
    assert np.max(err) < 0.05  # extrapolated to the detector ends
    # the same exposure refused as an argon lamp
    with pytest.raises(CalibrationError):
        fit_wavelength(meas, lamp="argon")


@pytest.mark.timeout(60)
def test_apply_intensity_only_when_asked(home, shared_data, neon_fit):
    from ramanid.calibration.shift import raman_axis
    m = read_raw(shared_data / SRM785)
    corr = fit_intensity(raman_axis(m.x, neon_fit, 784.77), m.counts, 784.77)
    rec = CalibrationRecord(serial="DEV3", kind="intensity", standard="NIST SRM 2241",
                            laser_nm=784.77, wavelength=neon_fit.to_dict(),
                            intensity=corr.to_dict(), passed=True)
    pst = read_raw(shared_data / PST785)
    plain = apply_calibration((pst.x, pst.counts, [{}]), rec)
    both = apply_calibration((pst.x, pst.counts, [{}]), rec, intensity=True)
    assert np.array_equal(plain.axis, both.axis)
    assert plain.meta[0].get("intensity_corrected_cm1") is None
    assert np.array_equal(np.sort(plain.intensity[0]), np.sort(pst.counts))  # counts untouched
    lo, hi = both.meta[0]["intensity_corrected_cm1"]
    inside = (both.axis >= lo) & (both.axis <= hi)
    ratio = both.intensity[0, inside] / np.where(plain.intensity[0, inside] == 0, np.nan,
                                                plain.intensity[0, inside])
    assert np.nanmax(ratio) / np.nanmin(ratio) > 3  # a real, shift-dependent response
    assert np.array_equal(both.intensity[0, ~inside], plain.intensity[0, ~inside])


# -- weak bands, serial names (QA 10:28) ----------------------------------------------------------
@pytest.mark.timeout(180)
def test_weak_bands_neither_pull_the_shift_fit_nor_fail_the_unit(home, shared_data):
    from ramanid.calibration import steps
    from ramanid.calibration.shift import JUDGE_MIN_SNR

    d = shared_data / BW785
    steps.calibrate_wavelength("RUW", [d / "Ne_785nm_x20_50ms.txt"])
    steps.calibrate_excitation("RUW", [d / "S0N02_iRPlus785_Z050_100_3200ms.txt"])
    pst = d / "PST02_iRPlus785_Z020_100_1300ms.txt"  # short exposure: C-H bands at SNR < 10
    rec = steps.calibrate_shift("RUW", pst, save=False)
    rows = rec.residuals["bands"]
    weak = [r for r in rows if r["snr"] is not None and r["snr"] < JUDGE_MIN_SNR]
    strong = [r for r in rows if r["judged"]]
    assert weak and all(not r["judged"] for r in weak)
    assert len(strong) >= 4 and all(r["snr"] >= JUDGE_MIN_SNR for r in strong)
    # the correction does not make the strongest band worse, and the unit is judged on the
    # bands it can locate
    best = max(strong, key=lambda r: r["snr"])
    assert abs(best["error_after_cm1"]) <= abs(best["error_cm1"]) + 1e-9
    assert rec.passed == all(r["pass"] for r in strong)
    assert rec.passed
    res = steps.check_standard("RUW", pst)
    assert res["n_judged"] == len([r for r in res["bands"] if r["judged"] and r["in_range"]])
    assert res["passed"] == all(r["pass"] for r in res["bands"] if r["judged"] and r["in_range"])
    assert any(not r["pass"] and not r["judged"] for r in res["bands"])  # weak: reported only
    assert res["passed"]


def test_shift_fit_refuses_when_too_few_bands_are_strong_enough():
    from ramanid.calibration.shift import JUDGE_MIN_SNR, BandTable, fit_shift_correction

    ref = np.array([620.9, 1001.4, 1031.8, 1602.3, 2904.5, 3054.3])
    snr = np.array([50.0, 80.0, 40.0, JUDGE_MIN_SNR / 2, 6.0, 7.0])
    table = BandTable("Polystyrene", ref, ref + 0.5, snr, 8.0)
    with pytest.raises(CalibrationError, match=r"only 3 .*SNR >= .*3 more too weak"):
        fit_shift_correction(table)
    snr[3] = 2 * JUDGE_MIN_SNR
    table.measured[4] = 2904.5 - 6.0  # a weak band far off must not move the correction
    corr = fit_shift_correction(table)
    assert corr.n_bands == 4 and corr.c0 == pytest.approx(-0.5)


@pytest.mark.parametrize("serial", ["../../etc", "a/b", "..", "x\\y", ".hidden", "a\nb", ""])
def test_serials_that_are_not_folder_names_are_refused(home, serial):
    from ramanid.calibration import check_serial

    from ramanid.errors import UsageError

    with pytest.raises(UsageError):
        check_serial(serial)
    with pytest.raises(UsageError):
        save_record(CalibrationRecord(serial=serial, kind="shift", standard="p", passed=True))
    assert load_record(serial) is None
    assert not home.exists() or not any(home.rglob("*.json"))


@pytest.mark.timeout(120)
def test_cli_refuses_a_path_as_device_serial(tmp_path, shared_data):
    home = tmp_path / "h"
    r = _cli("calibrate", "wavelength", "--device", "../../etc", str(shared_data / NEON785),
             home=home)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--device" in r.stderr and "'..'" in r.stderr
    assert not (home / "calibration").exists() or not any((home / "calibration").rglob("*"))
    assert check_ok_serial("BWS415-001") == "BWS415-001"


def check_ok_serial(serial):
    from ramanid.calibration import check_serial

    return check_serial(serial)
