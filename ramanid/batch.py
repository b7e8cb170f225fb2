"""Batch re-identification of scan collections: chunked, parallel, checkpointed, resumable.

How a job runs
--------------
1. **Plan.** The inputs (directories, walked recursively in sorted order, and scan archives) are
   cut into numbered tasks: a run of at most ``chunk_size`` scans of one archive (never crossing
   an axis group), or ``chunk_size`` files of a directory. Planning is lazy and deterministic: the
   same inputs and chunk size give the same tasks, which is what makes resuming exact.
2. **Run.** Each task is one call of :func:`run_task` in a worker (the calling process, a local
   process pool, local threads, or a Dask cluster). The worker reads its scans, runs the engine
   (``ramanid.identify.Identifier``, cached per worker process), and writes the task's results as
   its own part file ``<out>.parts/part-<index>.<ext>`` atomically, after a small summary file
   beside it (``<ext>``: the result format, or ``arrow`` - Arrow IPC - for a Parquet job, see
   :func:`ramanid.batch_io.part_format`). A part file exists only when its task is complete:
   that is the checkpoint.
3. **Assemble.** While the job runs, the parent appends each part, in task order, as soon as it
   and every part before it are done, to a temporary file in the checkpoint directory (memory:
   one part at a time). When every task has a part, that file is renamed to ``<out>``, the
   counts are written to ``<out>.summary.json``, and the checkpoint directory is removed.

``--resume`` skips tasks whose checkpoint is complete, so after ``kill -9`` at any point every
scan appears in the final results exactly once. Checkpoints are not fsync'd (an fsync per chunk
stalled the workers on a slow disk): each summary records its part's size, and a checkpoint cut
short by a power failure is found by its size and redone (:func:`ramanid.batch_task.checkpoint`).
The final result and summary are written durably. A file that cannot be read, or a chunk the
engine fails on, is recorded as rows with ``status = "error"`` and the reason; the job goes on.

Memory bound
------------
Per worker: one chunk of scans (``chunk_size x n_points x 8`` bytes as read, plus the engine's
working arrays for that chunk) and one part's result table. The parent holds only task
descriptors for at most ``2 x workers`` tasks in flight and the running counts: nothing grows
with the number of scans.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramanid import batch_io
from ramanid.atomic import atomic_write_text, move_into_place
from ramanid.batch_exec import run_dask, run_inline, run_pool, start_method
from ramanid.batch_job import (
    CHANGE_ORDER,
    DEFAULT_CHUNK_SIZE,
    JOB_FILE,
    SYSTEMIC_FAILURE,
    JobConfig,
    Summary,
    Task,
)
from ramanid.batch_task import (
    checkpoint,
    close_readers,
    compare_tables,
    engine_processor,
    get_processor,
    part_paths,
    process_task,
    run_task,
)
from ramanid.blas import one_blas_thread
from ramanid.errors import EXIT_HAZARD, EXIT_OK, InputError, UsageError

__all__ = ["CHANGE_ORDER", "DEFAULT_CHUNK_SIZE", "SYSTEMIC_FAILURE", "BatchOptions", "JobConfig",
           "Summary", "Task", "check_inputs", "compare_tables", "count_scans", "engine_processor",
           "exit_status", "iter_tasks", "one_blas_thread", "process_task", "run_batch",
           "run_task", "usable_cores", "walk_files"]


# -- planning ------------------------------------------------------------------------------------
def _is_scan_file(path: Path) -> bool:
    from ramanid.io import READ_EXTENSIONS

    return path.suffix.lower() in READ_EXTENSIONS and not path.name.startswith(".")


def walk_files(directory: Path, exclude: Sequence[Path] = (),
               _seen: set[Path] | None = None) -> Iterator[Path]:
    """Scan files under ``directory``, recursively, in a deterministic (sorted) order.

    Hidden files and directories and the paths in ``exclude`` (the job's own output) are skipped;
    a directory reached twice through symbolic links is walked once.
    """
    seen = set() if _seen is None else _seen
    real = directory.resolve()
    if real in seen:
        return
    seen.add(real)
    excluded = {p.resolve() for p in exclude}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list directory ({exc.strerror})", source=directory) from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if path.resolve() in excluded:
            continue
        if entry.is_dir(follow_symlinks=True):
            yield from walk_files(path, exclude, seen)
        elif _is_scan_file(path):
            yield path


def check_inputs(inputs: Sequence[str | Path]) -> tuple[str, ...]:
    """Absolute paths of the inputs (directories, archives, single scan files).

    Raises :class:`InputError` for one that is not there, or an ``.h5`` that is no archive.
    """
    from ramanid.io.archive import is_archive

    if not inputs:
        raise UsageError("no inputs given", hint="give directories of scans or archives")
    out = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise InputError("no such file or directory", source=p)
        if p.suffix.lower() in (".h5", ".hdf5") and p.is_file() and not is_archive(p):
            raise InputError("not a ramanid scan archive", source=p,
                             hint="pack scan files with `ramanid archive pack DIR --out FILE.h5`")
        out.append(str(p.resolve()))
    return tuple(out)


def iter_tasks(config: JobConfig) -> Iterator[Task]:
    """Yield the job's tasks in order (lazy; the same for the same config)."""
    from ramanid.io.archive import ArchiveReader, is_archive

    index = 0
    exclude = [Path(config.out), config.parts_dir, config.summary_path]
    if config.changes_path:
        exclude.append(config.changes_path)

    def archive_tasks(path: Path) -> Iterator[Task]:
        nonlocal index
        with ArchiveReader(path) as reader:
            spans = list(reader.spans(config.chunk_size))
        for a, b in spans:
            yield Task(index, "archive", str(path), a, b)
            index += 1

    def paths() -> Iterator[Path]:
        for item in config.inputs:
            p = Path(item)
            if p.is_dir():
                yield from walk_files(p, exclude)
            else:
                yield p

    files: list[str] = []
    for f in paths():                 # in input order, each directory walked in sorted order
        if f.suffix.lower() in (".h5", ".hdf5") and is_archive(f):
            if files:
                yield Task(index, "files", files=tuple(files))
                index += 1
                files = []
            yield from archive_tasks(f)
            continue
        files.append(str(f))
        if len(files) == config.chunk_size:
            yield Task(index, "files", files=tuple(files))
            index += 1
            files = []
    if files:
        yield Task(index, "files", files=tuple(files))


def count_scans(config: JobConfig) -> int:
    """Total scans (archives) plus files (directories): the progress bar's total."""
    return sum(t.size for t in iter_tasks(config))


# -- the job -------------------------------------------------------------------------------------
def _check_job_dir(config: JobConfig, resume: bool) -> None:
    d = config.parts_dir
    job_file = d / JOB_FILE
    if d.exists() and not resume:
        if not job_file.exists():
            raise UsageError(f"{d} exists and is not a ramanid checkpoint directory",
                             hint="remove it or choose another --out")
        batch_io.remove_tree(d)
    if resume and job_file.exists():
        saved = json.loads(job_file.read_text())
        if saved.get("fingerprint") != config.fingerprint():
            raise UsageError("--resume: the checkpoints in "
                             f"{d} belong to a job with other inputs or options",
                             hint="run with the same inputs, library, --chunk-size and --format, "
                                  "or drop --resume to start again")
        if saved.get("columns") != list(batch_io.COLUMN_NAMES):
            raise UsageError(f"--resume: the checkpoints in {d} were written by another "
                             "version of ramanid (other result columns)",
                             hint="drop --resume to start the job again")
    d.mkdir(parents=True, exist_ok=True)
    for tmp in d.glob(".*"):  # temporary files of writes interrupted by a kill
        with contextlib.suppress(OSError):
            tmp.unlink()
    if not job_file.exists():
        atomic_write_text(job_file, json.dumps({"fingerprint": config.fingerprint(),
                                                "columns": list(batch_io.COLUMN_NAMES)}, indent=1))


class _Assembly:
    """The result file, assembled while the job runs.

    Each part is appended as soon as it and every part before it are done (in task order), to
    a temporary file in the checkpoint directory: the parent's share of the work (encoding the
    Parquet result, or copying text parts) overlaps the workers' instead of following them.
    After a kill the temporary file goes with the checkpoints (the next run removes dot files
    there); the result appears, by an atomic rename, only when every part is in.
    """

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self.tmp = config.parts_dir / f".assembly{Path(config.out).suffix or '.' + config.fmt}"
        self.assembler = batch_io.PartAssembler(self.tmp, config.fmt)
        self.next = 0
        self.ready: set[int] = set()

    def done(self, index: int) -> None:
        """Task ``index`` has its part: append every part now in order."""
        self.ready.add(index)
        while self.next in self.ready:
            self.ready.discard(self.next)
            self.assembler.append(part_paths(self.config, self.next)[0])
            self.next += 1

    def finish(self, n_tasks: int) -> None:
        """Append the remaining parts and publish the result atomically."""
        for index in range(self.next, n_tasks):
            self.done(index)
        self.assembler.close()
        move_into_place(self.tmp, self.config.out)   # durably

    def abort(self) -> None:
        """Close the temporary file (it stays among the checkpoints)."""
        self.assembler.abort()


class _Prefetch:
    """Asks the operating system to read each archive task's scans as the task is handed out
    (:meth:`ramanid.io.archive.ArchiveReader.prefetch`), keeping one archive open."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.path: str | None = None
        self.reader: Any = None

    def __call__(self, task: Task) -> None:
        if not self.enabled or task.kind != "archive":
            return
        if task.path != self.path:
            from ramanid.io.archive import ArchiveReader

            self.close()
            self.path = task.path
            with contextlib.suppress(InputError):   # the task itself reports the archive
                self.reader = ArchiveReader(task.path)
        if self.reader is not None:
            self.reader.prefetch(task.start, task.stop)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.reader = None


def _assemble(config: JobConfig, n_tasks: int, summary: Summary, assembly: _Assembly) -> None:
    d = config.parts_dir
    parts = [part_paths(config, i)[0] for i in range(n_tasks)]
    missing = [p for p in parts if not p.exists()]
    if missing:
        raise InputError(f"{len(missing)} chunk results are missing", source=d,
                         hint="run again with --resume")
    if config.changes_path:
        _assemble_changes(config, n_tasks)
    assembly.finish(n_tasks)
    atomic_write_text(config.summary_path, json.dumps(summary.to_dict(), indent=1))
    batch_io.remove_tree(d)


def _assemble_changes(config: JobConfig, n_tasks: int) -> None:
    """Write the change report, new hazard hits first (one pass per change kind, streaming)."""
    files = [part_paths(config, i)[2] for i in range(n_tasks)]
    sink = batch_io.TableSink(config.changes_path, config.fmt, batch_io.CHANGE_COLUMNS)
    with sink:
        for kind in CHANGE_ORDER:
            for f in files:
                if not f.exists():
                    continue
                rows = [r for r in batch_io.iter_results(f, "jsonl") if r["change"] == kind]
                if rows:
                    sink.write_rows(rows)


@dataclass
class BatchOptions:
    """Options of :func:`run_batch` (the command line's, as an object)."""

    out: str
    fmt: str | None = None
    library: str | None = None
    old_library: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = False
    executor: str = "processes"
    dask_processes: bool = True
    progress: bool | None = None
    engine: str = "ramanid.batch_task:engine_processor"


def run_batch(inputs: Sequence[str | Path], options: BatchOptions) -> Summary:
    """Run (or resume) a batch job; return the summary of the whole job.

    Parameters
    ----------
    inputs
        Directories (walked recursively) and scan archives.
    options
        See :class:`BatchOptions`. ``workers`` defaults to the number of usable cores;
        ``scheduler`` is None (local), ``"local"`` (a Dask LocalCluster) or a Dask scheduler
        address; ``progress`` None means "when stderr is a terminal".

    Raises
    ------
    InputError
        A missing input, an unreadable library or archive structure: the job cannot run.
    UsageError
        Bad options, or ``resume`` with checkpoints of a different job.
    """
    fmt = batch_io.check_format(options.fmt or batch_io.format_from_suffix(options.out))
    _check_out(Path(options.out), fmt)
    if options.chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1, not {options.chunk_size}")
    workers = options.workers or usable_cores()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if options.executor not in ("processes", "threads"):
        raise UsageError(f"unknown executor {options.executor!r}", hint="processes or threads")
    config = JobConfig(out=str(Path(options.out).resolve()), fmt=fmt,
                       library=_abs(options.library), old_library=_abs(options.old_library),
                       chunk_size=options.chunk_size, inputs=check_inputs(inputs),
                       engine=options.engine)
    if options.resume and not config.parts_dir.exists() and Path(config.out).exists() \
            and config.summary_path.exists():
        # the job had already finished: report it again
        return Summary.from_dict(json.loads(config.summary_path.read_text()))
    # A bad library stops the job before any work. In-process runs build the engine here once,
    # and so do runs on forked worker processes, which inherit it (~14 MiB, shared until
    # written): each worker then starts its first chunk ~0.15 s sooner. Otherwise (Dask,
    # spawned workers) the parent only checks the library files (lighter on memory).
    in_process = not options.scheduler and (workers == 1 or options.executor == "threads")
    inherited = not options.scheduler and not in_process and start_method() == "fork"
    for lib in [config.library, *([config.old_library] if config.old_library else [])]:
        if in_process or inherited or config.engine != JobConfig.engine:
            get_processor(config, lib)
        else:
            from ramanid.library import load_library

            load_library(lib)
    _check_job_dir(config, options.resume)

    part_glob = f"part-*.{batch_io.part_format(fmt)}"
    done = {int(p.name[5:13]) for p in config.parts_dir.glob(part_glob)}
    summary = Summary()
    n_tasks = 0
    assembly = _Assembly(config)
    # archive chunks are read from disk ahead of the workers on this machine (not for a remote
    # Dask cluster, whose workers read the files where they are)
    prefetch = _Prefetch(options.scheduler in (None, "local"))

    def todo() -> Iterator[Task]:
        nonlocal n_tasks
        for task in iter_tasks(config):
            n_tasks = task.index + 1
            saved = checkpoint(config, task.index) if task.index in done else None
            if saved is not None:
                if saved.get("digest") != task.digest:
                    raise UsageError(f"--resume: the inputs changed since the interrupted run "
                                     f"(chunk {task.index} now covers other scans)",
                                     hint="drop --resume to start the job again")
                summary.add(Summary.from_dict(saved))
                bar.update(task.size)
                assembly.done(task.index)
                continue
            prefetch(task)
            yield task

    show = sys.stderr.isatty() if options.progress is None else options.progress
    bar = _progress(config, show)
    sizes: dict[int, int] = {}
    try:
        tasks = _track(todo(), sizes)
        if options.scheduler:
            results = run_dask(tasks, config, options.scheduler, workers,
                                options.dask_processes)
        elif workers == 1:
            results = run_inline(tasks, config)
        else:
            results = run_pool(tasks, config, workers, options.executor)
        for result in results:
            summary.add(Summary.from_dict(result))
            bar.update(sizes.pop(int(result["task"]), 0))
            assembly.done(int(result["task"]))
        if n_tasks:
            _assemble(config, n_tasks, summary, assembly)
    except BrokenProcessPool as exc:
        raise InputError("a worker process died (out of memory, or killed)",
                         source=config.out,
                         hint="finished chunks are kept: run again with --resume, with a "
                              "smaller --chunk-size or fewer --workers") from exc
    finally:
        bar.close()
        prefetch.close()
        close_readers()   # archives kept open by tasks run in this process
        assembly.abort()
    if n_tasks == 0:
        batch_io.remove_tree(config.parts_dir)
        raise InputError("no scan files found in the inputs",
                         source=", ".join(config.inputs),
                         hint="give directories holding scan files (.csv, .txt, .spc, .jdx, "
                              "...) or ramanid scan archives")
    return summary


def _check_out(out: Path, fmt: str) -> None:
    """Refuse a result path that contradicts ``fmt`` or cannot be created, before any work."""
    try:
        named = batch_io.format_from_suffix(out)
    except UsageError:
        named = None          # an extension that names no format: --format decides
    if named is not None and named != fmt:
        raise UsageError(f"--format {fmt} contradicts the result file name {out.name!r} "
                         f"({named})", hint=f"name the file *.{fmt}, or drop --format")
    if out.is_dir():
        raise InputError("cannot create the result file: it is a directory", source=out,
                         hint="give a file name, e.g. results.parquet")
    if not out.resolve().parent.is_dir():
        raise InputError("cannot create the result file: its folder does not exist",
                         source=out, hint="create the folder first")


def usable_cores() -> int:
    """Number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _track(tasks: Iterator[Task], sizes: dict[int, int]) -> Iterator[Task]:
    for t in tasks:
        sizes[t.index] = t.size
        yield t


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(config: JobConfig, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    try:
        width, height = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        width = height = 0
    # a terminal that reports no size (0 x 0) would make tqdm hide the bar: assume 100 x 20
    return tqdm(total=count_scans(config), unit="scan", file=sys.stderr,
                ncols=width if width >= 40 else 100, nrows=height if height >= 2 else 20,
                smoothing=0.1, desc="ramanid batch", mininterval=0.2)


def exit_status(summary: Summary) -> int:
    """3 when any scan raised a hazard alarm, else 0."""
    return EXIT_HAZARD if summary.hazards else EXIT_OK
