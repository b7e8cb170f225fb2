"""Non-negative least squares on small per-scan designs, for the whole batch at once.

For a scan x and a design A of k reference spectra (k <= 6), NNLS ``min ||x - A c||, c >= 0``
is solved for every scan together from the Gram matrices ``G = A'A`` (n, k, k) and ``b = A'x``
(n, k): the NNLS optimum is the restricted least-squares solution, over the subsets S of
columns whose restricted solution is non-negative, with the smallest residual (the optimum's own
active set is such a subset, and any such subset's solution is feasible). All 2^k - 1 subsets
are solved by batched ``numpy.linalg.solve``; no Python loop over scans.

The significance of component j is the residual reduction it brings, ``dRSS_j = RSS(best fit
without j) - RSS(best fit)``, which the caller compares with a noise / model-mismatch threshold.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import numpy as np

__all__ = ["Fit", "design_gram", "nnls_gram"]


@lru_cache(maxsize=8)
def _subsets(k: int) -> tuple[np.ndarray, ...]:
    subs = [np.array(c) for r in range(1, k + 1) for c in combinations(range(k), r)]
    return tuple(subs)


class Fit:
    """NNLS result for a batch: ``coef`` (n, k), ``rss`` (n,), ``drss`` (n, k)."""

    __slots__ = ("coef", "drss", "rss")

    def __init__(self, coef: np.ndarray, rss: np.ndarray, drss: np.ndarray) -> None:
        self.coef = coef
        self.rss = rss
        self.drss = drss

    def fractions(self) -> np.ndarray:
        """Spectral fractions ``c_j / sum(c)`` per scan (rows of zeros stay zero)."""
        s = self.coef.sum(axis=1, keepdims=True)
        return np.where(s > 0, self.coef / np.where(s > 0, s, 1.0), 0.0)


def nnls_gram(G: np.ndarray, b: np.ndarray, xx: np.ndarray | float = 1.0,
              valid: np.ndarray | None = None) -> Fit:
    """Batched NNLS from Gram matrices by exhaustive active-set enumeration.

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
    best_rss = xx.copy()                        # empty model
    best_coef = np.zeros((n, k))
    # best RSS among feasible subsets that exclude j (for dRSS_j)
    rss_without = np.repeat(xx[:, None], k, axis=1)
    ridge = 1e-9 * np.trace(G, axis1=1, axis2=2)[:, None, None] / k
    for s in _subsets(k):
        Gs = G[:, s[:, None], s[None, :]] + ridge * np.eye(s.size)
        bs = b[:, s]
        c = np.linalg.solve(Gs, bs[..., None])[..., 0]
        ok = np.all(c >= 0, axis=1)
        if valid is not None:
            ok &= np.all(valid[:, s], axis=1)
        rss = xx - np.einsum("ij,ij->i", bs, c)   # at the LS optimum c'Gc = b'c
        rss = np.where(ok, rss, np.inf)
        better = rss < best_rss
        best_rss = np.where(better, rss, best_rss)
        if better.any():
            full = np.zeros((n, k))
            full[:, s] = c
            best_coef[better] = full[better]
        excl = np.ones(k, dtype=bool)
        excl[s] = False
        if excl.any():
            rss_without[:, excl] = np.minimum(rss_without[:, excl], rss[:, None])
    best_rss = np.maximum(best_rss, 0.0)
    drss = np.maximum(rss_without - best_rss[:, None], 0.0)
    return Fit(best_coef, best_rss, drss)


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
