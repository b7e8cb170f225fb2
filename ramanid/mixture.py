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

from ramanid.match import take_rows

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
    subset of the columns (index = bit mask of the subset; mask 0 is the empty model); None
    when :func:`nnls_gram` was asked for no tables. ``sub_coef`` is gathered on first use
    (:meth:`subset_coef` reads single subsets without it).
    """

    __slots__ = ("_ls_coef", "_origin", "_sub_coef", "coef", "drss", "rss", "sub_rss")

    def __init__(self, coef: np.ndarray, rss: np.ndarray, drss: np.ndarray,
                 sub_rss: np.ndarray | None = None, sub_coef: np.ndarray | None = None, *,
                 ls_coef: np.ndarray | None = None, origin: np.ndarray | None = None) -> None:
        self.coef = coef
        self.rss = rss
        self.drss = drss
        self.sub_rss = sub_rss
        self._sub_coef = sub_coef
        # sub_coef[i, m] = ls_coef[i, origin[i, m]]: the subset whose least-squares solution
        # is the NNLS optimum within subset m
        self._ls_coef = ls_coef
        self._origin = origin

    @property
    def sub_coef(self) -> np.ndarray | None:
        """``(n, 2^k, k)`` NNLS coefficients within every subset (None without tables)."""
        if self._sub_coef is None and self._origin is not None:
            assert self._ls_coef is not None
            rows = np.arange(self._origin.shape[0])[:, None]
            self._sub_coef = self._ls_coef[rows, self._origin]
        return self._sub_coef

    def subset_coef(self, mask: np.ndarray) -> np.ndarray:
        """``(n, k)`` NNLS coefficients within subset ``mask[i]`` of each scan i."""
        rows = np.arange(mask.shape[0])
        if self._sub_coef is None and self._origin is not None:
            assert self._ls_coef is not None
            return self._ls_coef[rows, self._origin[rows, mask]]
        assert self.sub_coef is not None
        return self.sub_coef[rows, mask]

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
              valid: np.ndarray | None = None, *, tables: bool = True) -> Fit:
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
    tables
        Also the NNLS optimum within every subset (``Fit.sub_rss``/``sub_coef``, for
        :func:`forward_select` and tests that remove columns); False leaves them None.

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
    # columns a scan may not use, as a bit mask: a subset is usable when it has none of them
    banned = None if valid is None else \
        np.sum(np.where(valid, 0, 1 << np.arange(k)), axis=1)[:, None]
    order = [np.zeros(1, dtype=np.intp)]      # masks in enumeration order, empty model first
    # the ridge added once to the whole Gram matrix: each subset's block then holds exactly
    # the elements of its own block plus ridge * eye(r)
    G2 = (G + ridge[..., 0] * np.eye(k)).reshape(n, k * k)
    coef2 = sub_coef.reshape(n, n_masks * k)
    for members, masks in _subset_levels(k):
        r = members.shape[1]
        # flat gathers/scatters along one axis (the same elements as G[:, m[:, :, None],
        # m[:, None, :]] and sub_coef[:, masks[:, None], m]; one index array is faster)
        Gs = np.take(G2, members[:, :, None] * k + members[:, None, :], axis=1)  # (n,C,r,r)
        bs = b[:, members]      # (n,C,r); its layout sets einsum's summation order below
        c = _solve_small(Gs, bs)
        ok = c[..., 0] >= 0                   # = np.all(c >= 0, axis=2), column by column
        for i in range(1, r):
            ok &= c[..., i] >= 0
        if banned is not None:
            ok &= (banned & masks[None, :]) == 0
        rss = xx[:, None] - np.einsum("ncr,ncr->nc", bs, c)   # at the LS optimum c'Gc = b'c
        sub_rss[:, masks] = np.where(ok, rss, np.inf)
        coef2[:, masks[:, None] * k + members] = np.where(ok[..., None], c, 0.0)
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
    if not tables:
        return Fit(best_coef, best_rss, drss)
    # NNLS optimum within each subset: the best feasible least-squares fit over its sub-subsets,
    # level by level (every subset one column smaller is final before its supersets); the
    # coefficients follow from the subset each optimum comes from (`origin`), gathered on use
    origin = np.broadcast_to(all_masks, (n, n_masks)).copy()
    for members, masks in _subset_levels(k):
        subs = masks[:, None] & ~(1 << members)                              # (C, r)
        cand = np.concatenate([masks[:, None], subs], axis=1)                # own first
        vals = sub_rss[:, cand]                                              # (n, C, r+1)
        j = np.argmin(vals, axis=2)                                          # first minimum
        src = cand[np.arange(cand.shape[0])[None, :], j]                     # (n, C)
        sub_rss[:, masks] = take_rows(vals.reshape(j.size, -1), j.reshape(-1, 1)).reshape(j.shape)
        origin[:, masks] = take_rows(origin, src)
    return Fit(best_coef, best_rss, drss, np.maximum(sub_rss, 0.0), ls_coef=sub_coef,
               origin=origin)


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
    assert fit.sub_rss is not None
    n, n_masks = fit.sub_rss.shape
    k = n_masks.bit_length() - 1
    rows = np.arange(n)
    limit = np.broadcast_to(np.asarray(min_gain, dtype=np.float64), (n,))
    mask = np.zeros(n, dtype=np.int64)
    rss = fit.sub_rss[:, 0].copy()
    gain = np.zeros((n, k))
    active = np.ones(n, dtype=bool)
    bits = 1 << np.arange(k)
    for _ in range(k if max_steps is None else min(k, max_steps)):
        trial = mask[:, None] | bits[None, :]                                # (n, k)
        t_rss = take_rows(fit.sub_rss, trial)
        t_rss[(mask[:, None] & bits[None, :]) != 0] = np.inf                 # already in
        if accept is not None:
            t_rss = np.where(accept, t_rss, np.inf)
        j = np.argmin(t_rss, axis=1)
        best = t_rss[rows, j]
        g = rss - best
        ok = active & np.isfinite(g) & (g > limit)
        gain[rows[ok], j[ok]] = g[ok]
        mask = np.where(ok, mask | (1 << j), mask)
        rss = np.where(ok, best, rss)
        active = ok
        if not active.any():
            break
    coef = fit.subset_coef(mask)
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


def _best_gain(corr: np.ndarray, perp: np.ndarray, thr: np.ndarray, buf: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first column of the largest gain ``corr^2 / max(perp, 1e-30)`` among the
    usable columns (``perp > thr`` and ``corr > 0``) and that gain (-inf, column 0, when none
    is usable): ``argmax(where(usable, gain, -inf))``.

    A masked select is slow on a mask without a pattern. ``max(corr, 0)^2 / max(perp, 1e-30)
    * (perp > thr)`` is 0 where a column is not usable and the usable columns' gain elsewhere,
    so its first maximum is the same wherever that maximum is > 0 (a usable column's; no NaN
    is in the row, since argmax returns a NaN first); the rows whose maximum is 0 or NaN take
    the masked select.
    """
    rows = np.arange(corr.shape[0])
    gain = np.maximum(corr, 0.0, out=buf)
    np.square(gain, out=gain)
    gain /= np.maximum(perp, 1e-30)
    gain *= perp > thr
    j = np.argmax(gain, axis=1)
    g = gain[rows, j]
    redo = np.flatnonzero(~(g > 0))
    if redo.size:
        c, p = corr[redo], perp[redo]
        full = np.where((p > thr) & (c > 0), c**2 / np.maximum(p, 1e-30), -np.inf)
        j[redo] = np.argmax(full, axis=1)
        g[redo] = full[np.arange(redo.size), j[redo]]
    return j, g


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
    thr = 1e-3 * d
    rows = np.arange(n)
    limit = np.broadcast_to(np.asarray(min_gain, dtype=np.float64), (n,))
    # a column that may not enter (outside the pool, already in, or of a group already in)
    # has perp = -inf, so it fails the usability test below: no separate (n, N) mask
    if group is None:
        excluded = np.eye(N, dtype=bool)
    else:
        grp = np.asarray(group)
        excluded = grp[:, None] == grp[None, :]
    ids = np.full((n, k), -1, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    steps = min(k, N)
    # Gram-space Gram-Schmidt: after each entry, corr = residual . a_j and perp = ||a_j_perp||^2
    # are updated with the new orthonormal direction's products w (n, N): no solves. Every
    # update is in place in preallocated buffers (the same operations as out-of-place ones)
    corr = np.array(b, dtype=np.float64)
    perp = np.repeat(d[None, :], n, axis=0)
    if pool is not None:
        perp[:, ~np.asarray(pool, dtype=bool)] = -np.inf
    tmp = np.empty((n, N))
    W: list[np.ndarray] = []
    for s in range(steps):
        j, g = _best_gain(corr, perp, thr, tmp)
        take = active & np.isfinite(g) & ((g > limit) if s else True)
        ids[take, s] = j[take]
        active = take
        if s == steps - 1 or not active.any():
            break
        norm = np.sqrt(np.maximum(perp[rows, j], 1e-30))
        w = G[j]
        for wt in W:
            w -= np.multiply(wt[rows, j][:, None], wt, out=tmp)
        w /= norm[:, None]
        corr -= np.multiply((corr[rows, j] / norm)[:, None], w, out=tmp)
        perp -= np.square(w, out=tmp)
        np.copyto(perp, -np.inf, where=excluded[j] & take[:, None])
        W.append(w)
    return ids
