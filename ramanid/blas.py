"""One BLAS thread while the caller supplies the parallelism (threads, processes, Dask workers).

The engine's matrix products run inside worker threads (:meth:`ramanid.identify.Identifier.run`)
or worker processes (``ramanid batch``). A multi-threaded BLAS under each of them over-subscribes
the cores (2 workers x 2 OpenBLAS threads on 2 cores ran 35 % slower than 2 x 1 in
``benchmarks/speed.py``), and sums in another order: with one BLAS thread in every worker the
floating-point results are bit-identical however a job runs (a product of 64 scans with the
library differs in the last bit between 1 and 2 OpenBLAS threads).

Why not threadpoolctl: its OpenBLAS limit can be changed only by the first thread that set it
(other threads "silently do nothing"), and here the limit is set by whichever worker thread
starts first and restored by whichever finishes last. The calls are OpenBLAS's own
``openblas_set_num_threads`` / ``openblas_get_num_threads`` (process-wide), through ctypes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["one_blas_thread"]

_BLAS: list[Any] = []
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, 1]   # tasks running in this process, thread count to restore


def _openblas_threads() -> tuple[Callable[[int], Any], Callable[[], int]] | None:
    """(set, get) of the loaded OpenBLAS's thread count, or None when not found (cached)."""
    if not _BLAS:
        _BLAS.append(_find_openblas())
    return _BLAS[0]


def _find_openblas() -> tuple[Callable[[int], Any], Callable[[], int]] | None:
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            libs = sorted({ln.split()[-1] for ln in fh
                           if "openblas" in ln.lower() and ".so" in ln.split()[-1]})
    except OSError:
        return None
    for lib in libs:
        try:
            cdll = ctypes.CDLL(lib)
        except OSError:
            continue
        for suffix in ("64_", "_64_", ""):
            for prefix in ("scipy_openblas", "openblas"):
                setter = getattr(cdll, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(cdll, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes = [ctypes.c_int]
                    return setter, getter
    return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with one OpenBLAS thread (restored afterwards).

    Every task runs this way whatever executes it (the calling process, a process or thread
    pool, Dask): parallelism comes from the workers, and floating-point results are then
    bit-identical however the job runs (multi-threaded BLAS may sum in another order).
    """
    funcs = _openblas_threads()
    if funcs is None:
        yield
        return
    setter, getter = funcs
    with _BLAS_LOCK:        # concurrent tasks in threads: the first sets, the last restores
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = int(getter())
            setter(1)
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                setter(_BLAS_USERS[1])
