"""Where the tasks of a batch job run: in the calling process, a local pool, or on Dask.

Each executor takes the lazy task iterator and yields task summaries as tasks finish, with at
most ``2 x workers`` tasks in flight (so the parent's memory does not grow with the job).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ramanid.batch_job import JobConfig, Task
from ramanid.batch_task import run_task
from ramanid.errors import InputError, UsageError


# -- executors -----------------------------------------------------------------------------------
def _bounded_map(submit: Callable[[Task], Any], wait_one: Callable[[set], tuple[Any, set]],
                 tasks: Iterator[Task], limit: int) -> Iterator[dict[str, Any]]:
    """Keep at most ``limit`` tasks in flight; yield summaries as tasks finish."""
    pending: set = set()
    for task in tasks:
        pending.add(submit(task))
        while len(pending) >= limit:
            result, pending = wait_one(pending)
            yield result
    while pending:
        result, pending = wait_one(pending)
        yield result


def run_inline(tasks: Iterator[Task], config: JobConfig) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield run_task(task, config)


def run_pool(tasks: Iterator[Task], config: JobConfig, workers: int,
              executor: str) -> Iterator[dict[str, Any]]:
    import concurrent.futures as cf

    def wait_one(pending: set) -> tuple[Any, set]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        first = done.pop()
        return first.result(), rest | done

    if executor == "threads":
        pool: cf.Executor = cf.ThreadPoolExecutor(max_workers=workers)
    else:
        import multiprocessing as mp

        # "fork" where the platform has it, before Python 3.12: fast start, and no re-import of
        # the caller's __main__ (run_batch works from any script). From 3.12 on, forking a
        # process that runs threads (BLAS, tqdm) is deprecated: "forkserver" there. Each task
        # runs with one BLAS thread anyway (one_blas_thread); the environment covers the rest.
        method = start_method()
        with _env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"):
            pool = cf.ProcessPoolExecutor(max_workers=workers,
                                          mp_context=mp.get_context(method),
                                          initializer=_die_with_parent)
            list(pool.map(_noop, range(workers)))   # start the workers now
    try:
        yield from _bounded_map(lambda t: pool.submit(run_task, t, config), wait_one, tasks,
                                2 * workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def start_method() -> str:
    """How worker processes are started: "fork" where the platform has it, before Python 3.12
    (fast start, no re-import of the caller's __main__, and the workers inherit what the parent
    loaded); from 3.12 on "forkserver" (forking a process that runs threads is deprecated
    there), else "spawn"."""
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    if "fork" in methods and sys.version_info < (3, 12):
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _die_with_parent() -> None:
    """Pool initializer: end this worker when the batch process dies (even by ``kill -9``).

    Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; elsewhere nothing (the pool's own shutdown
    still ends workers on every normal exit).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _noop(_: int) -> None:
    time.sleep(0.05)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dask(tasks: Iterator[Task], config: JobConfig, scheduler: str, workers: int,
              dask_processes: bool) -> Iterator[dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster, wait
    except ImportError as exc:
        raise UsageError("--scheduler needs Dask distributed, which is not installed",
                         hint="pip install 'ramanid[dask]'") from exc
    cluster = None
    try:
        if scheduler == "local":
            with _env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=dask_processes, dashboard_address=None)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise InputError(f"cannot reach the Dask scheduler ({exc})", source=scheduler,
                                 hint="check the address (tcp://HOST:PORT) and that the "
                                      "scheduler is running") from exc
        limit = 2 * max(1, len(client.scheduler_info().get("workers", {})) or workers)
        token = hashlib.blake2b(json.dumps(config.fingerprint()).encode(),
                                digest_size=6).hexdigest()

        def submit(task: Task) -> Any:
            return client.submit(run_task, task, config, pure=False,
                                 key=f"ramanid-batch-{token}-{task.index}")

        def wait_one(pending: set) -> tuple[Any, set]:
            done, rest = wait(list(pending), return_when="FIRST_COMPLETED")
            first = done.pop()
            return first.result(), set(rest) | set(done)

        try:
            yield from _bounded_map(submit, wait_one, tasks, limit)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()

