"""Fast paths of the decision engine against the plain computations they replace.

Each fast path (one matrix product for every library copy, greedy selection with a masked
argmax by multiplication, NNLS subset tables by origin, candidate lists read from one ranking,
the best-shift memo) must give exactly the plain computation's results, ties, NaN rows and
zero rows included.
"""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from ramanid.identify import Identifier
from ramanid.library import load_library
from ramanid.match import Matcher, take_rows, top_k
from ramanid.mixture import forward_select, greedy_select, nnls_gram

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def shipped():
    return Identifier(load_library(), workers=1)


def _scans(ident: Identifier, n: int = 64, seed: int = 0) -> np.ndarray:
    """Processed-like rows: mixtures of shifted library rows with noise, centred, unit norm."""
    rng = np.random.default_rng(seed)
    st = ident.matcher.stack
    S, N, M = st.shape
    X = np.zeros((n, M))
    for _ in range(3):
        X += rng.uniform(0, 1, (n, 1)) * st[rng.integers(0, S, n), rng.integers(0, N, n)]
    X += rng.normal(0, 0.02, X.shape)
    X -= X.mean(axis=1, keepdims=True)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _part(X: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Scans restricted to ``[lo, hi)`` as preprocessing leaves them (centred there, 0 outside)."""
    out = np.zeros_like(X)
    x = X[:, lo:hi] - X[:, lo:hi].mean(axis=1, keepdims=True)
    out[:, lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


# -- Matcher.raw: one product for all copies ------------------------------------------------
@pytest.mark.parametrize("derivative", [False, True])
def test_raw_one_product_equals_a_product_per_copy(shipped, derivative):
    L = shipped.library.matrix
    m = Matcher(L, shipped.step, max_shift=10.0, shift_step=1.0, derivative=derivative,
                broaden=5.0)
    N = m.n_entries
    X0 = _scans(shipped, 40)
    for lo, hi in ((0, m.n_points), (100, 550)):
        X = X0 if hi == m.n_points else _part(X0, lo, hi)
        prod, den = m.raw(X, lo, hi)
        Xp = m.prepare(X, lo, hi)
        # the plain layout: one product per computed copy, in copy order (bit-identical with
        # this machine's OpenBLAS, whose dot products do not depend on the product's width;
        # another BLAS may block them differently, hence the last-bit tolerance)
        computed = np.concatenate([m._computed, m.shifts.size + np.arange(m.broad_shifts.size)])
        for i, c in enumerate(computed):
            ref = np.matmul(Xp, m.flat[i * N:(i + 1) * N].T)
            assert np.allclose(prod[:, m.slot[c]], ref, rtol=0, atol=1e-6)
        for i, c in enumerate(m._derived):
            ref = prod[:, m.slot[c - 1]] * m._derived_w[0, i]
            ref += prod[:, m.slot[c + 1]] * m._derived_w[1, i]
            assert np.array_equal(prod[:, m.slot[c]], ref)
        assert sorted(m.slot.tolist()) == list(range(m.n_copies))
        if den is not None:
            d = m.stack[:, :, lo:hi - (1 if derivative else 0)].astype(np.float64)
            d = np.linalg.norm(d - d.mean(axis=2, keepdims=True), axis=2)
            assert np.abs(den[m.slot[: m.shifts.size]] - d).max() < 1e-5
        best, arg = m.scores(X, lo, hi)
        r = prod if den is None else prod / den
        assert np.array_equal(best, r.max(axis=1))
        assert np.array_equal(arg, r[:, m.slot[: m.shifts.size]].argmax(axis=1))


def test_take_rows_is_take_along_axis():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 17)).astype(np.float32)
    idx = rng.integers(0, 17, (30, 5))
    assert np.array_equal(take_rows(a, idx), np.take_along_axis(a, idx, axis=1))
    assert np.array_equal(take_rows(a[:, 2:9], idx % 7), np.take_along_axis(a[:, 2:9], idx % 7,
                                                                             axis=1))


# -- greedy selection ---------------------------------------------------------------------
def _greedy_plain(gram, b, k, min_gain, *, pool=None, group=None):
    """The selection written plainly: an (n, N) mask and a masked select every step."""
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
    corr = np.array(b, dtype=np.float64)
    perp = np.repeat(d[None, :], n, axis=0)
    W = []
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


def test_greedy_select_equals_the_plain_selection(shipped):
    ident = shipped
    X = _scans(ident, 300, seed=2)
    sc = ident._score(X, 0, ident.n_points)
    rows = np.arange(len(X))
    b = sc.at(rows, sc.sidx[rows, np.argmax(sc.score, axis=1)]).astype(np.float64)
    b[5] = np.nan            # NaN row, partly NaN row, zero row, a tiny product
    b[7, :40] = np.nan
    b[9] = 0.0
    b[11, 3] = 1e-200
    b[13] = -np.abs(b[13])   # nothing usable
    gram = ident.matcher.gram()
    rng = np.random.default_rng(3)
    gains = (-np.inf, 1e-3, rng.uniform(0, 2e-3, len(b)))
    with np.errstate(invalid="ignore"):
        for k in (1, 4, 6):
            for mg in gains:
                for kw in ({}, {"group": ident.subst},
                           {"group": ident.subst, "pool": ~ident.is_hazard}):
                    assert np.array_equal(greedy_select(gram, b, k, mg, **kw),
                                          _greedy_plain(gram, b, k, mg, **kw))
    small = gram[:5, :5]   # fewer columns than steps
    assert np.array_equal(greedy_select(small, b[:, :5], 6, -np.inf),
                          _greedy_plain(small, b[:, :5], 6, -np.inf))


# -- NNLS subset tables -------------------------------------------------------------------
def _ls_subsets(G, b, valid):
    """Least-squares fit of every subset written plainly: residual (inf when infeasible) and
    coefficients, per bit mask."""
    n, k, _ = G.shape
    rss = np.full((n, 1 << k), np.inf)
    coef = np.zeros((n, 1 << k, k))
    rss[:, 0] = 1.0
    ridge = 1e-9 * np.trace(G, axis1=1, axis2=2) / k
    for r in range(1, k + 1):
        for mem in map(list, combinations(range(k), r)):
            mask = sum(1 << j for j in mem)
            A = G[:, mem][:, :, mem] + ridge[:, None, None] * np.eye(r)
            c = np.linalg.solve(A, b[:, mem][..., None])[..., 0]
            ok = np.all(c >= 0, axis=1) & np.all(valid[:, mem], axis=1)
            rss[:, mask] = np.where(ok, 1.0 - np.einsum("nr,nr->n", b[:, mem], c), np.inf)
            coef[:, mask, mem] = np.where(ok[:, None], c, 0.0)
    return rss, coef


def test_nnls_tables_by_origin_equal_the_best_sub_subset():
    rng = np.random.default_rng(4)
    n, k, m = 200, 4, 80
    A = rng.normal(size=(n, k, m))
    A[:, 1] = 0.9 * A[:, 0] + 0.1 * A[:, 1]
    x = np.einsum("nkm,nk->nm", A, rng.uniform(-0.5, 1, (n, k)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    G = np.einsum("nim,njm->nij", A, A)
    b = np.einsum("nim,nm->ni", A, x)
    valid = rng.random((n, k)) > 0.15
    fit = nnls_gram(G, b, valid=valid)
    ls_rss, ls_coef = _ls_subsets(G, b, valid)
    # every subset's optimum: the best feasible fit among its sub-subsets, its coefficients
    rows = np.arange(n)
    for mask in range(1 << k):
        subs = np.array([s for s in range(1 << k) if s & mask == s])
        best = subs[np.argmin(ls_rss[:, subs], axis=1)]
        assert np.allclose(fit.sub_rss[:, mask], np.maximum(ls_rss[rows, best], 0.0))
        assert np.allclose(fit.sub_coef[:, mask], ls_coef[rows, best], atol=1e-9)
    lean = nnls_gram(G, b, valid=valid, tables=False)
    for f in ("coef", "rss", "drss"):
        assert np.array_equal(getattr(lean, f), getattr(fit, f))
    assert lean.sub_rss is None and lean.sub_coef is None
    masks = rng.integers(0, 1 << k, n)
    assert np.array_equal(fit.subset_coef(masks), fit.sub_coef[rows, masks])
    assert np.array_equal(fit.sub_coef[rows, (1 << k) - 1], fit.coef)
    for mg in (-1.0, 1e-3, rng.uniform(0, 0.05, n)):
        sel = forward_select(fit, mg, accept=valid)
        assert np.array_equal(sel.coef, fit.sub_coef[rows, sel.mask])


# -- candidate lists from one ranking -------------------------------------------------------
def _candidates_plain(ident, score, allowed, k):
    """Candidate lists written plainly: top 3k, then the first entry of each substance."""
    s = score if allowed is None else np.where(allowed[None, :], score, -np.inf)
    kk = min(ident.n_entries, 3 * k)
    ids, vals = top_k(s, kk)
    sub = ident.subst[ids]
    dup = np.zeros(ids.shape, dtype=bool)
    for j in range(1, kk):
        dup[:, j] = np.any(sub[:, :j] == sub[:, j:j + 1], axis=1)
    dup |= ~np.isfinite(vals)
    order = np.argsort(dup, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(ids, order, axis=1)
    return np.where(np.take_along_axis(dup, order, axis=1), -1, out)


def test_candidates_from_the_ranking_equal_direct_ones_with_ties(shipped):
    ident = shipped
    X = _scans(ident, 200, seed=5)
    score = ident._score(X, 0, ident.n_points).score.copy()
    score[::9] = 0.0                            # zero rows: every score tied
    score[1, 10] = score[1, 11]                 # ties among the best
    score[2] = np.round(score[2], 1)
    score[4, 3] = np.nan
    score[6, :] = score[6, 0]
    ranked = ident._ranking(score)
    hz = ident.is_hazard
    few = np.zeros(ident.n_entries, dtype=bool)
    few[[0, 1, 2]] = True                       # fewer allowed entries than the list asks
    for allowed, k in ((None, 5), (None, 4), (None, 1), (~hz, 3), (hz, 2), (hz, 5), (few, 4)):
        direct = ident._candidates(score, allowed, k)
        assert np.array_equal(direct, _candidates_plain(ident, score, allowed, k))
        assert np.array_equal(ident._candidates(score, allowed, k, ranked), direct)
    # a ranking shallower than a list asks: every row recomputed, same answer
    shallow = top_k(score, 4)
    assert np.array_equal(ident._candidates(score, None, 5, shallow),
                          ident._candidates(score, None, 5))
    # a ranking exactly as deep as the list cannot see a tie just past it: recomputed too
    order = np.argsort(-np.nan_to_num(score, nan=-9.0), axis=1)
    for i in (3, 8, 12):
        score[i, order[i, 15]] = score[i, order[i, 14]]
    for depth in (15, 16):
        assert np.array_equal(ident._candidates(score, None, 5, top_k(score, depth)),
                              ident._candidates(score, None, 5))


def test_candidates_from_the_ranking_on_a_tiny_library():
    full = load_library()
    keep = [0, 1, 2]
    lib = SimpleNamespace(version=full.version, sha256=full.sha256, recipe=full.recipe,
                          axis=full.axis, matrix=np.asarray(full.matrix)[keep],
                          entries=[full.entries[i] for i in keep])
    ident = Identifier(lib, workers=1)
    X = _scans(ident, 20, seed=6)
    score = ident._score(X, 0, ident.n_points).score
    ranked = ident._ranking(score)
    for k in (1, 3, 5):
        assert np.array_equal(ident._candidates(score, None, k, ranked),
                              ident._candidates(score, None, k))


# -- best shift memo ------------------------------------------------------------------------
def test_best_shift_memo_answers_as_a_fresh_search(shipped):
    ident = shipped
    X = _scans(ident, 50, seed=7)
    sc = ident._score(X, 0, ident.n_points)
    rows = np.arange(50)
    rng = np.random.default_rng(8)
    queries = [rng.integers(0, ident.n_entries, 50) for _ in range(3)]
    for q in list(queries):                      # nearly the same pairs as an earlier query
        q = q.copy()
        q[::7] = rng.integers(0, ident.n_entries, q[::7].size)
        queries.append(q)
    for ids in queries + queries[::-1] + queries:
        got = sc.sidx[rows, ids]
        r = sc.prod[rows[:, None], ident.matcher.slot[None, : ident.matcher.shifts.size],
                    ids[:, None]]
        assert np.array_equal(got, r.argmax(axis=1).astype(np.int16))
        got[:] = -1                              # the caller's copy, not the memo's
    sub = sc.take(rows[10:20])
    assert np.array_equal(sub.sidx[np.arange(10), queries[0][10:20]],
                          sc.sidx[rows[10:20], queries[0][10:20]])
