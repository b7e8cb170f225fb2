"""Benchmark of ``ramanid batch`` on a large archive of synthetic scans (run by hand).

What it does
------------
1. Builds (once; reused when present) an archive of N synthetic scans made from the default
   library's real measured spectra: a random entry (or a two-entry mixture), scaled, shifted by up
   to +-5 cm-1, on a fluorescence background, with shot and read noise, on a 1024-pixel
   detector-like axis (250-2000 cm-1), stored as float32 counts. Every scan's metadata says it is
   synthetic (``name``: ``synthetic: <entry>``, ``units``: ``counts (synthetic)``).
2. Runs ``ramanid batch ARCHIVE --out RESULTS.parquet`` as a subprocess (end to end: start-up,
   reading, engine, writing, assembly) and reports scans/s, the peak resident memory of the job
   (all its processes summed, sampled every 0.1 s, and the largest single process), and the
   fraction of pure synthetic scans whose top candidate is the entry they were made from.
3. Optionally compares local executors (processes vs threads) on the first scans.
4. Runs the peer pipeline (``benchmarks/_peers.peer_pipeline``: pybaselines arPLS per spectrum +
   scipy Savitzky-Golay + per-entry Pearson loop) on a subset, single process, and prints the
   ratio.

Usage::

    python benchmarks/batch.py --n 1000000 --workdir /tmp/ramanid-bench
    python benchmarks/batch.py --n 50000 --executors      # quick run + processes vs threads
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

AXIS = np.linspace(250.0, 2000.0, 1024)
BLOCK = 20000


def synthetic_blocks(n: int, seed: int = 0):
    """Yield SpectrumBatch blocks of synthetic scans from the library's measured spectra."""
    from ramanid.library import load_library
    from ramanid.spectrum import SpectrumBatch

    lib = load_library()
    entries = [e for e in lib.entries if e.provenance_kind == "measured"]
    fine = np.arange(200.0, 2050.0, 0.5)
    ref = []
    for e in entries:
        ax, val = lib.raw(e.id)
        v = np.interp(fine, ax, val, left=0.0, right=0.0)
        v = v - np.percentile(v, 5)
        ref.append(np.clip(v, 0, None) / max(v.max(), 1e-9))
    ref = np.asarray(ref)
    names = np.array([e.name for e in entries], dtype=object)
    rng = np.random.default_rng(seed)
    made = 0
    while made < n:
        m = min(BLOCK, n - made)
        a = rng.integers(0, len(entries), m)
        b = rng.integers(0, len(entries), m)
        mix = rng.random(m) < 0.2
        frac = np.where(mix, rng.uniform(0.1, 0.5, m), 0.0)
        shift = rng.uniform(-5.0, 5.0, m)
        pos = (AXIS[None, :] - shift[:, None] - fine[0]) / 0.5
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, fine.size - 2)
        w = np.clip(pos - i0, 0.0, 1.0)
        ra = ref[a[:, None], i0] * (1 - w) + ref[a[:, None], i0 + 1] * w
        rb = ref[b[:, None], i0] * (1 - w) + ref[b[:, None], i0 + 1] * w
        signal = ((1 - frac)[:, None] * ra + frac[:, None] * rb)
        signal *= rng.uniform(2e3, 2e4, (m, 1))
        t = (AXIS - AXIS[0]) / (AXIS[-1] - AXIS[0])
        fluo = rng.uniform(0, 3e4, (m, 1)) * np.exp(-((t[None, :] - rng.uniform(0.3, 1.2, (m, 1)))
                                                       / 0.6) ** 2)
        counts = signal + fluo + 800.0
        counts = counts + rng.normal(0.0, 1.0, counts.shape) * np.sqrt(counts + 25.0)
        counts = np.clip(counts, 0, 65535).astype(np.float32)
        label = np.where(mix, "synthetic mixture: " + names[a] + " + " + names[b],
                         "synthetic: " + names[a])
        meta = [{"name": label[i], "device_serial": f"SIM-{i % 7}", "laser_nm": 785.0,
                 "integration_ms": 500.0, "units": "counts (synthetic)",
                 "timestamp": f"2025-06-{1 + (made + i) // 86400 % 28:02d}T"
                              f"{(made + i) // 3600 % 24:02d}:{(made + i) // 60 % 60:02d}:"
                              f"{(made + i) % 60:02d}Z"}
                for i in range(m)]
        yield SpectrumBatch(AXIS, counts, meta)
        made += m


def _current_layout(path: Path) -> bool:
    """False for an archive whose text columns are variable-length (written by a ramanid before
    fixed-length text columns, slower to read): the benchmark then builds it again."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["scans"]["g000000"]["meta"]["name"]
        info = h5py.check_string_dtype(ds.dtype)
        return info is not None and info.length is not None


def build_archive(path: Path, n: int, compression: str | None = "gzip") -> float:
    """Write the synthetic archive (skipped when it already holds n scans); seconds taken."""
    from ramanid.io.archive import ArchiveReader, ArchiveWriter, is_archive

    if path.exists() and is_archive(path):
        with ArchiveReader(path) as r:
            if len(r) == n and _current_layout(path):
                return 0.0
    t = time.perf_counter()
    with ArchiveWriter(path, "w", dtype="float32", compression=compression) as w:
        for block in synthetic_blocks(n):
            w.append(block)
            print(f"  archive: {len(w)} / {n} scans", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    return time.perf_counter() - t


def run_job(args: list[str]) -> tuple[float, int, float, float, float]:
    """Run ``ramanid batch`` as a subprocess.

    Returns (seconds, exit status, peak MiB summed over its processes, peak MiB of the largest
    process, CPU seconds used by the job and its workers).
    """
    import resource

    import psutil

    cmd = [sys.executable, "-m", "ramanid", "batch", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak_sum = max(peak_sum, sum(rss))
            peak_one = max(peak_one, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode not in (0, 3):
        print(out, err, file=sys.stderr)
        raise SystemExit(f"ramanid batch failed with status {proc.returncode}")
    print(out.strip())
    return elapsed, proc.returncode, peak_sum / 2**20, peak_one / 2**20, cpu


def accuracy(results: Path) -> tuple[float, int]:
    """Fraction of pure synthetic scans whose top candidate is the entry they came from."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(results, columns=["name", "top_name"])
    name = t.column("name")
    pure = pc.starts_with(name, "synthetic: ")
    truth = pc.utf8_slice_codeunits(pc.filter(name, pure), 11)
    top = pc.filter(t.column("top_name"), pure)
    same = pc.sum(pc.equal(truth, top)).as_py() or 0
    return same / max(len(truth), 1), len(truth)


def peer(archive: Path, n: int) -> float:
    """Scans/s of the peer pipeline on the first n scans (one process)."""
    from _peers import peer_pipeline

    from ramanid.io.archive import ArchiveReader
    from ramanid.library import load_library

    lib = load_library()
    entries = [e for e in lib.entries if e.provenance_kind == "measured"]
    L = np.array([np.interp(AXIS, *lib.raw(e.id)) for e in entries])
    with ArchiveReader(archive) as r:
        block = r.read_block(0, n)
    t = time.perf_counter()
    peer_pipeline(AXIS, block.intensity, L)
    return n / (time.perf_counter() - t)


def breakdown(archive: Path, chunks: int = 10, chunk_size: int = 2048) -> dict[str, float]:
    """Microseconds per scan of each stage of a task, in this process, one BLAS thread.

    The stages of the worker's own path (``ramanid.batch_task``): read the block (reader kept
    open, as in a worker), prepare (metadata columns, ids, the engine's batch), the engine
    (``Identifier.run``), flatten (``columns_from_resultset``); then the whole task as a worker
    runs it (``run_task``: all of the above, the result table and writing the part file) and
    what it spends outside the engine (the whole task less the engine's time in that task).
    """
    import shutil

    from ramanid.batch import JobConfig, Task, get_processor, one_blas_thread, run_task
    from ramanid.batch_engine import MetaColumns, bare_batch, columns_from_resultset
    from ramanid.batch_task import archive_reader, close_readers

    work = archive.parent / "breakdown.parquet"
    cfg = JobConfig(out=str(work), fmt="parquet", library=None, old_library=None,
                    chunk_size=chunk_size, inputs=(str(archive),))
    ident = get_processor(cfg, None).identifier
    t = dict.fromkeys(("read", "prepare", "engine", "flatten", "whole task"), 0.0)
    n = 0
    in_task = [0.0]
    run = ident.run

    def timed(batch: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return run(batch)
        finally:
            in_task[0] += time.perf_counter() - t0

    with one_blas_thread():
        reader = archive_reader(str(archive))
        spans = list(reader.spans(chunk_size))
        first = reader.read_block(*spans[0])      # warm-up (first calls), not counted
        columns_from_resultset(ident.run(bare_batch(first.axis, first.intensity)),
                               MetaColumns(first.meta_columns(str(archive)), len(first)))
        # every other chunk, as one of two workers gets them
        for k, (a, b) in enumerate(spans[1:2 * chunks:2]):
            t0 = time.perf_counter()
            block = archive_reader(str(archive)).read_block(a, b)
            t1 = time.perf_counter()
            meta = MetaColumns(block.meta_columns(str(archive)), len(block))
            batch = bare_batch(block.axis, block.intensity)
            t2 = time.perf_counter()
            rs = ident.run(batch)
            t3 = time.perf_counter()
            columns_from_resultset(rs, meta)
            t4 = time.perf_counter()
            shutil.rmtree(cfg.parts_dir, ignore_errors=True)
            cfg.parts_dir.mkdir()
            t5 = time.perf_counter()
            ident.run = timed                   # the engine's share of this very task
            try:
                run_task(Task(k, "archive", str(archive), a, b), cfg)
            finally:
                del ident.run
            t6 = time.perf_counter()
            for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t6 - t5), strict=True):
                t[key] += dt
            n += b - a
    close_readers()
    shutil.rmtree(cfg.parts_dir, ignore_errors=True)
    out = {k: 1e6 * v / max(n, 1) for k, v in t.items()}
    out["whole task outside the engine"] = out["whole task"] - 1e6 * in_task[0] / max(n, 1)
    return out


def main() -> None:
    """Command line of the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="scans in the archive")
    ap.add_argument("--workdir", default="/tmp/ramanid-bench-batch")
    ap.add_argument("--compression", choices=("gzip", "lz4", "lzf", "none"), default="gzip",
                    help="compression of the archive's intensities (as `ramanid archive pack`)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--peer-n", type=int, default=1000, help="scans for the peer pipeline")
    ap.add_argument("--executors", type=int, default=0, metavar="N",
                    help="also compare --executor processes/threads on an archive of N scans")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    comp = None if a.compression == "none" else a.compression
    suffix = "" if a.compression == "gzip" else f"-{a.compression}"
    archive = work / f"synthetic-{a.n}{suffix}.h5"
    built = build_archive(archive, a.n, comp)
    print(f"archive: {archive} ({a.n} scans, {archive.stat().st_size / 2**30:.2f} GiB"
          + (f", built in {built:.0f} s" if built else ", reused") + ")")
    extra = []
    if a.workers:
        extra += ["--workers", str(a.workers)]
    if a.chunk_size:
        extra += ["--chunk-size", str(a.chunk_size)]
    results = work / "results.parquet"
    secs, status, peak_sum, peak_one, cpu = run_job([str(archive), "--out", str(results),
                                                     *extra])
    rate = a.n / secs
    acc, n_pure = accuracy(results)
    print(f"ramanid batch: {a.n} scans in {secs:.1f} s = {rate:,.0f} scans/s end to end "
          f"(exit {status}); peak memory {peak_sum:.0f} MiB (all processes), "
          f"{peak_one:.0f} MiB (largest process); cores {os.cpu_count()}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"  CPU used by the job: {cpu:.1f} s = {1e6 * cpu / a.n:.1f} us per scan; on {cores} "
          f"free cores that is {cores * a.n / cpu:,.0f} scans/s (the wall-clock rate above is "
          f"lower when other jobs share the cores)")
    print(f"  top candidate = generating entry on {100 * acc:.1f}% of {n_pure} pure scans")
    if a.executors:
        small = work / f"synthetic-{a.executors}.h5"
        build_archive(small, a.executors)
        for ex in ("processes", "threads"):
            s, _, p_sum, _, c = run_job([str(small), "--out", str(work / f"ex-{ex}.parquet"),
                                         "--executor", ex, *extra])
            print(f"  executor {ex}: {a.executors / s:,.0f} scans/s, peak {p_sum:.0f} MiB, "
                  f"CPU {1e6 * c / a.executors:.1f} us per scan")
    stages = breakdown(archive)
    print("per scan in one worker (one BLAS thread): " + ", ".join(
        f"{k} {v:.1f} us" for k, v in stages.items()))
    peer_rate = peer(archive, min(a.peer_n, a.n))
    print(f"peer pipeline (arPLS per spectrum + SG + per-entry Pearson loop, 1 process): "
          f"{peer_rate:,.1f} scans/s on {min(a.peer_n, a.n)} scans")
    print(f"ratio ramanid batch (all {cores} cores, end to end) / peer (1 process): "
          f"{rate / peer_rate:,.0f}x; / peer ideally spread over {cores} processes: "
          f"{rate / (peer_rate * cores):,.0f}x")


if __name__ == "__main__":
    main()
