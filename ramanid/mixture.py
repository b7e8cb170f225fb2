"""Non-negative least squares on small per-scan designs, for the whole batch at once.

For a scan x and a design A of k reference spectra (k <= 6), NNLS ``min ||x - A c||, c >= 0``
is solved for every scan together from the Gram matrices ``G = A'A`` (n, k, k) and ``b = A'x``
(n, k): the NNLS optimum is the restricted least-squares solution, over the subsets S of
columns whose restricted solution is non-negative, with the smallest residual (the optimum's own
active set is such a subset, and any such subset's solution is feasible). All 2^k - 1 subsets
are solved by batched ``numpy.linalg.solve`` (one call per subset size); no Python loop over
scans.

The significance of component j is the residual reduction it brings, ``dRSS_j = RSS(best fit
without j) - RSS(best fit)``, which the caller compares with a noise / model-mismatch threshold.

That backward test fails when two candidates are near duplicates (fentanyl and acetylfentanyl
correlate at 0.99): each can stand in for the other, so neither one's removal costs much and a
real component is judged insignificant. :func:`forward_select` therefore builds the model forward
(stepwise regression): starting from the empty model it adds, one at a time, the candidate whose
NNLS residual is lowest, and keeps it only if its residual reduction on entry exceeds the
caller's threshold; a near duplicate of a component already in the model then brings almost
nothing and stays out. Every step reads the per-subset NNLS optima computed once by
:func:`nnls_gram` (no refit).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import numpy as np

__all__ = ["Fit", "Selection", "design_gram", "forward_select", "greedy_select", "nnls_gram"]


@lru_cache(maxsize=8)
def _subset_levels(k: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Column subsets by size: per size r, ``(members (C, r), bit masks (C,))``, in
    enumeration order (itertools.combinations)."""
    out = []
    for r in range(1, k + 1):
        members = np.array(list(combinations(range(k), r)), dtype=np.intp).reshape(-1, r)
        out.append((members, np.sum(1 << members, axis=1).astype(np.intp)))
    return tuple(out)


def _fractions(coef: np.ndarray) -> np.ndarray:
    """Spectral fractions ``c_j / sum(c)`` of coefficient rows (rows of zeros stay zero)."""
    s = coef.sum(axis=1, keepdims=True)
    return np.where(s > 0, coef / np.where(s > 0, s, 1.0), 0.0)


class Fit:
    """NNLS result for a batch: ``coef`` (n, k), ``rss`` (n,), ``drss`` (n, k).

    ``sub_rss`` (n, 2^k) and ``sub_coef`` (n, 2^k, k) hold the NNLS optimum restricted to every
    subset of the columns (index = bit mask of the subset; mask 0 is the empty model).
    """

    __slots__ = ("coef", "drss", "rss", "sub_coef", "sub_rss")

    def __init__(self, coef: np.ndarray, rss: np.ndarray, drss: np.ndarray,
                 sub_rss: np.ndarray | None = None, sub_coef: np.ndarray | None = None) -> None:
        self.coef = coef
        self.rss = rss
        self.drss = drss
        self.sub_rss = sub_rss
        self.sub_coef = sub_coef

    def fractions(self) -> np.ndarray:
        """Spectral fractions ``c_j / sum(c)`` per scan (rows of zeros stay zero)."""
        return _fractions(self.coef)


def _solve_small(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve ``A c = y`` for stacks of r x r systems: closed form for r <= 2 (numpy's
    per-matrix LAPACK call dominates at that size), ``numpy.linalg.solve`` above."""
    r = A.shape[-1]
    if r == 1:
        return y / A[..., 0]
    if r == 2:
        a, bb, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
        det = a * d - bb * A[..., 1, 0]
        return np.stack([d * y[..., 0] - bb * y[..., 1], a * y[..., 1] - A[..., 1, 0] * y[..., 0]],
                        axis=-1) / det[..., None]
    return np.linalg.solve(A, y[..., None])[..., 0]


def nnls_gram(G: np.ndarray, b: np.ndarray, xx: np.ndarray | float = 1.0,
              valid: np.ndarray | None = None) -> Fit:
    """Batched NNLS from Gram matrices by exhaustive active-set enumeration.

    Every subset of the k columns is solved by least squares (one batched solve per subset
    size, for all scans and all subsets of that size together); a subset is feasible when its
    solution is non-negative (and uses only ``valid`` columns). The NNLS optimum is the feasible
    subset with the smallest residual (ties: the empty model, then the first subset in
    enumeration order).

    Parameters
    ----------
    G
        ``(n, k, k)`` Gram matrices of the designs.
    b
        ``(n, k)`` products of design columns with the scans.
    xx
        ``||x||^2`` per scan (1 for unit-norm processed scans).
    valid
        Optional ``(n, k)`` bool: columns that may be used (others are forced to 0).

    Returns
    -------
    Fit
        Coefficients, residual sum of squares, and per-component residual reduction.
    """
    n, k, _ = G.shape
    G = G.astype(np.float64)
    b = b.astype(np.float64)
    xx = np.broadcast_to(np.asarray(xx, dtype=np.float64), (n,))
    ridge = 1e-9 * np.trace(G, axis1=1, axis2=2)[:, None, None, None] / k
    n_masks = 1 << k
    sub_rss = np.empty((n, n_masks))          # least-squares residual of each feasible subset
    sub_coef = np.zeros((n, n_masks, k))
    sub_rss[:, 0] = xx
    order = [np.zeros(1, dtype=np.intp)]      # masks in enumeration order, empty model first
    for members, masks in _subset_levels(k):
        r = members.shape[1]
        Gs = G[:, members[:, :, None], members[:, None, :]] + ridge * np.eye(r)   # (n,C,r,r)
        bs = b[:, members]                                                        # (n,C,r)
        c = _solve_small(Gs, bs)
        ok = np.all(c >= 0, axis=2)
        if valid is not None:
            ok &= np.all(valid[:, members], axis=2)
        rss = xx[:, None] - np.einsum("ncr,ncr->nc", bs, c)   # at the LS optimum c'Gc = b'c
        sub_rss[:, masks] = np.where(ok, rss, np.inf)
        sub_coef[:, masks[:, None], members] = np.where(ok[..., None], c, 0.0)
        order.append(masks)
    enum = np.concatenate(order)
    pick = enum[np.argmin(sub_rss[:, enum], axis=1)]
    rows = np.arange(n)
    best_rss = np.maximum(sub_rss[rows, pick], 0.0)
    best_coef = sub_coef[rows, pick].copy()
    # best residual among feasible subsets that exclude j (for dRSS_j), the empty model included
    all_masks = np.arange(n_masks)
    rss_without = np.stack([sub_rss[:, all_masks[(all_masks >> j) & 1 == 0]].min(axis=1)
                            for j in range(k)], axis=1)
    drss = np.maximum(rss_without - best_rss[:, None], 0.0)
    # NNLS optimum within each subset: the best feasible least-squares fit over its sub-subsets,
    # level by level (every subset one column smaller is final before its supersets)
    for members, masks in _subset_levels(k):
        subs = masks[:, None] & ~(1 << members)                              # (C, r)
        cand = np.concatenate([masks[:, None], subs], axis=1)                # own first
        vals = sub_rss[:, cand]                                              # (n, C, r+1)
        j = np.argmin(vals, axis=2)                                          # first minimum
        src = cand[np.arange(cand.shape[0])[None, :], j]                     # (n, C)
        sub_rss[:, masks] = np.take_along_axis(vals, j[..., None], axis=2)[..., 0]
        sub_coef[:, masks] = sub_coef[rows[:, None], src]
    return Fit(best_coef, best_rss, drss, np.maximum(sub_rss, 0.0), sub_coef)


class Selection:
    """Forward-selected model per scan: ``mask`` (n,) bit mask of the kept columns, ``coef``
    (n, k) NNLS coefficients on them, ``rss`` (n,), ``gain`` (n, k) residual reduction of each
    kept column when it entered (0 for columns left out)."""

    __slots__ = ("coef", "gain", "mask", "rss")

    def __init__(self, mask: np.ndarray, coef: np.ndarray, rss: np.ndarray,
                 gain: np.ndarray) -> None:
        self.mask = mask
        self.coef = coef
        self.rss = rss
        self.gain = gain

    def fractions(self) -> np.ndarray:
        """Spectral fractions ``c_j / sum(c)`` per scan (rows of zeros stay zero)."""
        return _fractions(self.coef)


def forward_select(fit: Fit, min_gain: np.ndarray | float, *, max_steps: int | None = None,
                   accept: np.ndarray | None = None) -> Selection:
    """Stepwise forward selection on the per-subset NNLS optima of ``fit``.

    Parameters
    ----------
    fit
        Output of :func:`nnls_gram` (with ``sub_rss``/``sub_coef``).
    min_gain
        Residual reduction a column must bring on entry to be kept, per scan ``(n,)`` or scalar.
        Selection stops at the first step whose best column brings less.
    max_steps
        Columns at most (default: all).
    accept
        Optional ``(n, k)`` bool: columns allowed to enter.

    Returns
    -------
    Selection
    """
    assert fit.sub_rss is not None and fit.sub_coef is not None
    n, n_masks = fit.sub_rss.shape
    k = n_masks.bit_length() - 1
    rows = np.arange(n)
    limit = np.broadcast_to(np.asarray(min_gain, dtype=np.float64), (n,))
    mask = np.zeros(n, dtype=np.int64)
    rss = fit.sub_rss[:, 0].copy()
    gain = np.zeros((n, k))
    active = np.ones(n, dtype=bool)
    for _ in range(k if max_steps is None else min(k, max_steps)):
        trial = mask[:, None] | (1 << np.arange(k))[None, :]                 # (n, k)
        t_rss = fit.sub_rss[rows[:, None], trial]
        t_rss = np.where((mask[:, None] >> np.arange(k)) & 1, np.inf, t_rss)  # already in
        if accept is not None:
            t_rss = np.where(accept, t_rss, np.inf)
        j = np.argmin(t_rss, axis=1)
        g = rss - t_rss[rows, j]
        ok = active & np.isfinite(g) & (g > limit)
        gain[rows[ok], j[ok]] = g[ok]
        mask = np.where(ok, mask | (1 << j), mask)
        rss = np.where(ok, t_rss[rows, j], rss)
        active = ok
        if not active.any():
            break
    coef = fit.sub_coef[rows, mask]
    return Selection(mask, coef, np.maximum(rss, 0.0), gain)


def design_gram(rows: np.ndarray, x: np.ndarray, lo: int, hi: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices and products for per-scan designs restricted to the covered range.

    Parameters
    ----------
    rows
        ``(n, k, M)`` reference spectra (processed, possibly shifted) of each scan's design.
    x
        ``(n, M)`` processed scans (zero outside ``[lo, hi)``, centred there).
    lo, hi
        Covered index range; references are re-centred on it so the model matches ``x``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``G`` (n, k, k) and ``b`` (n, k), float64.
    """
    a = rows[:, :, lo:hi].astype(np.float32)
    a = a - a.mean(axis=2, keepdims=True)
    G = np.matmul(a, a.transpose(0, 2, 1)).astype(np.float64)
    b = np.matmul(a, x[:, lo:hi, None].astype(np.float32))[..., 0].astype(np.float64)
    return G, b


def greedy_select(gram: np.ndarray, b: np.ndarray, k: int, min_gain: np.ndarray | float, *,
                  pool: np.ndarray | None = None, group: np.ndarray | None = None
                  ) -> np.ndarray:
    """Greedy forward selection of up to ``k`` columns out of a whole library, per scan.

    Orthogonal matching pursuit on a Gram matrix shared by the batch: at every step, for every
    scan at once, the column whose entry lowers the least-squares residual most is added,
    ``gain_j = max(r.a_j, 0)^2 / ||a_j_perp||^2`` (r: residual of the current model, a_j_perp:
    the part of column j outside the model's span; only columns that enter with a positive
    coefficient count). The first column always enters; later ones only while their gain
    exceeds ``min_gain`` (the scan's noise / model-mismatch limit), so selection stops when the
    reduction is no longer significant. Columns within 0.1 % of the model's span (near
    duplicates) and columns of a group already in the model are skipped.

    Parameters
    ----------
    gram
        ``(N, N)`` Gram matrix of the columns (shared by all scans).
    b
        ``(n, N)`` products of the columns with the scans.
    k
        Columns at most.
    min_gain
        Residual reduction a column after the first must bring, per scan ``(n,)`` or scalar.
    pool
        Optional ``(N,)`` bool: columns that may enter.
    group
        Optional ``(N,)`` int: group label (e.g. substance); one column per group.

    Returns
    -------
    numpy.ndarray
        ``(n, k)`` int64 column ids in order of entry, -1 where no column entered.
    """
    n, N = b.shape
    G = np.asarray(gram, dtype=np.float64)
    d = np.maximum(np.diag(G), 1e-30)
    rows = np.arange(n)
    limit = np.broadcast_to(np.asarray(min_gain, dtype=np.float64), (n,))
    allowed = np.ones((n, N), dtype=bool)
    if pool is not None:
        allowed &= np.asarray(pool, dtype=bool)[None, :]
    grp = None if group is None else np.asarray(group)
    ids = np.full((n, k), -1, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    # Gram-space Gram-Schmidt: after each entry, corr = residual . a_j and perp = ||a_j_perp||^2
    # are updated with the new orthonormal direction's products w (n, N): no solves
    corr = np.array(b, dtype=np.float64)
    perp = np.repeat(d[None, :], n, axis=0)
    W: list[np.ndarray] = []
    for s in range(min(k, N)):
        usable = allowed & (perp > 1e-3 * d[None, :]) & (corr > 0)
        gain = np.where(usable, corr**2 / np.maximum(perp, 1e-30), -np.inf)
        j = np.argmax(gain, axis=1)
        g = gain[rows, j]
        take = active & np.isfinite(g) & ((g > limit) if s else True)
        ids[take, s] = j[take]
        allowed[take, j[take]] = False
        if grp is not None:
            allowed[take] &= grp[None, :] != grp[j[take]][:, None]
        active = take
        if s == min(k, N) - 1 or not active.any():
            break
        norm = np.sqrt(np.maximum(perp[rows, j], 1e-30))
        w = G[j]
        for wt in W:
            w = w - wt[rows, j][:, None] * wt
        w /= norm[:, None]
        corr = corr - (corr[rows, j] / norm)[:, None] * w
        perp = perp - w**2
        W.append(w)
    return ids
