"""Correlation matching of processed scans against a library matrix, with a shift search.

Hit quality is the Pearson correlation r of processed spectra. Library rows and scan rows are
mean-centred and unit-norm, so r for the whole batch against the whole library is one float32
matrix product ``X @ L'``.

Shift tolerance: the library is held as ``S`` copies shifted by ``-max_shift .. +max_shift``
cm-1 (linear interpolation on the grid, re-centred and re-normalised), stacked into one
``(S*N, M)`` matrix, so the shift search is part of the same product. Each entry's score is its
best over the shifts; the shift of the best entry is refined by a parabola through its scores at
the neighbouring shifts and reported.

Half-step shifts cost no product: a copy shifted by ``k + 1/2`` grid points is, before
re-centring, exactly the mean of the copies shifted by ``k`` and ``k + 1`` (linear
interpolation at t = 1/2, zeros shifted in alike), and a processed scan sums to 0, so its
product with the re-centred, re-normalised half-step copy is ``(n_k p_k + n_k+1 p_k+1) /
(2 n_half)`` (``p``: products with the unit copies, ``n``: the copies' centred norms). Only the
whole-point copies enter the matrix product; the shift search on the 2 cm-1 library grid at
1 cm-1 steps then costs 11 instead of 21 copies of the library per scan. All copies that enter
it are one matrix product (one GEMM into the first columns of the output, ~10 % faster than one
product per copy, the same dot products); the output holds them first and the half-point copies
after them (``Matcher.slot`` maps a copy index to its place).

Partial coverage: when a scan covers only ``[lo, hi)`` of the library axis, r is computed on
that range only: the scan is centred there and zero elsewhere, so the numerator is the same dot
product, and each library row's norm over the range comes from prefix sums (no extra product).

Resolution tolerance (``broaden`` > 0): the library is also held broadened by a Gaussian, on a
coarser shift grid, and an entry's score is its best over all copies, so a scan from a lower-
resolution instrument still matches; mixtures use the plain copies.

First-derivative correlation (``derivative=True``): both sides are differenced along the axis
and re-normalised before the product (suppresses residual baseline, Thermo Galactic HQI
"first-derivative correlation").
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Matcher", "gaussian_rows", "shift_rows", "take_rows", "top_k"]

_MAX_CELLS = 1 << 24  # bound on n * S * N score cells held at once (64 MiB of float32)
_ROW_BLOCK = 128      # scans per block of the passes after the product (~1.3 MB of products)


def shift_rows(L: np.ndarray, shift_points: float) -> np.ndarray:
    """Rows of ``L`` moved by ``shift_points`` grid points (positive: to higher shift).

    Linear interpolation; points shifted in from outside the axis are 0.
    """
    m = L.shape[1]
    src = np.arange(m) - shift_points
    i0 = np.floor(src).astype(int)
    t = (src - i0).astype(L.dtype)
    ok0 = (i0 >= 0) & (i0 < m)
    ok1 = (i0 + 1 >= 0) & (i0 + 1 < m)
    a = np.where(ok0, L[:, np.clip(i0, 0, m - 1)], 0.0)
    b = np.where(ok1, L[:, np.clip(i0 + 1, 0, m - 1)], 0.0)
    return (a * (1 - t) + b * t).astype(L.dtype)


def gaussian_rows(L: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of every row, edges repeating the end values.

    The kernel ``exp(-x^2 / 2 sigma^2)``, ``|x| <= int(4 sigma + 0.5)``, normalised to sum 1: the
    same as ``scipy.ndimage.gaussian_filter1d(L, sigma, axis=1, mode="nearest")``, in numpy (no
    scipy.ndimage import at start-up).
    """
    if sigma <= 0:
        return L.copy()
    r = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    w /= w.sum()
    m = L.shape[1]
    pad = np.concatenate([np.repeat(L[:, :1], r, axis=1), L, np.repeat(L[:, -1:], r, axis=1)],
                         axis=1).astype(np.float64)
    out = pad[:, 0:m] * w[0]
    for k in range(1, w.size):
        out += pad[:, k:k + m] * w[k]
    return out.astype(L.dtype)


def _centre_norm(L: np.ndarray, norms: bool = False) -> Any:
    """Rows centred and scaled to unit norm (float32); with ``norms``, also the centred norms."""
    L = L - L.mean(axis=1, keepdims=True)
    n = np.linalg.norm(L, axis=1, keepdims=True)
    out = (L / np.where(n > 0, n, 1.0)).astype(np.float32)
    return (out, n[:, 0].astype(np.float64)) if norms else out


def _derivative(X: np.ndarray, lo: int = 0, hi: int | None = None, norms: bool = False) -> Any:
    """First differences over ``[lo, hi)``, centred and unit-norm (zeros elsewhere)."""
    hi = X.shape[1] if hi is None else hi
    D = np.zeros_like(X)
    D[:, lo:hi - 1] = np.diff(X[:, lo:hi], axis=1)
    out = np.zeros_like(X)
    out[:, lo:hi - 1], n = _centre_norm(D[:, lo:hi - 1], norms=True)
    return (out, n) if norms else out


def _range_norms(rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Norm of each row centred over ``[lo, hi)``, from its sum and sum of squares there."""
    part = rows[:, lo:hi]
    s1 = part.sum(axis=1, dtype=np.float64)
    s2 = np.einsum("ij,ij->i", part, part, dtype=np.float64)
    return np.sqrt(np.maximum(s2 - s1 * s1 / max(hi - lo, 1), 1e-12))


def take_rows(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[i, idx[i, j]]`` for 2-D ``a`` and ``idx``: ``np.take_along_axis(a, idx, axis=1)``
    by one flat gather (about half the time on the engine's small index arrays)."""
    n, m = a.shape
    return np.take(np.ascontiguousarray(a).reshape(-1), idx + (np.arange(n) * m)[:, None])


def top_k(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest scores per row, sorted descending (argpartition)."""
    k = min(k, S.shape[1])
    part = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < S.shape[1] else \
        np.broadcast_to(np.arange(S.shape[1]), S.shape).copy()
    vals = take_rows(S, part)
    order = np.argsort(-vals, axis=1, kind="stable")
    return take_rows(part, order), take_rows(vals, order)


class Matcher:
    """Library-side precomputation for correlation matching with a shift search.

    Parameters
    ----------
    matrix
        ``(N, M)`` processed library rows (any scaling; re-centred and normalised here).
    step
        Grid step of the library axis in cm-1.
    max_shift, shift_step
        Shift search range and step in cm-1 (``max_shift=0`` disables the search).
    derivative
        Score first-derivative correlation instead of plain correlation.
    """

    def __init__(self, matrix: np.ndarray, step: float, *, max_shift: float = 10.0,
                 shift_step: float = 2.0, derivative: bool = False, broaden: float = 0.0,
                 broad_shift_step: float = 4.0) -> None:
        L = _centre_norm(np.asarray(matrix, dtype=np.float32))
        self.n_entries, self.n_points = L.shape
        self.step = float(step)
        n_half = int(np.floor(max_shift / shift_step + 1e-9)) if max_shift > 0 else 0
        self.shifts = shift_step * np.arange(-n_half, n_half + 1, dtype=np.float64)
        self.zero = n_half
        self.derivative = derivative
        stack = np.empty((self.shifts.size, self.n_entries, self.n_points), dtype=np.float32)
        norms = np.empty((self.shifts.size, self.n_entries), dtype=np.float64)
        for s, sh in enumerate(self.shifts):
            rows = shift_rows(L, sh / self.step) if sh else L
            stack[s], norms[s] = _derivative(rows, norms=True) if derivative else \
                _centre_norm(rows, norms=True)
        self.stack = stack                                      # (S, N, M), unit rows
        # a copy half a grid point between two computed neighbours is combined from their
        # products (module doc); every other copy goes into the matrix product
        pts = self.shifts / self.step
        derived = np.zeros(pts.size, dtype=bool)
        for c in range(1, pts.size - 1):
            derived[c] = (not derived[c - 1] and np.isclose(pts[c] - pts[c - 1], 0.5)
                          and np.isclose(pts[c + 1] - pts[c], 0.5)
                          and np.isclose(pts[c - 1], np.round(pts[c - 1])))
        self._derived = np.flatnonzero(derived)                 # copy indices combined
        self._computed = np.flatnonzero(~derived)               # copy indices in the product
        nh = np.maximum(norms[self._derived], 1e-30)
        self._derived_w = np.stack([0.5 * norms[self._derived - 1] / nh,
                                    0.5 * norms[self._derived + 1] / nh],
                                   axis=0).astype(np.float32)   # (2, D, N)
        copies = [stack[self._computed].reshape(-1, self.n_points)]
        # resolution tolerance: copies broadened by a Gaussian of sigma `broaden` cm-1, on a
        # coarser shift grid (broad bands need fewer shift steps)
        self.broad_shifts = np.zeros(0)
        if broaden > 0:
            b_half = int(np.floor(max_shift / broad_shift_step + 1e-9)) if max_shift > 0 else 0
            self.broad_shifts = broad_shift_step * np.arange(-b_half, b_half + 1, dtype=float)
            wide = gaussian_rows(L, broaden / self.step)
            for sh in self.broad_shifts:
                rows = shift_rows(wide, sh / self.step) if sh else wide
                copies.append(_derivative(rows) if derivative else _centre_norm(rows))
        self.n_copies = self.shifts.size + self.broad_shifts.size
        # the rows that enter the product: computed shifted copies, then the broadened ones
        self.flat = np.ascontiguousarray(np.concatenate(copies, axis=0))   # (C'*N, M)
        # copies in the order `raw` holds them: the product's rows in one block (one GEMM into
        # a 2-D view of the output), then the half-point copies; `slot[c]` is where copy c is
        n_prod = self._computed.size + self.broad_shifts.size
        d = self._derived
        slot = np.empty(self.n_copies, dtype=np.intp)
        slot[self._computed] = np.arange(self._computed.size)
        slot[self.shifts.size:] = self._computed.size + np.arange(self.broad_shifts.size)
        slot[d] = n_prod + np.arange(d.size)
        self.slot = slot
        self._n_product = n_prod
        # the derived copies are every other shifted copy (the shifts are evenly spaced), so
        # they and their two neighbours are runs of consecutive slots: slices
        self._derived_slices = None
        if d.size:
            left = int(slot[d[0] - 1])
            assert np.array_equal(slot[d - 1], left + np.arange(d.size))
            assert np.array_equal(slot[d + 1], left + 1 + np.arange(d.size))
            self._derived_slices = (slice(n_prod, n_prod + d.size),
                                    slice(left, left + d.size), slice(left + 1, left + 1 + d.size))
        self._den_cache: dict[tuple[int, int], np.ndarray] = {}

    def _denominator(self, lo: int, hi: int) -> np.ndarray | None:
        """Norm of each centred library row over ``[lo, hi)`` (None for the full axis), per
        copy in the order of :meth:`raw` (``den[slot[c]]`` is copy c's).

        One pass over the stack per covered range, cached (a batch has one range; a prefix-sum
        table for every range would cost more at start-up than it saves).
        """
        if self.derivative:
            hi = hi - 1
        if lo == 0 and hi >= self.n_points:
            return None
        key = (lo, hi)
        den = self._den_cache.get(key)
        if den is None:
            # every shifted copy is in `stack`; the broadened ones follow the computed shifted
            # copies in `flat`
            broad = self.flat[self._computed.size * self.n_entries:]
            norms = np.concatenate([_range_norms(self.stack.reshape(-1, self.n_points), lo, hi),
                                    _range_norms(broad, lo, hi)])
            den = np.empty((self.n_copies, self.n_entries), dtype=np.float32)
            den[self.slot] = norms.astype(np.float32).reshape(self.n_copies, self.n_entries)
            if len(self._den_cache) >= 8:
                self._den_cache.clear()
            self._den_cache[key] = den
        return den

    def prepare(self, X: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Scan rows in the matcher's space (derivative when enabled)."""
        return _derivative(X, lo, hi) if self.derivative else X

    def chunk_rows(self) -> int:
        """Scans per product block so that ``n * S * N`` stays bounded."""
        return max(16, _MAX_CELLS // max(1, self.n_copies * self.n_entries))

    def raw(self, X: np.ndarray, lo: int = 0, hi: int | None = None, *,
            best: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Dot products of the scans with every library copy, ``(n, C, N)`` float32.

        Copy c (``0 .. S-1``: the shifted entries, ``self.shifts``; then the broadened ones,
        ``self.broad_shifts``) is at ``[:, slot[c]]``: the copies in the matrix product come
        first, in one block, then the half-point copies combined from their neighbours. Returns
        the products and the per-(copy, entry) norm over ``[lo, hi)`` in the same order (None
        when the scans cover the whole axis); ``r = products / norm``. ``best``: an ``(n, N)``
        float32 array that receives each entry's best ``r`` over every copy.
        """
        hi = self.n_points if hi is None else hi
        Xp = self.prepare(X, lo, hi)
        n, N = Xp.shape[0], self.n_entries
        out = np.empty((n, self.n_copies * N), dtype=np.float32)
        # one product for every computed copy, written into a 2-D view of the output (BLAS
        # takes the row stride): each element is the same dot product as in a product per copy
        np.matmul(Xp, self.flat.T, out=out[:, :self._n_product * N])
        prod = out.reshape(n, self.n_copies, N)
        den = self._denominator(lo, hi)
        # the rest block by block of scans, while a block's products are in cache
        for a in range(0, n, _ROW_BLOCK):
            p = prod[a:a + _ROW_BLOCK]
            if self._derived_slices is not None:   # half-point copies from their neighbours
                mid, left, right = self._derived_slices
                np.multiply(p[:, left], self._derived_w[0], out=p[:, mid])
                p[:, mid] += p[:, right] * self._derived_w[1]
            if best is not None:
                np.max(p if den is None else p / den, axis=1, out=best[a:a + _ROW_BLOCK])
        return prod, den

    def scores(self, X: np.ndarray, lo: int = 0, hi: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Correlation of every scan with every entry, best over the shifts.

        Parameters
        ----------
        X
            ``(n, M)`` processed scans (``Processed.X``), covered range ``[lo, hi)``.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``score`` (n, N) float32 (best over shifts and broadened copies) and the index of
            the best plain shift per entry (n, N) int16.
        """
        n = X.shape[0]
        best = np.empty((n, self.n_entries), dtype=np.float32)
        arg = np.empty((n, self.n_entries), dtype=np.int16)
        chunk = self.chunk_rows()
        plain = self.slot[: self.shifts.size]
        for a in range(0, n, chunk):
            prod, den = self.raw(X[a:a + chunk], lo, hi, best=best[a:a + chunk])
            r = prod[:, plain] if den is None else prod[:, plain] / den[plain]
            arg[a:a + chunk] = r.argmax(axis=1)
        return best, arg

    def gram(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Gram matrix (N, N) of the unshifted entries, centred on ``[lo, hi)`` (cached)."""
        hi = self.n_points if hi is None else hi
        key = (lo, hi)
        cache = self.__dict__.setdefault("_gram_cache", {})
        if key not in cache:
            a = self.stack[self.zero][:, lo:hi].astype(np.float64)
            a = a - a.mean(axis=1, keepdims=True)
            cache.clear()
            cache[key] = a @ a.T
        return cache[key]
