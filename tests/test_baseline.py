"""Batch baselines against pybaselines (test dependency) on real spectra + fluorescence.

Stated tolerances:
* asls, arpls, modpoly, mor implement the same estimators as pybaselines: max |difference| <=
  1e-6 x the data range (numerical round-off of a different but exact solver).
* clipwhit is a different (fast) estimator: its baseline agrees with pybaselines arpls
  (lam 1e4 on the 2 cm-1 grid) to an RMS <= 6 % of the Raman band height, and recovers the
  true, known fluorescence background to an RMS <= 6 % of the band height (its flexible
  default follows strong fluorescence closely and takes a little of the broad sugar bands).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solveh_banded

from ramanid import baseline as B
from ramanid.io import read
from ramanid.preprocess import grid_axis

pybaselines = pytest.importorskip("pybaselines")
pytestmark = pytest.mark.timeout(90)

NAMES = ("caffeine", "lactose", "acetaminophen", "glucose", "Sodium Bicarbonate", "polystyrene")


@pytest.fixture(scope="module")
def data(shared_data):
    """Real band spectra (scaled to height 1000) plus known synthetic fluorescence."""
    x = grid_axis(310.0, 1800.0, 2.0)
    bands = []
    for name in NAMES:
        b = read(shared_data / "enlighten" / "library" / f"{name}.csv")
        y = np.interp(x, b.axis, b.intensity[0])
        y = y - np.percentile(y, 5)
        bands.append(1000 * y / y.max())
    bands = np.array(bands)
    rng = np.random.default_rng(0)
    t = (x - x[0]) / np.ptp(x)
    n = len(bands)
    true = (rng.uniform(1000, 5000, (n, 1)) * np.exp(-t * rng.uniform(0.5, 3, (n, 1)))
            + rng.uniform(0, 2000, (n, 1)) * t**2)
    return x, bands + true + rng.normal(0, 5, bands.shape), true


def _pyb(method, Y, **kw):
    fitter = pybaselines.Baseline(np.arange(Y.shape[1]))
    return np.array([getattr(fitter, method)(y, **kw)[0] for y in Y])


@pytest.mark.parametrize("method,kw", [
    ("asls", {"lam": 1e5, "p": 0.01}),
    ("arpls", {"lam": 1e4}),
    ("modpoly", {"poly_order": 5}),
    ("mor", {"half_window": 25}),
])
def test_same_estimator_as_pybaselines(data, method, kw):
    _, Y, _ = data
    ours = getattr(B, method)(Y, **kw)
    ref = _pyb(method, Y, **kw)
    assert ours.shape == Y.shape
    assert np.max(np.abs(ours - ref)) <= 1e-6 * np.ptp(Y)


def test_whittaker_solver_matches_banded_cholesky():
    rng = np.random.default_rng(1)
    w = rng.uniform(0.01, 1, (5, 300))
    y = rng.normal(size=(5, 300))
    lam = 1e4
    ours = B.whittaker_solve(w, w * y, lam)
    D = np.diff(np.eye(300), 2, axis=0)
    P = lam * D.T @ D
    for i in range(5):
        A = P + np.diag(w[i])
        ab = np.zeros((3, 300))
        for k in range(3):
            ab[2 - k, k:] = np.diagonal(A, k)
        ref = solveh_banded(ab, w[i] * y[i])
        assert np.allclose(ours[i], ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_clipwhit_agrees_with_arpls_and_truth(data):
    _, Y, true = data
    fast = B.clipwhit(Y)
    ref = _pyb("arpls", Y, lam=1e4)

    def rms(a, b):  # constant offsets do not matter after mean-centring
        d = a - b
        d = d - d.mean(axis=1, keepdims=True)
        return np.sqrt((d**2).mean(axis=1))

    assert np.all(rms(fast, ref) <= 60.0)        # 6 % of the band height (1000)
    assert np.all(rms(fast, true) <= 60.0)
    assert np.all(rms(np.zeros_like(Y), true) > 150)  # background >> the tolerance


def test_clipwhit_is_float32_friendly_and_batch_independent(data):
    _, Y, _ = data
    one = np.vstack([B.clipwhit(Y[i:i + 1]) for i in range(len(Y))])
    allrows = B.clipwhit(Y)
    assert np.allclose(one, allrows)
    f32 = B.clipwhit(Y.astype(np.float32))
    assert f32.dtype == np.float32
    assert np.max(np.abs(f32 - allrows)) < 1e-3 * np.ptp(Y)


def test_estimate_dispatch():
    Y = np.random.default_rng(2).normal(size=(3, 100))
    assert np.array_equal(B.estimate(Y, "none"), np.zeros_like(Y))
    assert np.allclose(B.estimate(Y, "modpoly", poly_order=2), B.modpoly(Y, poly_order=2))
    with pytest.raises(ValueError):
        B.estimate(Y, "bogus")


@pytest.mark.parametrize("envelope", ["mean", "min"])
@pytest.mark.parametrize("m", [746, 745, 9])
def test_clipwhit_pieces_compose_to_the_plain_algorithm(envelope, m):
    """block_envelope + clip_iterate (shared with the preprocessing fast path) are clipwhit."""
    rng = np.random.default_rng(m)
    Y = np.cumsum(rng.normal(size=(7, m)), axis=1) + rng.normal(0, 0.3, (7, m))
    S, U, c = B._clip_operators(m, 4, 40.0)
    pad = np.concatenate([Y, np.repeat(Y[:, -1:], c * 4 - m, axis=1)], axis=1).reshape(7, c, 4)
    e = pad.mean(axis=2) if envelope == "mean" else pad.min(axis=2)
    assert np.allclose(B.block_envelope(Y, 4, envelope), e, rtol=0, atol=1e-12)
    for _ in range(10):
        e = np.minimum(e, e @ S.T)
    want = (e @ S.T) @ U
    assert np.allclose(B.clipwhit(Y, envelope=envelope), want, rtol=0, atol=1e-9)
    e32 = B.block_envelope(Y.astype(np.float32), 4, envelope)
    assert e32.dtype == np.float32
    z = B.clip_iterate(e32, S.T.astype(np.float32), 10)
    assert np.allclose(z @ U, want, rtol=0, atol=1e-3 * np.ptp(Y))
