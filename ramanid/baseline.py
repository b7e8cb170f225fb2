"""Baseline (fluorescence) removal on batches of spectra, vectorised over the batch.

Two families, each checked against pybaselines 1.2 in ``tests/test_baseline*.py``:

* Whittaker (penalised least squares, second-difference penalty): :func:`asls` (Eilers & Boelens
  2005) and :func:`arpls` (Baek et al., Analyst 2015, 140, 250-257). The pentadiagonal system
  ``(W + lam D'D) z = W y`` of every spectrum is solved at once by a banded LDL^T elimination that
  loops over the *points* and does numpy operations on all spectra of the batch together
  (:func:`whittaker_solve`). Per-spectrum convergence follows pybaselines: stop when the relative
  change of the weights drops below ``tol``; a converged row is frozen.
* Iterative polynomial: :func:`modpoly` (Lieber & Mahadevan-Jansen, Appl. Spectrosc. 2003, 57,
  1363). Every iteration is two thin matrix products with a precomputed orthonormal polynomial
  basis (one projection GEMM for the whole batch) and an elementwise minimum.

All functions take ``Y`` of shape ``(n_spectra, n_points)`` and return the baseline, same shape.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["METHODS", "arpls", "asls", "block_envelope", "clip_iterate", "clipwhit", "estimate",
           "modpoly", "mor", "whittaker_solve"]

_CHUNK = 2048  # rows per Whittaker block: keeps the per-point work vectors in cache


def _penalty_bands(m: int, lam: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Diagonals of ``lam * D'D`` for the second-difference matrix D (m-2 x m).

    Returns the main diagonal (m,), the first off-diagonal (m-1,) and the constant second
    off-diagonal value.
    """
    d0 = np.full(m, 6.0)
    d0[[0, -1]] = 1.0
    d0[[1, -2]] = 5.0
    d1 = np.full(m - 1, -4.0)
    d1[[0, -1]] = -2.0
    if m < 4:
        raise ValueError("a Whittaker baseline needs at least 4 points")
    return lam * d0, lam * d1, float(lam)


def whittaker_solve(w: np.ndarray, wy: np.ndarray, lam: float) -> np.ndarray:
    """Solve ``(diag(w) + lam D'D) z = wy`` for every row at once (D = second differences).

    Banded LDL^T (bandwidth 2) elimination: a loop over the ``m`` points, each step a few numpy
    operations on the vectors of all ``n`` rows (arrays are transposed so that these vectors are
    contiguous). Cost O(n m), no per-spectrum Python work.

    Parameters
    ----------
    w, wy
        Weights and weighted data, shape ``(n, m)``, float64.
    lam
        Smoothing parameter (same meaning as in pybaselines, per point of the grid).

    Returns
    -------
    numpy.ndarray
        The solution z, shape ``(n, m)``.
    """
    n, m = w.shape
    a0c, a1, a2 = _penalty_bands(m, lam)
    a0 = w.T + a0c[:, None]          # (m, n) main diagonal per row
    b = np.ascontiguousarray(wy.T)   # (m, n)
    dd = np.empty_like(a0)           # pivots D_i
    f = np.empty_like(a0)            # l_{i,i-1}
    e = np.empty_like(a0)            # l_{i,i-2}
    t = np.empty(n)
    dd[0] = a0[0]
    f[0] = 0.0
    e[0] = 0.0
    e[1] = 0.0
    np.divide(a1[0], dd[0], out=f[1])
    dd[1] = a0[1] - f[1] * a1[0]
    for i in range(2, m):
        np.divide(a2, dd[i - 2], out=e[i])
        # t = a1[i-1] - a2 * f[i-1];  f_i = t / D_{i-1};  D_i = a0_i - f_i t - e_i a2
        np.multiply(f[i - 1], -a2, out=t)
        t += a1[i - 1]
        np.divide(t, dd[i - 1], out=f[i])
        np.multiply(f[i], t, out=t)
        np.subtract(a0[i], t, out=dd[i])
        dd[i] -= a2 * e[i]
    # forward substitution L z = b (in place in b)
    b[1] -= f[1] * b[0]
    for i in range(2, m):
        b[i] -= f[i] * b[i - 1]
        b[i] -= e[i] * b[i - 2]
    b /= dd
    # back substitution L' x = z/D
    b[m - 2] -= f[m - 1] * b[m - 1]
    for i in range(m - 3, -1, -1):
        b[i] -= f[i + 1] * b[i + 1]
        b[i] -= e[i + 2] * b[i + 2]
    return b.T


def _rel_change(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per-row ``||new-old|| / ||old||`` (pybaselines' relative_difference, row-wise)."""
    num = np.sqrt(np.einsum("ij,ij->i", new - old, new - old))
    den = np.maximum(np.sqrt(np.einsum("ij,ij->i", old, old)), np.finfo(float).eps)
    return num / den


def _whittaker_loop(y: np.ndarray, lam: float, max_iter: int, tol: float, weigh) -> np.ndarray:
    """Iteratively reweighted Whittaker fit with per-row convergence (pybaselines semantics)."""
    w = np.ones_like(y)
    base = np.empty_like(y)
    active = np.arange(y.shape[0])
    for _ in range(max_iter + 1):
        ya, wa = y[active], w[active]
        z = whittaker_solve(wa, wa * ya, lam)
        base[active] = z
        new_w = weigh(ya, z)
        done = _rel_change(wa, new_w) < tol
        w[active] = new_w
        active = active[~done]
        if active.size == 0:
            break
    return base


def _asls_weights(p: float):
    def weigh(y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.where(y > z, p, 1.0 - p)
    return weigh


def _arpls_weights(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """arPLS logistic weights from the negative residuals of each row (Baek 2015, eq. 5)."""
    r = y - z
    neg = r < 0
    cnt = neg.sum(axis=1)
    rn = np.where(neg, r, 0.0)
    mean = rn.sum(axis=1) / np.maximum(cnt, 1)
    var = (np.where(neg, r - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(cnt - 1, 1)
    std = np.maximum(np.sqrt(var), np.finfo(float).eps)
    arg = (2.0 / std)[:, None] * (r - (2.0 * std - mean)[:, None])
    w = 0.5 * (1.0 - np.tanh(0.5 * arg))  # = expit(-arg), overflow-free
    w[cnt < 2] = 0.0
    return w


def _chunked(fn, y: np.ndarray, *args) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError("expected a 2-D batch (spectra x points)")
    if y.shape[0] <= _CHUNK:
        return fn(y, *args)
    return np.vstack([fn(y[s:s + _CHUNK], *args) for s in range(0, y.shape[0], _CHUNK)])


def asls(y: np.ndarray, lam: float = 1e6, p: float = 0.01, max_iter: int = 50,
         tol: float = 1e-3) -> np.ndarray:
    """Asymmetric least squares baseline of every row (pybaselines ``asls`` semantics).

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)``.
    lam, p, max_iter, tol
        Smoothness, asymmetry, iteration cap and weight-change tolerance.

    Returns
    -------
    numpy.ndarray
        Baselines, shape ``(n, m)``, float64.
    """
    return _chunked(lambda a: _whittaker_loop(a, lam, max_iter, tol, _asls_weights(p)), y)


def arpls(y: np.ndarray, lam: float = 1e5, max_iter: int = 50, tol: float = 1e-3) -> np.ndarray:
    """Asymmetrically reweighted penalised least squares baseline of every row (Baek 2015).

    Same parameters and stopping rule as pybaselines ``arpls``.
    """
    return _chunked(lambda a: _whittaker_loop(a, lam, max_iter, tol, _arpls_weights), y)


@lru_cache(maxsize=16)
def _poly_basis(m: int, order: int) -> np.ndarray:
    """Orthonormal basis (m x order+1) of polynomials on x in [-1, 1] (QR of the Vandermonde)."""
    x = np.linspace(-1.0, 1.0, m)
    q, _ = np.linalg.qr(np.vander(x, order + 1, increasing=True))
    q.setflags(write=False)
    return q


def modpoly(y: np.ndarray, poly_order: int = 5, max_iter: int = 250,
            tol: float = 1e-3) -> np.ndarray:
    """Modified polynomial (ModPoly) baseline of every row, as projection GEMMs.

    Each iteration clips the working spectrum to the current fit (``y = min(y, fit)``) and
    refits by least squares, which for an orthonormal basis Q is ``fit = (y Q) Q'``. Rows stop
    when the relative change of their fit is below ``tol`` (pybaselines ``modpoly`` rule;
    x is the point index scaled to [-1, 1], as pybaselines does without ``x_data``).

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)``; float32 input is computed in float32.
    poly_order, max_iter, tol
        Polynomial order, iteration cap, relative-change tolerance.

    Returns
    -------
    numpy.ndarray
        Baselines, same shape and dtype as ``y`` (float32 or float64).
    """
    y = np.array(y, dtype=np.float32 if np.asarray(y).dtype == np.float32 else np.float64)
    q = _poly_basis(y.shape[1], poly_order).astype(y.dtype)
    base = (y @ q) @ q.T
    active = np.arange(y.shape[0])
    work = y
    for _ in range(max_iter):
        wa = np.minimum(work[active], base[active])
        old = base[active]
        new = (wa @ q) @ q.T
        work[active] = wa
        base[active] = new
        done = _rel_change(old.astype(np.float64, copy=False),
                           new.astype(np.float64, copy=False)) < tol
        active = active[~done]
        if active.size == 0:
            break
    return base


def mor(y: np.ndarray, half_window: int = 25) -> np.ndarray:
    """Morphological baseline of every row (Perez-Pueyo et al., Appl. Spectrosc. 2010, 64, 595).

    ``baseline = min(opening, (dilation(opening) + erosion(opening)) / 2)`` with a flat
    structuring element of ``2 half_window + 1`` points, as pybaselines ``mor`` with a fixed
    half window. Each operation is a running minimum/maximum along the rows
    (``scipy.ndimage.minimum_filter1d``/``maximum_filter1d``, axis=1, 'reflect' edges): O(n m)
    for the whole batch, independent of the window size.

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)`` (float32 stays float32).
    half_window
        Half width of the structuring element in points: wider than the widest Raman band.

    Returns
    -------
    numpy.ndarray
        Baselines, same shape and dtype as ``y``.
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d  # lazy: 0.2 s import

    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float64)
    w = 2 * int(half_window) + 1
    opening = maximum_filter1d(minimum_filter1d(y, w, axis=1), w, axis=1)
    avg = 0.5 * (maximum_filter1d(opening, w, axis=1) + minimum_filter1d(opening, w, axis=1))
    return np.minimum(opening, avg)


@lru_cache(maxsize=16)
def _clip_operators(m: int, block: int, lam: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense smoother S (c x c) on the block grid and linear upsampling U (c x m)."""
    c = -(-m // block)
    D = np.diff(np.eye(c), 2, axis=0)
    S = np.linalg.inv(np.eye(c) + lam * D.T @ D)
    centres = (np.arange(c) * block + (np.minimum(block, m - np.arange(c) * block) - 1) / 2.0)
    U = np.zeros((c, m))
    pos = np.arange(m, dtype=float)
    j = np.clip(np.searchsorted(centres, pos) - 1, 0, max(c - 2, 0))
    if c > 1:
        t = np.clip((pos - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0)
        U[j, np.arange(m)] = 1 - t
        U[j + 1, np.arange(m)] += t
    else:
        U[0] = 1.0
    S.setflags(write=False)
    U.setflags(write=False)
    return S, U, c


def clipwhit(y: np.ndarray, block: int = 4, lam: float = 40.0, n_iter: int = 10,
             envelope: str = "mean") -> np.ndarray:
    """Fast batch baseline: iterative clipping with a Whittaker smoother on a coarse grid.

    1. Coarse spectrum: the mean (default; noise averaged down by sqrt(block)) or the minimum
       of each block of ``block`` points (one pass over the data).
    2. On that coarse grid, ``n_iter`` times: ``z = S e; e = min(e, z)`` where
       ``S = (I + lam D'D)^-1`` (second differences) is precomputed once, so every iteration is
       one small matrix product for the whole batch (ModPoly's clipping rule, Lieber 2003, with
       a Whittaker smoother, Eilers 2003, in place of the polynomial).
    3. Back to the full grid by linear interpolation (one matrix product).

    The smoother's cut-off period is about ``2 pi lam^(1/4)`` coarse points: lam=40 with
    block=4 on a 2 cm-1 grid keeps structure broader than ~130 cm-1 (fluorescence) in the
    baseline. Defaults chosen by the baseline study in ``benchmarks/speed.py`` (accuracy against
    a known background and speed); the block minimum sinks into shot noise under strong
    fluorescence, the block mean does not.

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)``; float32 stays float32.
    block, lam, n_iter
        Block size (points), coarse-grid smoothness, clipping iterations.
    envelope
        ``"mean"`` or ``"min"`` of each block.

    Returns
    -------
    numpy.ndarray
        Baselines, same shape as ``y``.
    """
    y = np.asarray(y)
    dt = y.dtype if y.dtype in (np.float32, np.float64) else np.float64
    S, U, _ = _clip_operators(y.shape[1], int(block), float(lam))
    e = block_envelope(y, int(block), envelope, dt)
    St = S.T.astype(dt)
    return clip_iterate(e, St, int(n_iter)) @ U.astype(dt)


def block_envelope(y: np.ndarray, block: int, envelope: str = "mean",
                   dtype: np.dtype | type | None = None) -> np.ndarray:
    """Coarse envelope of every row: the mean or minimum of each block of ``block`` points.

    The last block is completed by repeating the row's last value. The block mean is linear in
    ``y`` (so it can be applied to an identity matrix to obtain its operator).

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)``.
    block
        Block size (points).
    envelope
        ``"mean"`` or ``"min"``.
    dtype
        Working dtype (default: ``y``'s float dtype, float64 otherwise).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, ceil(m / block))``.
    """
    y = np.asarray(y)
    if dtype is None:
        dtype = y.dtype if y.dtype in (np.float32, np.float64) else np.float64
    m = y.shape[1]
    c = -(-m // block)
    pad = c * block - m
    yp = y if pad == 0 else np.concatenate([y, np.repeat(y[:, -1:], pad, axis=1)], axis=1)
    e = yp[:, 0::block].astype(dtype, copy=True)
    if envelope == "min":
        for k in range(1, block):  # block minimum as strided elementwise minima
            np.minimum(e, yp[:, k::block], out=e)
    else:
        for k in range(1, block):  # block mean (noise averaged down by sqrt(block))
            e += yp[:, k::block]
        e /= block
    return e


def clip_iterate(e: np.ndarray, St: np.ndarray, n_iter: int) -> np.ndarray:
    """Clipping iterations of :func:`clipwhit` on the coarse grid, in place in ``e``.

    ``n_iter`` times ``e = min(e, e St)``; returns the final smooth ``e St`` (coarse baseline).

    Parameters
    ----------
    e
        Coarse envelopes ``(n, c)`` (overwritten with the clipped envelopes).
    St
        Transposed smoother ``(c, c)``, same dtype as ``e``.
    n_iter
        Number of clipping iterations.

    Returns
    -------
    numpy.ndarray
        ``e St`` after the last clipping, shape ``(n, c)``.
    """
    z = np.empty_like(e)
    for _ in range(int(n_iter)):
        np.matmul(e, St, out=z)
        np.minimum(e, z, out=e)
    return np.matmul(e, St, out=z)


METHODS = {"arpls": arpls, "asls": asls, "modpoly": modpoly, "mor": mor, "clipwhit": clipwhit}


def estimate(y: np.ndarray, method: str, **params: float) -> np.ndarray:
    """Baseline of every row by the named method (``arpls``, ``asls``, ``modpoly``, ``none``)."""
    if method == "none":
        return np.zeros_like(np.asarray(y))
    try:
        fn = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown baseline method {method!r}; use one of "
                         f"{[*sorted(METHODS), 'none']}") from None
    return fn(y, **params)
