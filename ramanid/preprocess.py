"""Preprocessing of spectrum batches into the matching space, as a named, versioned recipe.

Every step takes a 2-D batch (spectra x points) and returns one; there is no Python loop over
spectra. The default recipe (``default_recipe()``) runs, in order:

1. :func:`despike` - cosmic-ray removal on the native grid: Whitaker & Hayes (Chemometr. Intell.
   Lab. Syst. 2018, 179, 82-84) modified z-score ``0.6745 (x - median) / MAD`` of the local
   spikiness ``y_i - (y_{i-1} + y_{i+1})/2``, plus a width guard so that narrow but real bands of
   high-SNR spectra are kept: a point is a spike only if its excess over the neighbours is at
   least 60 % of its height over the local minimum within +-2 points.
2. :func:`resample` - onto the library axis (start/stop/step of the recipe) with a banded
   triangular kernel (a few weighted gathers per grid point): linear interpolation where the
   scan is coarser than the grid, local averaging where it is finer. Grid points outside the
   scan are "not covered"; the covered fraction is reported and matching uses only the covered
   part.
3. baseline removal - :mod:`ramanid.baseline` (``clipwhit`` by default: iterative clipping with
   a Whittaker smoother on 4-point block means; ``arpls``/``asls``/``modpoly``/``mor`` on
   request), on the covered part.
4. :func:`smooth` - Savitzky-Golay (coefficients by least squares on the window's Vandermonde
   matrix, as Savitzky & Golay, Anal. Chem. 1964, 36, 1627; edges repeat the end values),
   window/polyorder from the recipe (0 disables). numpy only: importing scipy.signal and
   scipy.ndimage would cost about 0.5 s at every start of ``ramanid identify``.
5. :func:`normalise` - ``X``: mean-centred, unit L2 per row, float32, so that the Pearson r of
   two processed spectra is their dot product (SNV gives the same r).

Engine path (``process_array(..., keep_baseline=False)`` with the ``clipwhit`` block-mean
baseline, as ``Identifier.run`` calls it): steps 2-4 are linear in the despiked scan ``y`` except
the clipping of ``clipwhit``, so they run as a few banded float32 GEMMs with operators cached per
scan axis (:class:`BandedOperator`): the coarse envelope ``e = y (R'E')`` (block means of the
resampled scan), the clipping iterations on the coarse grid unchanged (``e = min(e, e S')``),
and the signal ``y (SG R)' - z (SG U)'`` for the final coarse baseline ``z = e S'`` (U: linear
upsampling, SG: Savitzky-Golay). The result equals the step-by-step path (used otherwise, and
whenever the baseline is kept) to float32 rounding; ``tests/test_preprocess_fast.py`` checks it.

QC figures per spectrum (``Processed.qc``):

``snr``            largest baseline-removed band height above the median level / noise sigma
                   (noise from the MAD of the native first differences, divided by sqrt 2)
``saturation``     fraction of native points that sit on a flat top at the row maximum (the same
                   maximum value repeated on neighbouring pixels) or at/above ``saturation_level``;
                   0 for a constant row (no signal at all: ``snr`` is then exactly 0)
``fluorescence``   baseline-to-signal ratio: mean baseline over the covered range / band height
``coverage``       fraction of the library axis covered by the scan axis
``nonfinite``      points that are NaN or infinite (such a row is not processed: all zero)

Rows with values beyond the float32 range (|y| > 1e30) are scaled by their largest magnitude
before processing (every figure above is a ratio, so unchanged; ``signal`` is then in those
scaled units).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ramanid import baseline as _baseline
from ramanid.errors import UsageError
from ramanid.spectrum import SpectrumBatch

__all__ = [
    "BandedOperator",
    "Processed",
    "Recipe",
    "default_recipe",
    "despike",
    "noise_sigma",
    "normalise",
    "resample",
    "resampler",
    "row_median",
    "savgol_coeffs",
    "smooth",
    "snv",
]

RECIPE_NAME = "ramanid-default"
RECIPE_VERSION = "3"

DEFAULT_PARAMS: dict[str, Any] = {
    "axis": {"start": 310.0, "stop": 1800.0, "step": 2.0},
    "despike": {"threshold": 8.0},
    "baseline": {"method": "clipwhit", "block": 4, "lam": 40.0, "n_iter": 10, "envelope": "mean"},
    "smooth": {"window": 7, "polyorder": 3},
    "normalise": "vector",
    "saturation_level": None,
}


# --------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------
def noise_sigma(y: np.ndarray, max_samples: int = 256) -> np.ndarray:
    """Robust per-row noise sigma: 1.4826 median(|first differences|) / sqrt(2).

    The median uses at most ``max_samples`` evenly strided differences per row (it estimates the
    same quantity at a fraction of the cost); first differences of a spectrum have a median of
    about 0, so the median absolute difference is the MAD.
    """
    stride = max(1, (y.shape[1] - 1) // max_samples)
    upper = y[:, 1::stride]                      # neighbour differences, every `stride` points
    d = np.subtract(upper, y[:, 0:-1:stride][:, : upper.shape[1]])
    np.abs(d, out=d)
    return 1.4826 * row_median(d) / np.sqrt(2.0)


_LOW_BITS = np.int32(0x7FFFFFFF)


def _order_keys(a32: np.ndarray) -> np.ndarray:
    """int32 keys ordered as the float32 values of ``a32`` (computed in place in ``a32``).

    A float's bit pattern read as an int32 is ordered like the float for values >= +0; flipping
    the 31 low bits of the negative ones reverses their order, which puts them below, in float
    order. NaN keys fall outside the keys of -inf .. +inf. The map is its own inverse.
    """
    k = a32.view(np.int32)
    t = k >> 31
    t &= _LOW_BITS
    k ^= t
    return k


_KEY_NEG_INF, _KEY_POS_INF = _order_keys(np.array([-np.inf, np.inf], dtype=np.float32)).tolist()


def row_median(a: np.ndarray) -> np.ndarray:
    """Median of every row, equal to ``np.median(a, axis=1)`` (NaN rows give NaN).

    float32 and float64 rows are sorted as int32 keys of their float32 values (numpy's int32
    sort is several times faster than its float64 sort, and than the partition that
    ``np.median`` uses on short rows). For float32 the middle keys are the middle values. For
    float64 the rounding to float32 keeps the order (never strictly reversed), so the middle
    element of a row is the element whose key is the middle key; it is read back from ``a``
    unless another element of the row has the same key (a tie of the rounding), when that row
    is sorted in float64. The selected values, and so the result, are numpy's.
    """
    a = np.asarray(a)
    n, k = a.shape
    if k == 0 or a.dtype not in (np.float32, np.float64):
        return _sorted_median(a)
    with np.errstate(over="ignore"):                 # beyond the float32 range: +-inf keys
        keys = _order_keys(a.astype(np.float32))
    if a.dtype == np.float64:
        s = np.sort(keys, axis=1)      # the unsorted keys locate the middle elements in `a`
    else:
        s = keys
        s.sort(axis=1)
    mid = [k // 2] if k % 2 else [k // 2 - 1, k // 2]
    vals = np.empty((n, len(mid)), dtype=a.dtype)
    for col, j in enumerate(mid):
        v = s[:, j]
        if a.dtype == np.float32:
            vals[:, col] = _order_keys(v.copy()).view(np.float32)
            continue
        vals[:, col] = a[np.arange(n), np.argmax(keys == v[:, None], axis=1)]
        tie = np.zeros(n, dtype=bool)
        if j > 0:
            tie |= s[:, j - 1] == v
        if j + 1 < k:
            tie |= s[:, j + 1] == v
        rows = np.flatnonzero(tie)
        if rows.size:
            vals[rows, col] = np.sort(a[rows], axis=1)[:, j]
    med = vals[:, 0] if k % 2 else np.mean(vals, axis=1)
    nan = (s[:, 0] < _KEY_NEG_INF) | (s[:, -1] > _KEY_POS_INF)
    if nan.any():
        med[nan] = np.nan
    return med


def _sorted_median(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` by a full row sort (other dtypes and empty rows)."""
    k = a.shape[1]
    if k == 0:
        return np.median(a, axis=1)
    s = np.sort(a, axis=1)
    if k % 2:
        med = s[:, k // 2].copy()
    else:
        med = np.mean(s[:, k // 2 - 1:k // 2 + 1], axis=1)
    if np.issubdtype(s.dtype, np.floating):
        nan = np.isnan(s[:, -1])      # NaN sorts last
        if nan.any():
            med[nan] = np.nan
    return med


_ROW_BLOCK = 64  # rows per block of the spike screen (its buffers stay in cache)


def _spike_statistic(y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Local spikiness ``y_i - (y_{i-1} + y_{i+1})/2`` at the interior points, ``(n, m-2)``."""
    s = np.add(y[:, :-2], y[:, 2:], out=out)
    s *= -0.5
    s += y[:, 1:-1]
    return s


def despike(y: np.ndarray, threshold: float = 8.0, sigma: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Remove cosmic-ray spikes from every row (modified z-score with a width guard).

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)`` (native grid).
    threshold
        Modified z-score above which a point can be a spike (Whitaker & Hayes use 5-10).
    sigma
        Per-row noise sigma if already known (see :func:`noise_sigma`).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Despiked copy of ``y`` and the number of spike points replaced per row.
    """
    y = np.asarray(y)
    out = y.copy()
    if y.shape[1] < 7:
        return out, np.zeros(y.shape[0], dtype=np.int64)
    r, c = _spike_points(y, threshold, sigma)
    _patch_spikes(out, y, r, r, c)
    return out, np.bincount(r, minlength=y.shape[0]).astype(np.int64)


def _spike_points(y: np.ndarray, threshold: float, sigma: np.ndarray | None,
                  y32: np.ndarray | None = None, mag: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the spike points of :func:`despike` (row-major order), ``m >= 7``.

    A screen of the float32 rows (``y32``: ``y`` as float32 if already made), block by block
    in small buffers, lists the candidate points: it computes twice the statistic as a
    difference of first differences against a limit lowered by more than its rounding error
    relative to the float statistic of ``y`` (``mag``: row maxima of ``|y|`` if known). The
    statistic and the width guard are then evaluated exactly, in ``y``'s dtype, at the
    candidates only. Rows the screen cannot bound (non-finite or huge values) are candidates
    at every point.
    """
    n, m = y.shape
    if sigma is None:
        sigma = noise_sigma(y)
    # s of white noise has sigma * sqrt(1.5); modified z = 0.6745 * s / MAD ~ s / sigma_s
    lim = (threshold * np.sqrt(1.5) * np.maximum(sigma, np.finfo(np.float32).tiny)).astype(y.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if y32 is None:
            y32 = y.astype(np.float32, copy=False)
        if mag is None:
            mag = np.max(np.abs(y), axis=1)
        # With u = 2**-24: rounding y to float32 moves 2 s by <= 4 u M (M = max |y| of the row;
        # + 2**-149 per value below the normal range), the float32 differences add <= 8 u M,
        # and y's own float statistic is within 2**-51 M of the exact one: 2 s is screened
        # against 2 (lim - 2**-20 M - 1e-37), rounded down.
        ok = mag < 1e36
        lim2 = 2 * np.nextafter((lim - (mag * 2.0**-20 + 1e-37)).astype(np.float32),
                                np.float32(-np.inf))
    w = m - 6                          # points 3 .. m-4 (3 points at each end never spike)
    rows = min(n, _ROW_BLOCK)
    d = np.empty((rows, w + 1), dtype=np.float32)
    t = np.empty((rows, w), dtype=np.float32)
    hit = np.empty((rows, w), dtype=bool)
    found = [np.flatnonzero(np.repeat(~ok, w))] if not ok.all() else []
    for a in range(0, n, _ROW_BLOCK):
        b = min(a + _ROW_BLOCK, n)
        db = np.subtract(y32[a:b, 3:m - 2], y32[a:b, 2:m - 3], out=d[:b - a])   # y_j - y_j-1
        tb = np.subtract(db[:, :-1], db[:, 1:], out=t[:b - a])     # 2 s at points 3 .. m-4
        f = np.flatnonzero(np.greater(tb, lim2[a:b, None], out=hit[:b - a]))
        if f.size:
            found.append(f + a * w)
    if not found:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    flat = np.concatenate(found)
    if not ok.all():
        flat = np.unique(flat)
    r, c = np.divmod(flat, w)          # row-major, as np.nonzero
    c += 3                             # point index
    # exact statistic (same arithmetic) and width guard at the candidate points only:
    # excess over neighbours vs height over the local minimum
    win = y[r[:, None], c[:, None] + np.arange(-2, 3)[None, :]]
    s = _spike_statistic(win[:, 1:4])[:, 0]
    height = win[:, 2] - win.min(axis=1)
    spike = (s > lim[r]) & (s >= 0.6 * height)
    return r[spike], c[spike]


def _patch_spikes(out: np.ndarray, y: np.ndarray, r_out: np.ndarray, r: np.ndarray,
                  c: np.ndarray) -> None:
    """Replace each spike (row ``r``, column ``c`` of ``y``; row ``r_out`` of ``out``) and its
    two flanks by the line between the points 2 away (values read from ``y``)."""
    left, right = y[r, c - 2], y[r, c + 2]
    for k in (-1, 0, 1):
        out[r_out, c + k] = left + (right - left) * (k + 2) / 4.0


class Resampler:
    """Banded resampling operator from a scan axis onto the covered part of the library grid.

    Grid point ``g`` is ``sum_k weights[k, g] * y[start[g] + k]`` (``k < weights.shape[0]``):
    a triangular kernel of half-width ``max(native step, grid step)``, normalised to sum 1.

    Attributes
    ----------
    start
        ``(hi-lo,)`` first native index of each grid point's kernel.
    weights
        ``(taps, hi-lo)`` kernel weights.
    lo, hi
        Covered grid index range.
    gain
        Factor by which white noise sigma shrinks (root mean of the squared weight sums).
    """

    def __init__(self, start: np.ndarray, weights: np.ndarray, lo: int, hi: int,
                 gain: float) -> None:
        self.start, self.weights, self.lo, self.hi, self.gain = start, weights, lo, hi, gain

    def apply(self, y: np.ndarray) -> np.ndarray:
        """Resample every row of ``y`` (n, len(axis)) onto ``grid[lo:hi]`` (same dtype)."""
        w = self.weights.astype(y.dtype)
        m = y.shape[1]
        out = y[:, self.start] * w[0]
        for k in range(1, w.shape[0]):
            out += y[:, np.minimum(self.start + k, m - 1)] * w[k]
        return out


@lru_cache(maxsize=32)
def _resampler_cached(axis_key: bytes, n_in: int, start: float, stop: float, step: float
                      ) -> Resampler:
    x = np.frombuffer(axis_key, dtype=np.float64)
    grid = grid_axis(start, stop, step)
    covered = (grid >= x[0]) & (grid <= x[-1])
    idx = np.flatnonzero(covered)
    if idx.size == 0 or n_in < 2:
        return Resampler(np.zeros(0, dtype=np.intp), np.zeros((1, 0)), 0, 0, 1.0)
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    g = grid[lo:hi]
    j = np.clip(np.searchsorted(x, g), 1, n_in - 1)
    native_step = x[j] - x[j - 1]
    h = np.maximum(native_step, step)  # kernel half-width: linear interp or local average
    k_max = int(np.ceil(np.max(h / np.min(np.diff(x))))) + 1
    ks = np.arange(-k_max, k_max + 1)[:, None]
    i = j[None, :] + ks                                          # (taps, G) native indices
    ok = (i >= 0) & (i < n_in)
    ii = np.clip(i, 0, n_in - 1)
    w = np.where(ok, np.maximum(0.0, 1.0 - np.abs(x[ii] - g[None, :]) / h[None, :]), 0.0)
    w /= w.sum(axis=0, keepdims=True)
    # keep only the band of taps with any weight, starting at each point's first used index
    used = w > 0
    first = np.argmax(used, axis=0)
    last = w.shape[0] - 1 - np.argmax(used[::-1], axis=0)
    taps = int(np.max(last - first)) + 1
    start_idx = ii[first, np.arange(g.size)]
    sel = first[None, :] + np.arange(taps)[:, None]
    inside = sel < w.shape[0]
    weights = np.where(inside, np.take_along_axis(w, np.minimum(sel, w.shape[0] - 1), axis=0),
                       0.0)
    gain = float(np.sqrt(np.mean(np.sum(w * w, axis=0))))
    return Resampler(start_idx.astype(np.intp), weights, lo, hi, gain)


def grid_axis(start: float, stop: float, step: float) -> np.ndarray:
    """The library axis ``start, start+step, ..., <= stop`` in cm-1."""
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(n)


def resampler(axis: np.ndarray, start: float, stop: float, step: float) -> Resampler:
    """Resampling operator from ``axis`` onto the covered part of the grid (cached per axis).

    Returns
    -------
    Resampler
        ``R.apply(Y)`` is the resampled batch on ``grid[R.lo:R.hi]``; ``R.gain`` the noise gain
        (factor by which white noise sigma shrinks).
    """
    axis = np.ascontiguousarray(axis, dtype=np.float64)
    return _resampler_cached(axis.tobytes(), axis.size, float(start), float(stop), float(step))


def resample(y: np.ndarray, axis: np.ndarray, start: float, stop: float, step: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample every row onto the grid; uncovered grid points are 0 and flagged.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Resampled batch ``(n, M)`` and the boolean coverage mask ``(M,)``.
    """
    rs = resampler(axis, start, stop, step)
    m_out = grid_axis(start, stop, step).size
    out = np.zeros((y.shape[0], m_out), dtype=y.dtype)
    if rs.hi > rs.lo:
        out[:, rs.lo:rs.hi] = rs.apply(y)
    mask = np.zeros(m_out, dtype=bool)
    mask[rs.lo:rs.hi] = True
    return out, mask


class BandedOperator:
    """A mostly-zero linear map ``Y -> Y A`` stored as dense sub-blocks along its band.

    The output columns are split into blocks; block ``b`` (columns ``[c0, c1)``) depends only on
    the input columns ``[i0, i1)`` where its columns of ``A`` are non-zero, so applying the
    operator is one small float32 GEMM per block on a strided view of ``Y`` (no gathers, no
    copies).

    Parameters
    ----------
    shape
        ``(m_in, m_out)`` of ``A``.
    blocks
        ``(c0, c1, i0, sub)`` with ``sub = A[i0:i0 + len(sub), c0:c1]``, blocks covering the
        output columns in order; rows of ``sub`` that are zero at either end are dropped.
    """

    def __init__(self, shape: tuple[int, int],
                 blocks: list[tuple[int, int, int, np.ndarray]]) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.blocks: list[tuple[int, int, int, int, np.ndarray]] = []
        for c0, c1, i0, sub in blocks:
            nz = np.flatnonzero(np.any(sub != 0, axis=1))
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, min(1, len(sub)))
            part = np.ascontiguousarray(sub[a:b], dtype=np.float32)
            part.setflags(write=False)
            self.blocks.append((int(c0), int(c1), int(i0) + a, int(i0) + b, part))

    @classmethod
    def from_dense(cls, A: np.ndarray, width: int = 16) -> BandedOperator:
        """Operator of a dense matrix ``A`` ``(m_in, m_out)``, ``width`` output columns a block."""
        A = np.asarray(A)
        return cls(A.shape, [(c0, min(c0 + width, A.shape[1]), 0, A[:, c0:c0 + width])
                             for c0 in range(0, A.shape[1], width)])

    def dense(self) -> np.ndarray:
        """The operator as a dense float64 matrix (for checks)."""
        A = np.zeros(self.shape)
        for c0, c1, i0, i1, sub in self.blocks:
            A[i0:i1, c0:c1] = sub
        return A

    def apply(self, Y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``Y A`` in float32 for a float32 batch ``Y`` ``(n, m_in)``; ``out`` ``(n, m_out)``
        (may be a column slice of a larger array)."""
        if out is None:
            out = np.empty((Y.shape[0], self.shape[1]), dtype=np.float32)
        BandedOperator.apply_all(Y, [(self, out)])
        return out

    @staticmethod
    def apply_all(Y: np.ndarray, pairs: list[tuple[BandedOperator, np.ndarray]]) -> None:
        """Apply several operators to the same float32 batch: ``out = Y A`` for every pair.

        The blocks of all operators run in the order of their first input column, so that
        each band of ``Y`` comes from memory once and from cache for the other operators'
        blocks (on a 1024-scan batch, larger than the CPU cache, ~25 % less time than one
        operator after the other). Every block is the same product as alone: the results are
        identical.

        Parameters
        ----------
        Y
            float32 batch ``(n, m_in)`` (the same ``m_in`` for every operator).
        pairs
            ``(A, out)`` with ``out`` ``(n, A.shape[1])`` float32 (may be a column slice).
        """
        blocks = sorted(((i0, i1, sub, out[:, c0:c1]) for op, out in pairs
                         for c0, c1, i0, i1, sub in op.blocks), key=lambda b: b[0])
        for i0, i1, sub, dest in blocks:
            np.matmul(Y[:, i0:i1], sub, out=dest)


def _resampling_rows(rsm: Resampler, n_in: int, a0: int, a1: int) -> tuple[int, np.ndarray]:
    """Rows ``[i0, i0 + len(sub))`` and ``sub = R'[i0:, a0:a1]`` of the resampling operator.

    ``R'`` (native points x covered grid points) holds, in column ``g``, the kernel weights
    ``Resampler.weights[k, g]`` at the native rows ``start[g] + k`` (as ``Resampler.apply``).
    """
    w = rsm.weights[:, a0:a1]
    k, col = np.nonzero(w)     # zero-weight taps (incl. every clipped index) contribute nothing
    rows = rsm.start[a0 + col] + k
    i0 = int(rows.min())
    sub = np.zeros((int(rows.max()) + 1 - i0, a1 - a0))
    sub[rows - i0, col] = w[k, col]            # one weight per (row, column)
    return i0, sub


def _smoothed_blocks(columns: Callable[[int, int], tuple[int, np.ndarray]], g: int, window: int,
                     polyorder: int, width: int = 16) -> list[tuple[int, int, int, np.ndarray]]:
    """Blocks of ``smooth(A)`` for a banded ``A`` with ``g`` columns, as :func:`smooth` computes
    them (weighted sums of shifted columns, edges repeated); ``columns(a0, a1)`` returns
    ``(i0, A[i0:i1, a0:a1])`` holding every non-zero of those columns."""
    active = window >= 3 and g >= window          # as smooth(): otherwise unchanged
    coef = savgol_coeffs(window, polyorder) if active else np.ones(1)
    half = window // 2 if active else 0
    blocks = []
    for c0 in range(0, g, width):
        c1 = min(c0 + width, g)
        a0, a1 = max(c0 - half, 0), min(c1 + half, g)
        i0, sub = columns(a0, a1)
        j = np.arange(c0 - half, c1 - half)
        out = sub[:, np.minimum(np.maximum(j, 0), g - 1) - a0] * coef[0]
        for k in range(1, coef.size):
            out += sub[:, np.minimum(np.maximum(j + k, 0), g - 1) - a0] * coef[k]
        blocks.append((c0, c1, i0, out))
    return blocks


@dataclass(frozen=True)
class _ClipwhitOperators:
    """Linear pieces of resample -> clipwhit (block means) -> smooth, for one scan axis.

    With ``y`` the despiked native scans: the coarse envelope is ``envelope.apply(y)``, the
    clipping runs on the coarse grid with ``St``, and for the final coarse baseline ``z`` the
    smoothed baseline-removed signal is ``signal.apply(y) - base_signal.apply(z)``; the mean of
    the baseline over the covered range is ``z @ base_mean``.
    """

    envelope: BandedOperator      # (m_in -> c): block means of the resampled scan
    signal: BandedOperator        # (m_in -> G): smoothed resampled scan
    base_signal: BandedOperator   # (c -> G): smoothed upsampled coarse baseline
    St: np.ndarray                # (c, c) float32 transposed coarse smoother
    base_mean: np.ndarray         # (c,) float64 column means of the upsampling


@lru_cache(maxsize=16)
def _clipwhit_operators(axis_key: bytes, n_in: int, start: float, stop: float, step: float,
                        block: int, lam: float, window: int, polyorder: int
                        ) -> _ClipwhitOperators:
    """Build the operators of :class:`_ClipwhitOperators` for one scan axis and recipe.

    Each is the composition of the general path's linear steps, built band block by band block
    with the same arithmetic as those steps (``block_envelope`` on the resampling columns of a
    coarse block; ``smooth``'s weighted column sums, edges repeated, on the resampling or
    upsampling columns of a grid block): equal to pushing identity matrices through the steps,
    at a fraction of the cost (a few milliseconds per new axis).
    """
    rsm = _resampler_cached(axis_key, n_in, start, stop, step)
    g = rsm.hi - rsm.lo
    S, U, c = _baseline._clip_operators(g, block, lam)
    env = []
    for c0 in range(0, c, 4):          # 4 coarse points a block: fewest multiplied zeros
        c1 = min(c0 + 4, c)
        i0, sub = _resampling_rows(rsm, n_in, c0 * block, min(c1 * block, g))
        env.append((c0, c1, i0, _baseline.block_envelope(sub, block, "mean", np.float64)))
    sig = _smoothed_blocks(lambda a0, a1: _resampling_rows(rsm, n_in, a0, a1), g, window,
                           polyorder)

    def u_columns(a0: int, a1: int) -> tuple[int, np.ndarray]:
        nz = np.flatnonzero(np.any(U[:, a0:a1] != 0, axis=1))
        return int(nz[0]), U[nz[0]:nz[-1] + 1, a0:a1]

    base_sig = _smoothed_blocks(u_columns, g, window, polyorder)
    St = np.ascontiguousarray(S.T, dtype=np.float32)
    St.setflags(write=False)
    base_mean = U.mean(axis=1)
    base_mean.setflags(write=False)
    return _ClipwhitOperators(BandedOperator((n_in, c), env), BandedOperator((n_in, g), sig),
                              BandedOperator((c, g), base_sig), St, base_mean)


@lru_cache(maxsize=16)
def savgol_coeffs(window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing coefficients (value at the window centre), float64.

    The least-squares fit of a polynomial of degree ``polyorder`` to ``window`` equally spaced
    points evaluated at the centre is a fixed linear combination of the points: the first row
    of the pseudo-inverse of the Vandermonde matrix ``A[i, p] = (i - window // 2) ** p``.
    """
    if window % 2 == 0 or polyorder >= window:
        raise UsageError(f"Savitzky-Golay window {window} must be odd and > polyorder {polyorder}")
    x = np.arange(window, dtype=np.float64) - window // 2
    A = x[:, None] ** np.arange(polyorder + 1)[None, :]
    coef = np.linalg.pinv(A)[0]
    coef.setflags(write=False)
    return coef


def smooth(y: np.ndarray, window: int = 7, polyorder: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing of every row (``window`` < 3 or > row length: unchanged).

    Edges repeat the end values (scipy.ndimage ``mode="nearest"``).
    """
    if window < 3 or y.shape[1] < window:
        return y
    coef = savgol_coeffs(window, polyorder).astype(y.dtype)
    half = window // 2
    m = y.shape[1]
    pad = np.concatenate([np.repeat(y[:, :1], half, axis=1), y,
                          np.repeat(y[:, -1:], half, axis=1)], axis=1)
    out = pad[:, 0:m] * coef[0]
    for k in range(1, window):
        out += pad[:, k:k + m] * coef[k]
    return out


def normalise(y: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean-centre and scale every row to unit L2 norm (float32); zero rows stay zero.

    Parameters
    ----------
    y
        Rows to normalise.
    out
        Optional array of ``y``'s shape to write the rows into (e.g. a column slice of a
        larger float32 array); new arrays otherwise.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The normalised rows and the norm of each centred row (float64).
    """
    x = np.subtract(y, y.mean(axis=1, keepdims=True), out=out)
    nrm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    x /= np.where(nrm > 0, nrm, 1.0).astype(x.dtype)[:, None]
    return x.astype(np.float32, copy=False), nrm


def snv(y: np.ndarray) -> np.ndarray:
    """Standard normal variate: each row minus its mean, divided by its standard deviation."""
    sd = y.std(axis=1, keepdims=True)
    return (y - y.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


# --------------------------------------------------------------------------------------------
# recipe
# --------------------------------------------------------------------------------------------
@dataclass
class Processed:
    """Output of :meth:`Recipe.process`.

    Attributes
    ----------
    axis
        The library axis (cm-1), shape ``(M,)``.
    X
        float32 ``(n, M)``: covered part mean-centred and unit L2, zeros outside coverage.
    qc
        dict of 1-D arrays: ``snr``, ``saturation``, ``fluorescence``, ``coverage``, ``spikes``.
    signal
        float32 ``(n, M)``: baseline-removed, smoothed spectra in the scan's units (for
        plots/mixtures), zeros outside coverage.
    baseline
        float32 ``(n, M)`` baseline that was removed (zeros outside coverage).
    lo, hi
        Covered grid index range ``[lo, hi)`` (one axis per batch).
    noise
        Per-row noise sigma per point in the units of ``X`` (after resampling and smoothing).
    norm
        Norm of each centred signal row (``signal`` = ``X * norm`` + mean on the covered part).
    """

    axis: np.ndarray
    X: np.ndarray
    qc: dict[str, np.ndarray]
    signal: np.ndarray
    baseline: np.ndarray
    lo: int
    hi: int
    noise: np.ndarray
    norm: np.ndarray
    recipe: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@dataclass
class Recipe:
    """A named, versioned preprocessing recipe; its ``params`` include the library axis."""

    name: str = RECIPE_NAME
    version: str = RECIPE_VERSION
    params: dict[str, Any] = field(default_factory=lambda: _merge(DEFAULT_PARAMS, {}))

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description ``{"name", "version", "params"}``."""
        return {"name": self.name, "version": self.version, "params": copy.deepcopy(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """Rebuild a recipe from :meth:`to_dict` output (missing params take the defaults)."""
        if not isinstance(d, dict) or "params" not in d:
            raise UsageError("recipe description must be a dict with 'name', 'version', 'params'")
        given = dict(d.get("params") or {})
        params = _merge(DEFAULT_PARAMS, given)
        if isinstance(given.get("baseline"), dict) and "method" in given["baseline"]:
            params["baseline"] = dict(given["baseline"])  # parameters belong to that method
        method = params["baseline"].get("method")
        if method not in (*_baseline.METHODS, "none"):
            raise UsageError(f"unknown baseline method {method!r} in recipe")
        return cls(str(d.get("name", RECIPE_NAME)), str(d.get("version", RECIPE_VERSION)), params)

    # -- axis -------------------------------------------------------------------------------------
    @property
    def axis(self) -> np.ndarray:
        """The library axis of this recipe (cm-1)."""
        a = self.params["axis"]
        return grid_axis(a["start"], a["stop"], a["step"])

    # -- processing -------------------------------------------------------------------------------
    def process(self, batch: SpectrumBatch, *, keep_baseline: bool = True) -> Processed:
        """Run the recipe on a batch (no Python loop over spectra).

        Parameters
        ----------
        batch
            Spectra on one increasing Raman-shift axis.
        keep_baseline
            Keep the removed baseline in the result (memory: one float32 array like ``X``).

        Returns
        -------
        Processed
        """
        return self.process_array(batch.axis, batch.intensity, keep_baseline=keep_baseline)

    def process_array(self, axis: np.ndarray, intensity: np.ndarray, *,
                      keep_baseline: bool = True) -> Processed:
        """:meth:`process` on a bare axis ``(m,)`` and intensity array ``(n, m)``."""
        p = self.params
        ax = p["axis"]
        raw = np.atleast_2d(np.asarray(intensity))
        y = raw if raw.dtype in (np.float32, np.float64) else raw.astype(np.float64)
        y, nonfinite, ymax, ymin = _sanitise(y)
        flat = ymax == ymin
        y32 = y if y.dtype == np.float32 else y.astype(np.float32)   # GEMM input, screens
        sigma = noise_sigma(y)
        sat = np.where(flat, 0.0, _saturation(y, p.get("saturation_level"),
                                              ymax if y.shape[1] else None, y32))
        thr = p["despike"].get("threshold")
        spikes = np.zeros(y.shape[0], dtype=np.int64)
        spike_r = spike_c = np.zeros(0, dtype=np.intp)
        if thr and y.shape[1] >= 7:
            spike_r, spike_c = _spike_points(y, float(thr), sigma, y32, np.maximum(ymax, -ymin))
            spikes = np.bincount(spike_r, minlength=y.shape[0]).astype(np.int64)
        rsm = resampler(axis, ax["start"], ax["stop"], ax["step"])
        lo, hi, gain = rsm.lo, rsm.hi, rsm.gain
        m_out = self.axis.size
        n = y.shape[0]
        X = np.empty((n, m_out), dtype=np.float32)
        signal = np.empty((n, m_out), dtype=np.float32)
        for a in (X, signal):          # zeros where not covered ([lo, hi) is written below)
            if hi - lo >= 8:
                a[:, :lo] = 0.0
                a[:, hi:] = 0.0
            else:
                a[:] = 0.0
        base_full = np.zeros((n, m_out), dtype=np.float32) if keep_baseline else None
        coverage = np.full(n, (hi - lo) / m_out)
        qc = {"snr": np.zeros(n), "saturation": sat, "fluorescence": np.zeros(n),
              "coverage": coverage, "spikes": spikes, "nonfinite": nonfinite}
        noise = np.full(n, np.inf)
        norm = np.zeros(n)
        if hi - lo >= 8:
            window, polyorder = int(p["smooth"]["window"]), int(p["smooth"]["polyorder"])
            bl = p["baseline"]
            if not keep_baseline and _fast_path(bl):
                sig = signal[:, lo:hi]
                base_mean = self._clipwhit_fast(axis, y, y32, (spike_r, spike_c), bl, window,
                                                polyorder, sig, X[:, lo:hi])
                _, norm = normalise(sig, out=X[:, lo:hi])
            else:
                if spike_r.size:
                    y_in, y = y, y.copy()
                    _patch_spikes(y, y_in, spike_r, spike_r, spike_c)
                yr = np.ascontiguousarray(rsm.apply(y), dtype=np.float32)
                bl_params = {k: v for k, v in bl.items() if k != "method"}
                base = _baseline.estimate(yr, bl["method"], **bl_params).astype(np.float32)
                sig = smooth(yr - base, window, polyorder)
                xc, norm = normalise(sig)
                X[:, lo:hi] = xc
                signal[:, lo:hi] = sig
                if base_full is not None:
                    base_full[:, lo:hi] = base
                base_mean = base.mean(axis=1)
            # band height above the median level (the median of a baseline-removed spectrum is
            # its baseline; for pure noise the height is then only ~3 smoothed sigma)
            height = np.maximum(sig.max(axis=1).astype(np.float64)
                                - row_median(sig[:, ::4]), 0.0)
            qc["snr"] = np.where(flat, 0.0, height / np.maximum(sigma, 1e-12))
            qc["fluorescence"] = np.maximum(base_mean, 0.0) / np.maximum(height, 1e-12)
            sg_gain = (float(np.sqrt(np.sum(savgol_coeffs(window, polyorder) ** 2)))
                       if window >= 3 else 1.0)
            noise = sigma * gain * sg_gain / np.maximum(norm, 1e-12)
        if base_full is None:
            base_full = np.zeros((0, m_out), dtype=np.float32)
        return Processed(self.axis, X, qc, signal, base_full, lo, hi, noise, norm, self.to_dict())

    def _clipwhit_fast(self, axis: np.ndarray, y: np.ndarray, y32: np.ndarray,
                       spikes: tuple[np.ndarray, np.ndarray], bl: dict[str, Any], window: int,
                       polyorder: int, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """Resample + clipwhit (block means) + smooth as banded GEMMs (see module docstring).

        ``y`` is the batch before despiking (``y32``: as float32) and ``spikes`` the spike
        points: the rows with spikes are despiked in a copy of those rows only and pushed
        through the operators again. Writes the smoothed baseline-removed signal ``(n, hi-lo)``
        into ``out`` (``scratch``, of the same shape, holds the smoothed baseline) and returns
        the mean baseline of every row (float64).
        """
        ax = self.params["axis"]
        x = np.ascontiguousarray(axis, dtype=np.float64)
        ops = _clipwhit_operators(x.tobytes(), x.size, float(ax["start"]), float(ax["stop"]),
                                  float(ax["step"]), int(bl.get("block", 4)),
                                  float(bl.get("lam", 40.0)), window, polyorder)
        e = np.empty((y.shape[0], ops.envelope.shape[1]), dtype=np.float32)
        BandedOperator.apply_all(y32, [(ops.envelope, e), (ops.signal, out)])
        r, c = spikes
        if r.size:
            rows, r_fix = np.unique(r, return_inverse=True)
            fixed = y[rows]                    # despiked in the input dtype, as despike()
            _patch_spikes(fixed, y, r_fix, r, c)
            fixed = fixed.astype(np.float32, copy=False)
            e[rows] = ops.envelope.apply(fixed)
            out[rows] = ops.signal.apply(fixed)
        z = _baseline.clip_iterate(e, ops.St, int(bl.get("n_iter", 10)))
        out -= ops.base_signal.apply(z, out=scratch)
        return z.astype(np.float64) @ ops.base_mean


def _fast_path(bl: dict[str, Any]) -> bool:
    """Whether the baseline parameters are those of the banded fast path (clipwhit, mean)."""
    return (bl.get("method") == "clipwhit" and bl.get("envelope", "mean") == "mean"
            and set(bl) <= {"method", "block", "lam", "n_iter", "envelope"})


def _sanitise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows with non-finite values zeroed (count returned); rows beyond float32 range scaled.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray)
        The sanitised batch, the non-finite count per row and the row maxima and minima of the
        sanitised batch (one pass each: ``max |y| = max(max y, -min y)``).
    """
    n = y.shape[0]
    if not y.shape[1]:
        return y, np.zeros(n, dtype=np.int64), np.zeros(n, y.dtype), np.zeros(n, y.dtype)
    hi, lo = y.max(axis=1), y.min(axis=1)
    mx = np.maximum(hi, -lo)                   # max |y|; NaN propagates
    bad = ~np.isfinite(mx)
    big = (mx > 1e30) & ~bad
    nonfinite = np.zeros(n, dtype=np.int64)
    if bad.any() or big.any():
        y = y.astype(np.float64, copy=True)
        if bad.any():
            nonfinite[bad] = (~np.isfinite(y[bad])).sum(axis=1)
            y[bad] = 0.0
        y[big] /= mx[big, None]
        hi, lo = y.max(axis=1), y.min(axis=1)
    return y, nonfinite, hi, lo


def _saturation(y: np.ndarray, level: float | None, mx: np.ndarray | None = None,
                y32: np.ndarray | None = None) -> np.ndarray:
    """Fraction of points on a flat top at the row maximum, or at/above ``level``.

    ``mx`` is the row maximum if already known. Only rows whose maximum occurs more than once
    are checked for a repeat on neighbouring pixels. With ``y32`` (float32 copy of a float64
    ``y``) those rows are first looked for in ``y32``: rounding keeps the order (``y >= max``
    implies ``y32 >= float32(max)``), so its rows with a repeated maximum include all of
    ``y``'s, which are then found exactly among them.
    """
    if mx is None:
        mx = y.max(axis=1)
    if y32 is None or y32 is y:
        rows, at_max, count = _repeated_max(y, mx)
    else:
        with np.errstate(over="ignore"):
            cand = _repeated_max(y32, mx.astype(np.float32))[0]
        rows, at_max, count = _repeated_max(y[cand], mx[cand])
        rows = cand[rows]
    frac = np.zeros(y.shape[0])
    if rows.size:
        flat = (at_max[:, 1:] & at_max[:, :-1]).any(axis=1)  # maximum repeated on neighbours
        frac[rows[flat]] = count[flat]
    frac /= y.shape[1]
    if level is not None:
        frac = np.maximum(frac, (y >= float(level)).mean(axis=1))
    return frac.astype(np.float64)


def _repeated_max(y: np.ndarray, mx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``y`` where the value ``mx`` of the row is reached more than once, with their
    ``y >= mx`` masks and counts."""
    at_max = y >= mx[:, None]
    # count per row as a byte sum (wide enough for the row length: exact)
    acc = np.uint16 if y.shape[1] < 65536 else np.int64
    count = np.add.reduce(at_max.view(np.uint8), axis=1, dtype=acc)
    rows = np.flatnonzero(count > 1)
    return rows, at_max[rows], count[rows]


def default_recipe() -> Recipe:
    """The recipe the shipped library is built with (see module docstring for the steps)."""
    return Recipe()
