"""Preprocessing steps and the recipe, on real ENLIGHTEN spectra from ../shared/data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramanid.errors import UsageError
from ramanid.io import read
from ramanid.preprocess import (
    Recipe,
    default_recipe,
    despike,
    noise_sigma,
    normalise,
    resample,
    smooth,
    snv,
)
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def caffeine(shared_data):
    return read(shared_data / "enlighten" / "library" / "caffeine.csv")


@pytest.fixture(scope="module")
def lactose_older(shared_data):
    return read(shared_data / "enlighten" / "library-older" / "lactose.csv")


def test_recipe_round_trip_and_json():
    r = default_recipe()
    d = r.to_dict()
    json.dumps(d)
    r2 = Recipe.from_dict(json.loads(json.dumps(d)))
    assert r2.to_dict() == d
    assert np.array_equal(r2.axis, r.axis)
    d["params"]["baseline"]["method"] = "nonsense"
    with pytest.raises(UsageError):
        Recipe.from_dict(d)
    # to_dict is a copy: editing it does not change the recipe
    assert r.params["baseline"]["method"] != "nonsense"


def test_process_rows_are_centred_unit_norm(caffeine, lactose_older):
    r = default_recipe()
    p = r.process(SpectrumBatch.concat([caffeine, caffeine]))
    assert p.X.dtype == np.float32 and p.X.shape == (2, r.axis.size)
    assert np.allclose(p.X.mean(axis=1), 0, atol=1e-6)
    assert np.allclose(np.linalg.norm(p.X, axis=1), 1, atol=1e-5)
    assert p.X[0] @ p.X[1] == pytest.approx(1.0, abs=1e-5)
    q = r.process(lactose_older)            # starts at 405 cm-1: partial coverage
    assert q.lo > 0 and q.hi == r.axis.size
    assert q.qc["coverage"][0] == pytest.approx((q.hi - q.lo) / r.axis.size)
    assert np.all(q.X[0, : q.lo] == 0)
    assert np.linalg.norm(q.X[0]) == pytest.approx(1.0, abs=1e-5)
    assert q.X[0, q.lo:q.hi].mean() == pytest.approx(0.0, abs=1e-6)


def test_noise_sigma_recovers_known_noise():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(0, 0.05, (50, 2000)), axis=1) + rng.normal(0, 3.0, (50, 2000))
    est = noise_sigma(y)
    assert np.median(est) == pytest.approx(3.0, rel=0.1)


def test_despike_removes_spikes_keeps_bands(caffeine):
    y = np.repeat(caffeine.intensity.astype(np.float64), 3, axis=0)
    clean, counts = despike(y)
    assert np.all(counts == 0)                  # the real bands of a clean spectrum stay
    assert np.array_equal(clean, y)
    spiky = y.copy()
    spiky[0, 500] += 20 * y[0].max()            # one-pixel cosmic ray
    spiky[2, 1200] += 5 * y[2].max()
    out, counts = despike(spiky)
    assert counts.tolist() == [1, 0, 1]
    assert abs(out[0, 500] - y[0, 500]) < 0.05 * y[0].max()
    assert np.array_equal(out[1], y[1])
    far = np.ones(y.shape[1], bool)
    far[497:504] = False
    assert np.array_equal(out[0, far], y[0, far])


def test_resample_linear_exact_and_coverage():
    axis = np.linspace(400.0, 1700.0, 651)       # 2 cm-1 native
    y = np.vstack([3.0 + 0.01 * axis, -2.0 * axis])
    out, mask = resample(y, axis, 310.0, 1800.0, 1.0)
    grid = np.arange(310.0, 1800.5, 1.0)
    assert mask.sum() == np.count_nonzero((grid >= 400) & (grid <= 1700))
    assert np.allclose(out[0, mask], 3.0 + 0.01 * grid[mask])
    assert np.allclose(out[1, mask], -2.0 * grid[mask])
    assert np.all(out[:, ~mask] == 0)


def test_resample_downsampling_averages_noise():
    rng = np.random.default_rng(1)
    axis = np.arange(300.0, 1900.0, 0.5)
    y = rng.normal(0, 1.0, (200, axis.size))
    out, mask = resample(y, axis, 310.0, 1800.0, 2.0)
    assert out[:, mask].std() < 0.6               # a triangular kernel over +-4 points


def test_smooth_keeps_cubic_and_reduces_noise():
    x = np.linspace(-1, 1, 400)
    cubic = np.vstack([x**3 - x, 2 * x**2])
    sm = smooth(cubic, 7, 3)
    assert np.allclose(sm[:, 5:-5], cubic[:, 5:-5], atol=1e-9)
    noisy = np.random.default_rng(2).normal(size=(10, 400))
    assert smooth(noisy, 7, 3).std() < 0.8 * noisy.std()


def test_normalise_and_snv_give_the_same_pearson(caffeine, lactose_older):
    a = caffeine.intensity[0, :1500].astype(float)
    b = np.interp(caffeine.axis[:1500], lactose_older.axis, lactose_older.intensity[0])
    X, _ = normalise(np.vstack([a, b]))
    S = snv(np.vstack([a, b]))
    r = np.corrcoef(a, b)[0, 1]
    assert float(X[0] @ X[1]) == pytest.approx(r, abs=1e-5)
    assert float(S[0] @ S[1]) / a.size == pytest.approx(r, abs=1e-6)


def test_qc_saturation_fluorescence_snr(caffeine):
    r = default_recipe()
    y = caffeine.intensity[0].astype(float)
    y = y - y.min() + 100
    axis = caffeine.axis
    t = (axis - axis[0]) / np.ptp(axis)
    rng = np.random.default_rng(3)
    background = 30 * y.max() * np.exp(-2 * t)
    rows = np.vstack([
        y + rng.normal(0, 0.002 * y.max(), y.size),                       # clean
        np.minimum(y, 0.6 * y.max()),                                     # saturated
        y + background + rng.normal(0, 0.002 * y.max(), y.size),          # fluorescent
        y + rng.normal(0, 0.3 * y.max(), y.size),                         # weak / noisy
    ])
    qc = r.process(SpectrumBatch(axis, rows)).qc
    assert qc["saturation"][0] == 0 and qc["saturation"][1] > 0.002
    assert qc["fluorescence"][2] > 10 * max(qc["fluorescence"][0], 0.1)
    assert qc["snr"][0] > 100 and qc["snr"][3] < 0.1 * qc["snr"][0]
    assert np.all(qc["coverage"] == 1.0)


@pytest.mark.parametrize("window,polyorder", [(7, 3), (5, 2), (11, 4), (9, 0)])
def test_numpy_savitzky_golay_equals_scipy(window, polyorder):
    from scipy.ndimage import convolve1d
    from scipy.signal import savgol_coeffs as scipy_coeffs

    from ramanid.preprocess import savgol_coeffs, smooth

    assert np.allclose(savgol_coeffs(window, polyorder), scipy_coeffs(window, polyorder),
                       rtol=0, atol=1e-12)
    y = np.random.default_rng(window).normal(size=(6, 301))
    want = convolve1d(y, scipy_coeffs(window, polyorder), axis=1, mode="nearest")
    assert np.allclose(smooth(y, window, polyorder), want, rtol=0, atol=1e-12)


def test_importing_the_engine_does_not_import_scipy_signal_or_ndimage():
    import subprocess
    import sys

    code = ("import sys, ramanid.identify, ramanid.preprocess, ramanid.match, ramanid.baseline;"
            "print(sorted(m for m in sys.modules if m.startswith(('scipy.signal',"
            " 'scipy.ndimage', 'scipy.sparse'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]", out


@pytest.mark.parametrize("axis", [np.linspace(250.0, 2000.0, 3000),     # finer than the grid
                                  np.linspace(400.0, 1500.0, 180)])     # coarser
def test_banded_resampler_is_linear_interpolation_or_local_mean(axis):
    from ramanid.preprocess import grid_axis, resample

    y = np.vstack([np.sin(axis / 37.0), 0.001 * axis])
    out, mask = resample(y, axis, 310.0, 1800.0, 2.0)
    g = grid_axis(310.0, 1800.0, 2.0)
    assert np.array_equal(mask, (g >= axis[0]) & (g <= axis[-1]))
    assert np.all(out[:, ~mask] == 0)
    # a straight line is reproduced exactly by either kernel (weights are symmetric/normalised)
    assert np.allclose(out[1, mask], 0.001 * g[mask], rtol=0, atol=2e-4)
    if np.diff(axis).max() > 2.0:  # coarser: linear interpolation
        assert np.allclose(out[0, mask], np.interp(g[mask], axis, y[0]), atol=1e-12)
