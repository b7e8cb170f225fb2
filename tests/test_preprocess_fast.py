"""The banded fast path of the default recipe against the general path, and the fast helpers.

``Recipe.process_array(..., keep_baseline=False)`` with the default ``clipwhit`` baseline runs
resampling, the block-mean envelope, the baseline and Savitzky-Golay smoothing as banded GEMMs;
``keep_baseline=True`` (and every other baseline method) runs the step-by-step general path.
Both must agree to float32 rounding: X to 2e-5 absolute (rows are unit norm), noise and the
float QC figures to 1e-4 relative, integer QC figures exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from ramanid import baseline as B
from ramanid import preprocess as P
from ramanid.io import read

pytestmark = pytest.mark.timeout(120)


def _assert_same(fast: P.Processed, ref: P.Processed, flat: np.ndarray | None = None) -> None:
    """Fast == general to float32 rounding. ``flat`` rows (constant scans) are compared only for
    their QC verdict inputs: their baseline-removed signal is pure rounding noise on both paths
    (X is that noise normalised, fluorescence is divided by it), and ``snr`` is exactly 0."""
    keep = np.ones(len(ref), bool) if flat is None else ~flat
    assert (fast.lo, fast.hi) == (ref.lo, ref.hi)
    assert fast.X.dtype == np.float32 and fast.X.shape == ref.X.shape
    assert np.max(np.abs(fast.X[keep] - ref.X[keep]), initial=0.0) < 2e-5
    np.testing.assert_allclose(fast.noise[keep], ref.noise[keep], rtol=1e-4)
    np.testing.assert_allclose(fast.norm[keep], ref.norm[keep], rtol=1e-4)
    assert fast.qc.keys() == ref.qc.keys()
    for k, v in ref.qc.items():
        if v.dtype.kind in "iu":
            assert np.array_equal(fast.qc[k], v), k
        else:
            np.testing.assert_allclose(fast.qc[k][keep], v[keep], rtol=1e-4, atol=1e-12,
                                       err_msg=k)
    assert np.all(fast.qc["snr"][~keep] == 0) and np.all(ref.qc["snr"][~keep] == 0)
    scale = max(float(np.abs(ref.signal[keep]).max()), 1e-30)
    assert np.max(np.abs(fast.signal[keep] - ref.signal[keep]), initial=0.0) < 1e-5 * scale
    assert fast.baseline.shape == (0, ref.X.shape[1])
    assert ref.baseline.shape == ref.X.shape


def _both(axis: np.ndarray, Y: np.ndarray) -> tuple[P.Processed, P.Processed]:
    r = P.default_recipe()
    return (r.process_array(axis, Y, keep_baseline=False),
            r.process_array(axis, Y, keep_baseline=True))


@pytest.mark.parametrize("folder", ["library", "library-older"])
def test_fast_path_equals_general_path_on_real_spectra(shared_data, folder):
    files = sorted((shared_data / "enlighten" / folder).glob("*.csv"))
    assert files
    for f in files:
        b = read(f)
        fast, ref = _both(b.axis, b.intensity)
        _assert_same(fast, ref)
        assert np.all(np.isfinite(fast.X))


def _synthetic(axis: np.ndarray, n: int = 40, seed: int = 0) -> np.ndarray:
    """Bands + fluorescence + shot noise, with spikes, a flat, a saturated and a NaN row."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(axis[0], axis[-1], (n, 6))
    widths = rng.uniform(3.0, 15.0, (n, 6))
    heights = rng.uniform(100.0, 2000.0, (n, 6))
    bands = (heights[:, :, None]
             * np.exp(-0.5 * ((axis[None, None, :] - centres[:, :, None])
                              / widths[:, :, None]) ** 2)).sum(axis=1)
    t = (axis - axis[0]) / np.ptp(axis)
    bg = rng.uniform(0, 20000, (n, 1)) * np.exp(-rng.uniform(0.5, 3, (n, 1)) * t)
    Y = bands + bg + 500.0
    Y += rng.normal(0, 1, Y.shape) * np.sqrt(Y)
    Y[1, axis.size // 3] += 50 * bands[1].max()         # cosmic ray
    Y[2, axis.size // 2] += 30 * bands[2].max()
    Y[3] = 7.0                                           # flat: no signal
    Y[4] = np.minimum(Y[4], np.percentile(Y[4], 90))     # saturated flat top
    Y[5, 10] = np.nan                                    # not processed
    Y[6] *= 1e33                                         # beyond the float32 range: scaled
    return Y


@pytest.mark.parametrize("axis", [
    np.linspace(300.0, 2300.0, 1952),                   # the benchmark detector
    np.linspace(405.0, 1700.0, 1300),                   # partial coverage at both ends
    np.linspace(250.0, 1500.0, 3000),                   # finer than the grid, covers the start
    np.linspace(400.0, 1500.0, 180),                    # coarser than the grid
    np.cumsum(np.random.default_rng(5).uniform(0.5, 1.5, 1600)) + 330.0,   # irregular
    np.linspace(1779.0, 1900.0, 240),                   # 11 grid points covered (3 blocks)
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_path_equals_general_path_on_synthetic_batches(axis, dtype):
    with np.errstate(over="ignore", invalid="ignore"):
        Y = _synthetic(axis).astype(dtype)
    fast, ref = _both(axis, Y)
    flat = np.zeros(len(Y), bool)
    flat[3] = True
    _assert_same(fast, ref, flat)
    assert fast.qc["nonfinite"][5] > 0 and np.all(fast.X[5] == 0)
    assert fast.qc["snr"][3] == 0 and fast.qc["saturation"][4] > 0
    assert fast.qc["spikes"][1] >= 1 and fast.qc["spikes"][2] >= 1
    # the process does not write to its input
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.array_equal(Y, _synthetic(axis).astype(dtype), equal_nan=True)


def test_other_baselines_and_envelopes_take_the_general_path():
    axis = np.linspace(300.0, 2300.0, 1000)
    Y = _synthetic(axis, n=8, seed=1)[7:]
    for bl in ({"method": "clipwhit", "envelope": "min"}, {"method": "modpoly"},
               {"method": "none"}):
        r = P.Recipe.from_dict({"params": {"baseline": bl}})
        assert not P._fast_path(r.params["baseline"])
        a = r.process_array(axis, Y, keep_baseline=False)
        b = r.process_array(axis, Y, keep_baseline=True)
        assert np.array_equal(a.X, b.X) and np.array_equal(a.noise, b.noise)
    r = P.Recipe.from_dict({"params": {"baseline": {"method": "clipwhit", "lam": 100.0,
                                                    "n_iter": 5, "block": 3}}})
    assert P._fast_path(r.params["baseline"])
    _assert_same(r.process_array(axis, Y, keep_baseline=False),
                 r.process_array(axis, Y, keep_baseline=True))


@pytest.mark.parametrize("window,polyorder", [(11, 4), (0, 0), (5, 2)])
def test_fast_path_other_smoothing_and_short_coverage(window, polyorder):
    r = P.Recipe.from_dict({"params": {"smooth": {"window": window, "polyorder": polyorder}}})
    for axis in (np.linspace(300.0, 2300.0, 1952), np.linspace(1783.0, 1900.0, 240)):
        Y = _synthetic(axis, n=10, seed=2)[7:]       # 10 and 9 grid points: window 11 is off
        fast = r.process_array(axis, Y, keep_baseline=False)
        _assert_same(fast, r.process_array(axis, Y, keep_baseline=True))
        assert fast.hi - fast.lo >= 8


def test_operators_are_the_pushed_identity():
    axis = np.linspace(405.0, 1700.0, 700)
    x = np.ascontiguousarray(axis)
    rsm = P.resampler(axis, 310.0, 1800.0, 2.0)
    ops = P._clipwhit_operators(x.tobytes(), x.size, 310.0, 1800.0, 2.0, 4, 40.0, 7, 3)
    Rt = rsm.apply(np.eye(axis.size))            # R' by pushing the identity through R
    assert np.allclose(ops.signal.dense(), P.smooth(Rt), rtol=0, atol=1e-7)
    assert np.allclose(ops.envelope.dense(), B.block_envelope(Rt, 4), rtol=0, atol=1e-7)
    S, U, _ = B._clip_operators(rsm.hi - rsm.lo, 4, 40.0)
    assert np.allclose(ops.base_signal.dense(), P.smooth(U), rtol=0, atol=1e-7)
    assert np.allclose(ops.St, S.T, atol=1e-7)


@pytest.mark.parametrize("width", [1, 5, 16, 100])
def test_banded_operator_equals_dense_product(width):
    rng = np.random.default_rng(width)
    A = np.zeros((300, 120))
    for j in range(120):
        i = int(2.4 * j)
        A[i:i + 7, j] = rng.normal(size=len(A[i:i + 7, j]))
    A[:, 60] = 0.0                              # an empty column
    op = P.BandedOperator.from_dense(A, width)
    Y = rng.normal(size=(9, 300)).astype(np.float32)
    got = op.apply(Y)
    assert got.dtype == np.float32 and got.shape == (9, 120)
    assert np.allclose(got, Y.astype(np.float64) @ A, atol=1e-5)
    assert np.allclose(op.dense(), A, atol=1e-6)
    assert max(i1 - i0 for _, _, i0, i1, _ in op.blocks) <= 2.4 * width + 8   # the band only
    out = np.full((9, 130), np.nan, dtype=np.float32)
    op.apply(Y, out=out[:, 5:125])
    assert np.array_equal(out[:, 5:125], got) and np.all(np.isnan(out[:, :5]))


@pytest.mark.parametrize("k", [1, 2, 7, 8, 279])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_median_equals_numpy(k, dtype):
    a = np.random.default_rng(k).normal(size=(50, k)).astype(dtype)
    a[3, :] = 1.5                                # ties
    assert np.array_equal(P.row_median(a), np.median(a, axis=1))
    assert P.row_median(a).dtype == np.median(a, axis=1).dtype
    a[7, 0] = np.nan
    assert np.array_equal(P.row_median(a), np.median(a, axis=1), equal_nan=True)


def _despike_reference(y, threshold=8.0):
    """The despike rule written plainly (full candidate search over the whole batch)."""
    sigma = P.noise_sigma(y)
    s = np.zeros_like(y)
    s[:, 1:-1] = y[:, 1:-1] + -0.5 * (y[:, :-2] + y[:, 2:])
    lim = (threshold * np.sqrt(1.5) * np.maximum(sigma, np.finfo(np.float32).tiny)).astype(y.dtype)
    cand = s > lim[:, None]
    cand[:, :3] = cand[:, -3:] = False
    out, counts = y.copy(), np.zeros(len(y), dtype=np.int64)
    for r, c in zip(*np.nonzero(cand), strict=True):
        if s[r, c] >= 0.6 * (y[r, c] - y[r, c - 2:c + 3].min()):
            left, right = y[r, c - 2], y[r, c + 2]
            for k in (-1, 0, 1):
                out[r, c + k] = left + (right - left) * (k + 2) / 4.0
            counts[r] += 1
    return out, counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_despike_equals_reference(dtype):
    rng = np.random.default_rng(11)
    x = np.arange(900.0)
    y = (1000 * np.exp(-0.5 * ((x - 300) / 1.2) ** 2) + 200 * np.exp(-0.5 * ((x - 600) / 8) ** 2)
         + rng.normal(0, 3, (30, x.size)))
    for r, c in [(0, 100), (0, 101), (4, 3), (4, 896), (5, 450), (9, 700), (9, 704), (20, 2)]:
        y[r, c] += 400.0
    y = y.astype(dtype)
    want, want_counts = _despike_reference(y)
    got, counts = P.despike(y)
    assert np.array_equal(got, want) and np.array_equal(counts, want_counts)
    assert counts.sum() >= 4
    r, c = P._spike_points(y, 8.0, None)
    assert np.array_equal(np.bincount(r, minlength=len(y)), want_counts)
    assert all(np.any(got[i, j - 1:j + 2] != y[i, j - 1:j + 2]) for i, j in zip(r, c, strict=True))
    r, c = P._spike_points(y[10:12], 8.0, None)
    assert r.size == 0 and c.size == 0


def test_saturation_and_sanitise_helpers():
    y = np.array([[1.0, 3.0, 3.0, 2.0, 3.0],      # flat top of 2 + 1 more at the max
                  [1.0, 3.0, 2.0, 3.0, 0.0],      # max twice but not adjacent
                  [5.0, 5.0, 5.0, 5.0, 5.0],
                  [0.0, 1.0, 2.0, 3.0, 4.0]])
    assert P._saturation(y, None).tolist() == [0.6, 0.0, 1.0, 0.0]
    assert P._saturation(y, 3.0).tolist() == [0.6, 0.4, 1.0, 0.4]
    z = np.vstack([y, [[1.0, np.inf, 0.0, 0.0, 0.0]], [[2e30, -4e30, 0.0, 1.0, 1.0]]])
    out, nonfinite, mx, mn = P._sanitise(z)
    assert nonfinite.tolist() == [0, 0, 0, 0, 1, 0]
    assert np.all(out[4] == 0) and np.array_equal(out[5], z[5] / 4e30)
    assert np.array_equal(mx, out.max(axis=1)) and np.array_equal(mn, out.min(axis=1))


def test_row_median_float64_keys_rounding_ties_and_range():
    """float64 rows are sorted by float32 keys: rounding ties, values beyond the float32 range,
    subnormal and signed zero values, NaN of either sign still give numpy's median."""
    rng = np.random.default_rng(3)
    for k in (1, 2, 3, 340, 341):
        a = rng.normal(size=(40, k))
        a[1] = 1.0 + rng.integers(0, 4, k) * 1e-12      # distinct, all round to 1.0f
        a[2] = rng.normal(size=k) * 1e300                 # +-inf keys
        a[3] = rng.normal(size=k) * 1e-310                # 0 or subnormal keys
        a[4, ::2] = -0.0
        a[5, 0] = np.nan
        a[6, -1] = -np.nan
        a[7] = np.inf
        a[8, : k // 2] = -np.inf
        a[9] = np.round(a[9] * 2) / 2                     # exact ties
        a[10] = 1.0 + np.arange(k)[::-1] * 2.0**-40       # a run of close values
        with np.errstate(over="ignore", invalid="ignore"):
            want = np.median(a, axis=1)
            a32 = a.astype(np.float32)
            want32 = np.median(a32, axis=1)
            got32 = P.row_median(a32)             # (-inf + inf) / 2 in a middle pair, as numpy
        got = P.row_median(a)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), k
        assert np.array_equal(got32, want32, equal_nan=True)


def _threshold_row(m: int, offset: float, step_ulps: int) -> tuple[np.ndarray, int]:
    """A float64 row of small noise on a large offset with one point whose spike statistic is
    ``step_ulps`` ulps of the point value above (> 0) or below (<= 0) the despike limit."""
    rng = np.random.default_rng(step_ulps + 100)
    y = offset + rng.normal(0, 0.01, (1, m))
    c = 3 * (m // 6) + 2                    # not read by noise_sigma's strided differences
    lim = 8.0 * np.sqrt(1.5) * P.noise_sigma(y)[0]

    def stat(v: float) -> float:
        return v + -0.5 * (y[0, c - 1] + y[0, c + 1])

    v = 0.5 * (y[0, c - 1] + y[0, c + 1]) + lim
    while stat(v) > lim:                    # the largest value at or below the limit
        v = np.nextafter(v, -np.inf)
    while stat(v) <= lim:
        v = np.nextafter(v, np.inf)
    for _ in range(step_ulps - 1 if step_ulps > 0 else 1 - step_ulps):
        v = np.nextafter(v, np.inf if step_ulps > 0 else -np.inf)
    y[0, c] = v
    return y, c


def test_spike_screen_on_float32_copy_finds_every_spike():
    """The float32 screen of float64 scans finds the same spike points as the float64 scan,
    for points right at the limit (where float32 rounding alone would decide) and others."""
    m = 1024
    rows, cols_at = [], []
    for offset in (1e3, 1e6, 3e7):
        for step in (-3, 0, 1, 2, 50):
            y, c = _threshold_row(m, offset, step)
            rows.append(y[0])
            cols_at.append((c, step > 0))
    Y = np.vstack([*rows, _synthetic(np.linspace(300.0, 2300.0, m), n=12, seed=4)[7:]])
    Y[len(rows)] *= 1e25                                 # large but inside the float32 range
    Y[len(rows) + 1] = -Y[len(rows) + 1]
    sigma = P.noise_sigma(Y)
    ymax, ymin = Y.max(axis=1), Y.min(axis=1)
    want = P._spike_points(Y, 8.0, sigma)
    got = P._spike_points(Y, 8.0, sigma, Y.astype(np.float32), np.maximum(ymax, -ymin))
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    flagged = set(zip(*(a.tolist() for a in want), strict=True))
    for i, (c, spike) in enumerate(cols_at):
        assert ((i, c) in flagged) == spike, (i, c, spike)
    _, want_counts = _despike_reference(Y)
    assert np.array_equal(np.bincount(got[0], minlength=len(Y)), want_counts)


def test_saturation_screen_on_float32_copy():
    """Maxima that repeat only after rounding to float32 are not saturation; exact repeats are."""
    y = np.array([[0.0, 1.0, 1.0 + 1e-12, 1.0 + 2e-12, 0.5, 0.2],   # one max, equal in float32
                  [0.0, 1.0, 1.0, 0.3, 1.0, 0.2],                   # flat top + 1 more
                  [0.0, 2.0, 1.0, 2.0, 0.1, 0.2],                   # repeated, not adjacent
                  [0.0, 1e-40, 1e-40, 0.0, -1.0, 0.0],              # subnormal in float32
                  [0.0, 5e38, 4e38, 1.0, 1.0, 0.0]])                # beyond the float32 range
    want = P._saturation(y, None)
    assert want.tolist() == [0.0, 0.5, 0.0, 2 / 6, 0.0]
    with np.errstate(over="ignore"):
        y32 = y.astype(np.float32)
    assert np.array_equal(P._saturation(y, None, y.max(axis=1), y32), want)
    assert np.array_equal(P._saturation(y32, None, y32.max(axis=1), y32), P._saturation(y32, None))


def test_spike_points_rows_the_screen_cannot_bound():
    """Rows with NaN, infinities or values beyond the float32 range take every point as a
    candidate and still follow the plain rule."""
    rng = np.random.default_rng(8)
    y = 100.0 + rng.normal(0, 1, (8, 300))
    y[:, 150] += 60.0                          # a spike in every row
    y[1, 40] = np.nan
    y[2, 200] = np.inf
    y[3, 7] = -np.inf
    y[4] *= 1e300                              # float64 only
    y[5] *= 1e36
    y[6, 100:103] = [1e39, 3e39, 1e39]         # spike made of values beyond float32
    with np.errstate(invalid="ignore", over="ignore"):
        _, want_counts = _despike_reference(y)
        r, c = P._spike_points(y, 8.0, None)
    assert np.array_equal(np.bincount(r, minlength=len(y)), want_counts)
    assert (6, 101) in set(zip(r.tolist(), c.tolist(), strict=True)) and want_counts[0] == 1


@pytest.mark.parametrize("keep", [False, True])
def test_uncovered_grid_stays_zero(keep):
    """X and signal are zero outside the covered range, and everywhere when fewer than 8 grid
    points are covered (such scans are not processed)."""
    r = P.default_recipe()
    for axis in (np.linspace(405.0, 1500.0, 1100), np.linspace(1791.0, 1900.0, 200),
                 np.linspace(100.0, 305.0, 300)):
        Y = _synthetic(axis, n=10, seed=6)[7:]
        p = r.process_array(axis, Y, keep_baseline=keep)
        outside = np.ones(r.axis.size, bool)
        if p.hi - p.lo >= 8:
            outside[p.lo:p.hi] = False
            assert np.all(np.any(p.X[:, p.lo:p.hi] != 0, axis=1))
        assert not np.any(p.X[:, outside]) and not np.any(p.signal[:, outside])


def test_banded_operators_applied_together_equal_each_alone():
    """apply_all interleaves the blocks of several operators on the same input: same results
    as applying them one by one, into column slices of larger arrays too."""
    axis = np.linspace(300.0, 2300.0, 1024)
    x = np.ascontiguousarray(axis)
    ops = P._clipwhit_operators(x.tobytes(), x.size, 310.0, 1800.0, 2.0, 4, 40.0, 7, 3)
    Y = _synthetic(axis, n=70, seed=9)[7:].astype(np.float32)
    Y[~np.isfinite(Y)] = 0.0
    e = np.full((len(Y), ops.envelope.shape[1] + 3), np.nan, dtype=np.float32)
    s = np.full((len(Y), ops.signal.shape[1]), np.nan, dtype=np.float32)
    P.BandedOperator.apply_all(Y, [(ops.envelope, e[:, 2:-1]), (ops.signal, s)])
    assert np.array_equal(e[:, 2:-1], ops.envelope.apply(Y))
    assert np.array_equal(s, ops.signal.apply(Y))
    assert np.all(np.isnan(e[:, :2])) and np.all(np.isnan(e[:, -1]))
