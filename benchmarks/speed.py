"""Speed of the ramanid engine against the common open pipeline, in the same run (by hand).

    python benchmarks/speed.py [--n 20000] [--peer-n 300] [--big 10000] [--skip-baselines]

1. Baseline study (chooses the recipe's default): every batch baseline of ramanid.baseline and
   the same methods of pybaselines (one spectrum per call) on real library spectra plus a known
   synthetic fluorescence background: RMS error against the true background (% of the tallest
   band) and microseconds per spectrum.
2. End to end in memory: N scans of 1952 points (the ENLIGHTEN detector, 300-2300 cm-1) made
   from the default library's real spectra (noise, fluorescence, axis shifts, two-component
   mixtures), through ramanid (Identifier.run: despike, resample, baseline, smoothing,
   normalisation, shifted-library GEMM, top-k, NNLS mixtures, hazard layer, verdicts) against
   the peer pipeline (pybaselines arPLS per spectrum + scipy Savitzky-Golay + a per-entry
   Pearson loop, benchmarks/_peers.py) on a subset; scans/s of both, the ratio, top-1 agreement.
3. Matching alone against a 10,000-entry synthetic library (real spectra recombined and
   shifted), GFLOP/s achieved against the machine's SGEMM speed measured in the same run.
4. Memory: the engine works in bounded chunks, so memory = input + results + a constant
   working set; the figures per 10^5 scans are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _peers import current_library, peer_pipeline

from ramanid import baseline as B
from ramanid.identify import Identifier
from ramanid.match import Matcher
from ramanid.preprocess import grid_axis
from ramanid.spectrum import SpectrumBatch


def best_of(fn, reps: int = 3) -> float:
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def environment() -> None:
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}")
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            print(f"  {info.get('internal_api')} {info.get('version')} "
                  f"threads={info.get('num_threads')} arch={info.get('architecture')}")
    except ImportError:
        print("  (threadpoolctl not installed: BLAS thread info not shown)")
    try:
        print(f"  load average: {os.getloadavg()}")
    except OSError:
        pass


def baseline_study(lib, n: int, peer_n: int) -> None:
    print("\n== 1. Baseline study (real band spectra + known fluorescence, 746-point grid) ==")
    x = grid_axis(310.0, 1800.0, 2.0)
    rng = np.random.default_rng(7)
    raws = [lib.raw(e.id) for e in lib.entries if e.provenance_kind == "measured"]
    idx = rng.integers(0, len(raws), n)
    bands = np.vstack([np.interp(x, *raws[i]) for i in idx])
    bands -= np.percentile(bands, 5, axis=1, keepdims=True)
    bands *= 1000.0 / bands.max(axis=1, keepdims=True)
    t = (x - x[0]) / np.ptp(x)
    true = (rng.uniform(1000, 20000, (n, 1)) * np.exp(-t * rng.uniform(0.5, 3, (n, 1)))
            + rng.uniform(0, 5000, (n, 1)) * t**2
            + rng.uniform(0, 1000, (n, 1)) * np.sin(np.pi * t * rng.uniform(0.5, 1.5, (n, 1))))
    Y = bands + true + rng.normal(0, 1, (n, x.size)) * np.sqrt(np.abs(true) + 100)

    from pybaselines import Baseline
    fitter = Baseline(np.arange(x.size))
    rows = [("clipwhit (default)", lambda A: B.clipwhit(A.astype(np.float32)), None),
            ("mor hw=25", lambda A: B.mor(A, 25), ("mor", {"half_window": 25})),
            ("modpoly order 5", lambda A: B.modpoly(A, 5), ("modpoly", {"poly_order": 5})),
            ("asls lam=1e5 p=0.01", lambda A: B.asls(A, 1e5, 0.01),
             ("asls", {"lam": 1e5, "p": 0.01})),
            ("arpls lam=1e4", lambda A: B.arpls(A, 1e4), ("arpls", {"lam": 1e4}))]
    print(f"{'method':24s} {'RMS err %':>10s} {'ramanid us/spec':>16s} "
          f"{'pybaselines us/spec':>20s}")
    for name, fn, peer in rows:
        sub = Y if "clipwhit" in name or "mor" in name or "modpoly" in name else Y[:2048]
        tt = best_of(lambda fn=fn, sub=sub: fn(sub), 2) / len(sub) * 1e6
        e = err_sub(fn(sub), true[: len(sub)])
        ps = ""
        if peer is not None:
            meth, kw = peer
            k = min(peer_n, len(Y))
            tp = best_of(lambda meth=meth, kw=kw, k=k: [getattr(fitter, meth)(y, **kw)
                                                        for y in Y[:k]], 1) / k * 1e6
            ps = f"{tp:20.1f}"
        print(f"{name:24s} {e:10.2f} {tt:16.1f} {ps}")


def err_sub(est, true):
    d = est - true
    d -= d.mean(axis=1, keepdims=True)
    return float(np.median(np.sqrt((d**2).mean(axis=1))) / 10.0)


def make_scans(lib, n: int, seed: int = 0):
    """n scans on a 1952-point axis from real library spectra (see module doc)."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(300.0, 2300.0, 1952)
    measured = [i for i, e in enumerate(lib.entries) if e.provenance_kind == "measured"]
    R = np.vstack([np.interp(axis, *lib.raw(lib.entries[i].id)) for i in measured])
    R -= np.median(R, axis=1, keepdims=True)
    R /= R.max(axis=1, keepdims=True)
    a = rng.integers(0, len(measured), n)
    b = rng.integers(0, len(measured), n)
    f = np.where(rng.random(n) < 0.2, rng.uniform(0.2, 0.5, n), 0.0)   # 20 % mixtures
    Y = (1 - f)[:, None] * R[a] + f[:, None] * R[b]
    shift = rng.integers(-3, 4, n)
    for s in np.unique(shift):
        sel = shift == s
        Y[sel] = np.roll(Y[sel], int(s), axis=1)
    peak = rng.uniform(2000, 20000, (n, 1))
    t = (axis - 300) / 2000
    bg = peak * rng.uniform(0, 5, (n, 1)) * np.exp(-2 * t)
    Y = Y * peak + bg
    Y += rng.normal(0, 1, Y.shape) * np.sqrt(np.abs(Y) + 100)
    return axis, Y.astype(np.float32), np.array(measured)[a]


def end_to_end(lib, n: int, peer_n: int) -> None:
    print(f"\n== 2. End to end in memory: {n} scans x 1952 points, library of "
          f"{len(lib.entries)} entries ==")
    axis, Y, truth = make_scans(lib, n)
    batch = SpectrumBatch(axis, Y)
    ident = Identifier(lib)
    ident.run(batch[:256])
    t = best_of(lambda: ident.run(batch), 3)
    rs = ident.run(batch)
    ours = n / t
    print(f"ramanid  : {ours:10.0f} scans/s  ({t:.2f} s, workers={ident.workers}; "
          f"top-1 = dominant component {np.mean(rs.top_ids[:, 0] == truth):.3f})")
    k = min(peer_n, n)
    Lp = np.asarray(lib.matrix, dtype=np.float64)
    # the peer works on the library axis too (interpolated once per scan)
    grid = np.asarray(lib.axis)
    Yg = np.vstack([np.interp(grid, axis, y) for y in Y[:k].astype(np.float64)])
    tp = best_of(lambda: peer_pipeline(grid, Yg, Lp), 1)
    pred = peer_pipeline(grid, Yg, Lp)
    peer = k / tp
    print(f"peer     : {peer:10.1f} scans/s  ({tp:.2f} s for {k} scans; pybaselines arPLS + "
          f"SG + Pearson loop; top-1 {np.mean(pred == truth[:k]):.3f})")
    print(f"ratio    : {ours / peer:10.1f} x   (target >= 20x; ramanid target >= 20,000 scans/s)")
    # memory: constant working set + input + results
    small = batch[:8192]
    tracemalloc.start()
    res = ident.run(small)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res_bytes = sum(getattr(res, f).nbytes for f in (
        "verdict", "reason", "top_ids", "top_scores", "comp_ids", "comp_fracs", "mix_r",
        "hazard_level", "hazard_hits", "hazard_fracs", "shift")) + sum(
        a.nbytes for a in res.qc.values())
    per = res_bytes / len(small)
    print(f"memory   : working set peak {peak / 2**20:.0f} MiB (independent of N: chunks of "
          f"<= {ident.chunk} scans x {ident.workers} workers); results {per:.0f} B/scan; "
          f"per 10^5 scans: input {1e5 * 1952 * 4 / 2**20:.0f} MiB (float32) + results "
          f"{1e5 * per / 2**20:.0f} MiB + working set")


def big_library(lib, n_entries: int, n_scans: int) -> None:
    print(f"\n== 3. Matching against a {n_entries}-entry synthetic library ==")
    rng = np.random.default_rng(3)
    L = np.asarray(lib.matrix, dtype=np.float32)
    i, j = rng.integers(0, len(L), (2, n_entries))
    w = rng.uniform(0, 1, (n_entries, 1)).astype(np.float32)
    big = np.roll(w * L[i] + (1 - w) * L[j], 0, axis=1)
    for s in range(-20, 21, 4):
        sel = rng.random(n_entries) < 0.1
        big[sel] = np.roll(big[sel], s, axis=1)
    X = L[rng.integers(0, len(L), n_scans)] + rng.normal(0, 0.01, (n_scans, L.shape[1]))
    X = (X - X.mean(axis=1, keepdims=True)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    a = rng.standard_normal((3000, 3000), dtype=np.float32)
    tg = best_of(lambda: a @ a, 3)
    print(f"machine SGEMM 3000^3: {2 * 3000**3 / tg / 1e9:.0f} GFLOP/s")
    for shift in (0.0, 10.0):
        m = Matcher(big, 2.0, max_shift=shift)
        t = best_of(lambda m=m: m.scores(X), 3)
        flops = 2.0 * n_scans * m.flat.shape[0] * big.shape[1]
        print(f"shift search +-{shift:g} cm-1 ({m.shifts.size} copies, "
              f"{m.flat.nbytes / 2**20:.0f} MiB): {n_scans / t:9.0f} scans/s, "
              f"{flops / t / 1e9:6.0f} GFLOP/s (GEMM + best-over-shift reduction)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="scans end to end")
    ap.add_argument("--peer-n", type=int, default=300, help="scans through the peer pipeline")
    ap.add_argument("--big", type=int, default=10000, help="entries of the synthetic library")
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args(argv)
    environment()
    lib = current_library()
    print(f"library: {len(lib.entries)} entries (shipped default, rebuilt in memory), recipe "
          f"{lib.recipe['name']} "
          f"v{lib.recipe['version']}")
    if not args.skip_baselines:
        baseline_study(lib, 4096, args.peer_n)
    end_to_end(lib, args.n, args.peer_n)
    big_library(lib, args.big, 2048)


if __name__ == "__main__":
    main()
