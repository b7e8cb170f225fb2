"""Correlation matching, shift search, top-k and batched NNLS, on real spectra."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from ramanid.io import read
from ramanid.match import Matcher, shift_rows, top_k
from ramanid.mixture import design_gram, nnls_gram
from ramanid.preprocess import default_recipe
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(60)

NAMES = ("caffeine", "lactose", "glucose", "sucrose", "acetaminophen", "Sodium Bicarbonate",
         "fructose", "polystyrene", "toluene", "melamine")


@pytest.fixture(scope="module")
def lib(shared_data):
    r = default_recipe()
    rows = [r.process(read(shared_data / "enlighten" / "library" / f"{n}.csv")).X[0]
            for n in NAMES]
    return r, np.vstack(rows)


def test_scores_are_pearson_full_and_partial(lib):
    _r, L = lib
    m = Matcher(L, 2.0, max_shift=0)
    rng = np.random.default_rng(0)
    X = L[[1, 4]] + rng.normal(0, 0.01, (2, L.shape[1])).astype(np.float32)
    X -= X.mean(axis=1, keepdims=True)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    s, _ = m.scores(X)
    ref = np.corrcoef(np.vstack([X, L]))[:2, 2:]
    assert np.allclose(s, ref, atol=1e-5)
    # partial coverage: only [lo, hi) is measured; r must be Pearson on that range
    lo, hi = 100, 500
    Xp = np.zeros_like(X)
    Xp[:, lo:hi] = X[:, lo:hi] - X[:, lo:hi].mean(axis=1, keepdims=True)
    Xp /= np.linalg.norm(Xp, axis=1, keepdims=True)
    sp, _ = m.scores(Xp, lo, hi)
    refp = np.corrcoef(np.hstack([Xp[:, lo:hi].T, L[:, lo:hi].T]).T)[:2, 2:]
    assert np.allclose(sp, refp, atol=1e-5)


def test_shift_search_finds_and_reports_the_offset(lib):
    _, L = lib
    m = Matcher(L, 2.0, max_shift=10, shift_step=2)
    X = shift_rows(L[[0, 2]], 6.0 / 2.0)           # scans read 6 cm-1 high
    s, arg = m.scores(X)
    assert list(s.argmax(axis=1)) == [0, 2]
    assert m.shifts[arg[0, 0]] == pytest.approx(6.0)
    assert s[0, 0] > 0.99
    plain = Matcher(L, 2.0, max_shift=0).scores(X)[0]
    assert plain[0, 0] < s[0, 0] - 0.05            # without the search the score drops


def test_derivative_mode_is_pearson_of_differences(lib):
    _, L = lib
    m = Matcher(L, 2.0, max_shift=0, derivative=True)
    s, _ = m.scores(L[:3])
    d = np.diff(L, axis=1)
    ref = np.corrcoef(d)[:3]
    assert np.allclose(s, ref, atol=1e-5)


@pytest.mark.parametrize("derivative", [False, True])
def test_half_point_shifts_from_neighbours_equal_direct_products(lib, derivative):
    """Copies at 1 cm-1 steps on the 2 cm-1 grid: the half-point copies are combined from
    their neighbours' products, not multiplied; they must equal the direct products (full and
    partial coverage), and the product must hold fewer copies than the search."""
    _r, L = lib
    m = Matcher(L, 2.0, max_shift=10.0, shift_step=1.0, derivative=derivative, broaden=5.0)
    assert m.shifts.size == 21 and m._derived.size == 10
    assert m.flat.shape[0] == (m.n_copies - 10) * L.shape[0]
    rng = np.random.default_rng(3)
    X0 = shift_rows(L[[0, 2, 5, 7]], 1.3) + rng.normal(0, 0.02, (4, L.shape[1]))
    for lo, hi in ((0, L.shape[1]), (60, 500)):
        X = np.zeros_like(X0, dtype=np.float32)
        x = X0[:, lo:hi] - X0[:, lo:hi].mean(axis=1, keepdims=True)
        X[:, lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
        prod, den = m.raw(X, lo, hi)
        plain = m.slot[: m.shifts.size]          # copy c is at [:, slot[c]]
        Xp = m.prepare(X, lo, hi).astype(np.float64)
        direct = np.einsum("nm,scm->nsc", Xp, m.stack.astype(np.float64))
        assert np.abs(prod[:, plain] - direct).max() < 1e-5
        if den is not None:
            ref = m.stack[:, :, lo:hi - (1 if derivative else 0)].astype(np.float64)
            ref = np.linalg.norm(ref - ref.mean(axis=2, keepdims=True), axis=2)
            assert np.abs(den[plain] - ref).max() < 1e-5


def test_top_k_sorted():
    S = np.random.default_rng(1).normal(size=(20, 50)).astype(np.float32)
    ids, vals = top_k(S, 5)
    assert np.array_equal(ids, np.argsort(-S, axis=1)[:, :5])
    assert np.all(np.diff(vals, axis=1) <= 0)


def test_batched_nnls_equals_scipy_nnls():
    rng = np.random.default_rng(2)
    n, k, m = 40, 4, 120
    A = rng.normal(size=(n, k, m))
    A[:, 1] = 0.9 * A[:, 0] + 0.1 * A[:, 1]          # collinear-ish columns
    x = np.einsum("nkm,nk->nm", A, rng.uniform(-1, 1, (n, k)))
    x += rng.normal(0, 0.1, x.shape)
    G = np.einsum("nim,njm->nij", A, A)
    b = np.einsum("nim,nm->ni", A, x)
    xx = np.einsum("nm,nm->n", x, x)
    fit = nnls_gram(G, b, xx)
    for i in range(n):
        c, res = nnls(A[i].T, x[i])
        assert np.allclose(fit.coef[i], c, atol=1e-6)
        assert fit.rss[i] == pytest.approx(res**2, rel=1e-6, abs=1e-9)
        for j in range(k):  # dRSS_j = best fit without j minus best fit
            keep = [t for t in range(k) if t != j]
            _, r2 = nnls(A[i][keep].T, x[i])
            assert fit.drss[i, j] == pytest.approx(r2**2 - res**2, rel=1e-5, abs=1e-8)


def test_nnls_recovers_real_mixture_fractions(lib):
    _r, L = lib
    # mix on the processed rows: 70 % lactose + 30 % caffeine
    x = 0.7 * L[1] + 0.3 * L[0]
    x = (x - x.mean()) / np.linalg.norm(x - x.mean())
    rows = L[[0, 1, 2, 3]][None]
    G, b = design_gram(rows, x[None], 0, L.shape[1])
    fit = nnls_gram(G, b)
    coef = fit.coef[0]
    frac = fit.fractions()[0]
    assert coef[2] < 0.02 and coef[3] < 0.02
    assert frac[1] == pytest.approx(0.7, abs=0.02) and frac[0] == pytest.approx(0.3, abs=0.02)
    assert fit.rss[0] < 1e-6


def test_matcher_ranks_real_cross_instrument_scans(lib, shared_data):
    r, L = lib
    m = Matcher(L, 2.0)
    batch = [read(shared_data / "enlighten" / "library-older" / f"{n}.csv")
             for n in ("glucose", "sucrose", "acetaminophen", "toluene")]
    for b, want in zip(batch, (2, 3, 4, 8), strict=False):
        p = r.process(SpectrumBatch(b.axis, b.intensity))
        s, _ = m.scores(p.X, p.lo, p.hi)
        assert int(s[0].argmax()) == want


def test_gaussian_rows_equals_scipy_nearest():
    from scipy.ndimage import gaussian_filter1d

    from ramanid.match import gaussian_rows

    L = np.random.default_rng(2).normal(size=(5, 400)).astype(np.float32)
    for sigma in (0.7, 2.5, 6.0):
        want = gaussian_filter1d(L, sigma, axis=1, mode="nearest")
        assert np.allclose(gaussian_rows(L, sigma), want, rtol=0, atol=1e-6)


def test_forward_selection_is_not_masked_by_a_near_duplicate():
    from ramanid.mixture import forward_select

    rng = np.random.default_rng(5)
    m = 600
    a = rng.normal(size=m)
    h = rng.normal(size=m)
    h2 = 0.98 * h + np.sqrt(1 - 0.98**2) * rng.normal(size=m)   # a near duplicate of h
    cols = [v - v.mean() for v in (a, h, h2)]
    cols = [v / np.linalg.norm(v) for v in cols]
    x = 0.8 * cols[0] + 0.45 * cols[1] + 0.01 * rng.normal(size=m)
    x -= x.mean()
    xx = float(x @ x)
    A = np.stack(cols)
    fit = nnls_gram((A @ A.T)[None], (A @ x)[None], xx)
    # backward: h and h2 each stand in for the other, so neither one's removal costs much
    assert fit.drss[0, 1] < 0.05 * xx and fit.drss[0, 2] < 0.05 * xx
    sel = forward_select(fit, 0.05 * xx)
    assert sel.mask[0] == 0b011                     # a and h, not the duplicate
    assert sel.gain[0, 1] > 0.1 * xx and sel.gain[0, 2] == 0
    assert sel.coef[0, 1] == pytest.approx(0.45, abs=0.02)
    # the subset optimum of the kept columns is the plain least-squares fit on them
    c, *_ = np.linalg.lstsq(A[:2].T, x, rcond=None)
    assert np.allclose(sel.coef[0, :2], c, atol=1e-6)
    assert sel.rss[0] == pytest.approx(float(np.sum((x - A[:2].T @ c) ** 2)), rel=1e-6)
