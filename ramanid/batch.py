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
   its own part file ``<out>.parts/part-<index>.<fmt>`` atomically, after a small summary file
   beside it. A part file exists only when its task is complete: that is the checkpoint.
3. **Assemble.** When every task has a part, the parts are concatenated in task order into
   ``<out>`` atomically (memory: one part at a time), the counts into ``<out>.summary.json``,
   and the checkpoint directory is removed.

``--resume`` skips tasks whose part exists, so after ``kill -9`` at any point every scan appears
in the final results exactly once. A file that cannot be read, or a chunk the engine fails on,
is recorded as rows with ``status = "error"`` and the reason; the job goes on.

Memory bound
------------
Per worker: one chunk of scans (``chunk_size x n_points x 8`` bytes as read, plus the engine's
working arrays for that chunk) and one part's result table. The parent holds only task
descriptors for at most ``2 x workers`` tasks in flight and the running counts: nothing grows
with the number of scans.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ramanid import batch_io
from ramanid.atomic import atomic_write_text
from ramanid.errors import EXIT_HAZARD, EXIT_OK, InputError, UsageError
from ramanid.spectrum import SpectrumBatch

DEFAULT_CHUNK_SIZE = 2048
#: A chunk of at least this many scans on which the engine fails for every scan stops the job.
SYSTEMIC_FAILURE = 4
JOB_FILE = "job.json"
#: Order of change kinds in the ``--since-library`` report.
CHANGE_ORDER = ("new_hazard", "hazard_changed", "hazard_cleared", "verdict_changed",
                "identity_changed")
_HAZARD_RANK = {"none": 0, "low": 1, "high": 2, "extreme": 3}


# -- job description -----------------------------------------------------------------------------
@dataclass(frozen=True)
class JobConfig:
    """Everything a worker needs to run a task (picklable, sent to every worker).

    Attributes
    ----------
    out
        Final result file.
    fmt
        Result format: ``parquet``, ``csv`` or ``jsonl``.
    library
        Library file (None: the default library).
    old_library
        Library to compare against (``--since-library``), or None.
    chunk_size
        Scans per archive task / files per directory task.
    inputs
        Absolute input paths, in the order given.
    engine
        ``"module:function"`` of the chunk processor factory (see :func:`engine_processor`).
    """

    out: str
    fmt: str
    library: str | None
    old_library: str | None
    chunk_size: int
    inputs: tuple[str, ...]
    engine: str = "ramanid.batch:engine_processor"

    @property
    def parts_dir(self) -> Path:
        """Checkpoint directory beside the output."""
        return Path(self.out + ".parts")

    @property
    def summary_path(self) -> Path:
        """Summary file written next to the output when the job completes."""
        return Path(self.out + ".summary.json")

    @property
    def changes_path(self) -> Path | None:
        """Change report path (``--since-library`` only): ``<stem>.changes.<ext>``."""
        if not self.old_library:
            return None
        p = Path(self.out)
        return p.with_name(f"{p.stem}.changes{p.suffix or '.' + self.fmt}")

    def fingerprint(self) -> dict[str, Any]:
        """What must match for ``--resume`` to continue a job."""
        return {"inputs": list(self.inputs), "chunk_size": self.chunk_size, "fmt": self.fmt,
                "library": self.library, "old_library": self.old_library,
                "engine": self.engine}


@dataclass(frozen=True)
class Task:
    """One unit of work: a range of archive scans or a list of files."""

    index: int
    kind: str                       # "archive" or "files"
    path: str = ""
    start: int = 0
    stop: int = 0
    files: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Number of scans (archive) or files (directory) in the task."""
        return self.stop - self.start if self.kind == "archive" else len(self.files)


@dataclass
class Summary:
    """Counts of a job (or of one task)."""

    scans: int = 0
    errors: int = 0
    verdicts: Counter = field(default_factory=Counter)
    hazard_levels: Counter = field(default_factory=Counter)
    hazard_substances: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        """Add another summary's counts to this one."""
        self.scans += other.scans
        self.errors += other.errors
        self.verdicts.update(other.verdicts)
        self.hazard_levels.update(other.hazard_levels)
        self.hazard_substances.update(other.hazard_substances)
        self.changes.update(other.changes)
        room = 10 - len(self.error_examples)
        if room > 0:
            self.error_examples.extend(other.error_examples[:room])

    @property
    def hazards(self) -> int:
        """Number of scans with a hazard level other than none."""
        return sum(n for level, n in self.hazard_levels.items() if level != "none")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        for k in ("verdicts", "hazard_levels", "hazard_substances", "changes"):
            d[k] = dict(sorted(getattr(self, k).items(), key=lambda kv: (-kv[1], kv[0])))
        d["hazards"] = self.hazards
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        """Inverse of :meth:`to_dict`."""
        return cls(scans=int(d.get("scans", 0)), errors=int(d.get("errors", 0)),
                   verdicts=Counter(d.get("verdicts", {})),
                   hazard_levels=Counter(d.get("hazard_levels", {})),
                   hazard_substances=Counter(d.get("hazard_substances", {})),
                   changes=Counter(d.get("changes", {})),
                   error_examples=list(d.get("error_examples", [])))

    @classmethod
    def of_table(cls, table: batch_io.Table, changes: batch_io.Table | None = None) -> Summary:
        """Counts of one result table."""
        s = cls(scans=batch_io.table_len(table))
        status = table["status"]
        err = status == "error"
        s.errors = int(err.sum())
        s.error_examples = [f"{src}: {msg}" for src, msg in
                            zip(table["source"][err][:10], table["error"][err][:10], strict=True)]
        s.verdicts = Counter(v for v in table["verdict"].tolist() if v is not None)
        s.hazard_levels = Counter(v for v in table["hazard_level"].tolist() if v is not None)
        for text in table["hazard_substances"][_hazard_mask(table["hazard_level"])].tolist():
            for name in json.loads(text) if text else []:
                s.hazard_substances[_substance_name(name)] += 1
        if changes is not None:
            s.changes = Counter(changes["change"].tolist())
        return s

    def render(self) -> str:
        """Human-readable end-of-job summary."""
        lines = [f"scans: {self.scans}    failures (unreadable / engine error): {self.errors}"]
        if self.verdicts:
            lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in
                                                  sorted(self.verdicts.items())))
        if self.hazards:
            levels = ", ".join(f"{k} {v}" for k, v in sorted(
                self.hazard_levels.items(), key=lambda kv: -_HAZARD_RANK.get(kv[0], 0))
                if k != "none")
            lines.append(f"HAZARD ALARMS: {self.hazards} scans ({levels})")
            top = ", ".join(f"{k} {v}" for k, v in self.hazard_substances.most_common(10))
            if top:
                lines.append(f"  substances: {top}")
        else:
            lines.append("hazard alarms: 0")
        if self.changes:
            lines.append("changes since old library: " + ", ".join(
                f"{k} {self.changes[k]}" for k in CHANGE_ORDER if self.changes.get(k)))
        for ex in self.error_examples[:5]:
            lines.append(f"  failed: {ex}")
        return "\n".join(lines)


def _hazard_mask(levels: np.ndarray) -> np.ndarray:
    return np.array([lv not in (None, "none") for lv in levels.tolist()], dtype=bool)


def _substance_name(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("id") or item)
    return str(item)


# -- planning ------------------------------------------------------------------------------------
def _is_scan_file(path: Path) -> bool:
    from ramanid.io import READ_EXTENSIONS

    return path.suffix.lower() in READ_EXTENSIONS and not path.name.startswith(".")


def walk_files(directory: Path, exclude: Sequence[Path] = ()) -> Iterator[Path]:
    """Scan files under ``directory``, recursively, in a deterministic (sorted) order.

    Hidden files and directories and the paths in ``exclude`` (the job's own output) are skipped.
    """
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
            yield from walk_files(path, exclude)
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


# -- the engine side -----------------------------------------------------------------------------
Processor = Callable[[SpectrumBatch], batch_io.Table]
_PROCESSORS: dict[tuple[str, str | None], Processor] = {}


def _import(spec: str) -> Callable[..., Any]:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def get_processor(config: JobConfig, library: str | None) -> Processor:
    """The chunk processor for ``library``, built once per worker process and cached."""
    key = (config.engine, library)
    proc = _PROCESSORS.get(key)
    if proc is None:
        proc = _import(config.engine)(library)
        _PROCESSORS[key] = proc
    return proc


def engine_processor(library: str | None) -> Processor:
    """Chunk processor on the real engine: ``Identifier(load_library(library)).run``.

    Returns a function mapping a batch to its verdict columns (see
    :func:`ramanid.batch_engine.result_columns`).
    """
    from ramanid.batch_engine import make_engine_processor

    return make_engine_processor(library)


# -- running one task ----------------------------------------------------------------------------
def _part_paths(config: JobConfig, index: int) -> tuple[Path, Path, Path]:
    d = config.parts_dir
    return (d / f"part-{index:08d}.{config.fmt}", d / f"part-{index:08d}.summary.json",
            d / f"changes-{index:08d}.jsonl")


def _error_table(sources: Sequence[str], ids: Sequence[str], message: str,
                 meta: Sequence[dict[str, Any]] | None = None) -> batch_io.Table:
    n = len(sources)
    cols: dict[str, Any] = {"scan_id": list(ids), "source": list(sources),
                            "status": ["error"] * n, "error": [message] * n}
    if meta is not None:
        cols.update(_meta_columns(meta))
    return batch_io.make_table(n, **cols)


_META_SKIP = {*batch_io.META_COLUMNS, "source", "scan_id"}


def _meta_columns(meta: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metadata columns (and ``meta_extra`` JSON for non-standard keys) from per-row dicts."""
    cols: dict[str, Any] = {k: [m.get(k) for m in meta] for k in batch_io.META_COLUMNS}
    extra = []
    for m in meta:
        e = {k: v for k, v in m.items() if k not in _META_SKIP and v is not None}
        extra.append(e or None)
    cols["meta_extra"] = extra
    return cols


def _array_meta_columns(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same from column arrays (archive blocks): per-row work only for extra keys."""
    cols: dict[str, Any] = {}
    for k, col in arrays.items():
        if k in batch_io.COLUMN_KIND and k in batch_io.META_COLUMNS:
            kind = batch_io.COLUMN_KIND[k]
            numeric = col.dtype.kind in "fiu"
            cols[k] = col if numeric == (kind == "float") else [
                None if v is None or (isinstance(v, float) and v != v) else v
                for v in col.tolist()]
    extra_keys = [k for k in arrays if k not in _META_SKIP]
    if extra_keys:
        lists = [arrays[k].tolist() for k in extra_keys]
        extra = []
        for values in zip(*lists, strict=True):
            e = {k: v for k, v in zip(extra_keys, values, strict=True)
                 if v is not None and not (isinstance(v, float) and v != v)}
            extra.append(e or None)
        cols["meta_extra"] = extra
    return cols


def _path_id(path: str) -> str:
    return hashlib.blake2b(("unreadable:" + path).encode(), digest_size=16).hexdigest()


def _identify(batch: SpectrumBatch, ids: np.ndarray, config: JobConfig,
              library: str | None, meta_cols: dict[str, Any] | None = None) -> batch_io.Table:
    """Result rows for a batch; an engine failure is isolated to the scans that cause it.

    ``meta_cols`` are the batch's metadata columns when already at hand (archive blocks).

    Raises
    ------
    InputError
        The engine failed on every scan of a chunk of at least :data:`SYSTEMIC_FAILURE` scans:
        that is a broken engine or library, not bad scans, so the job stops (finished chunks
        stay checkpointed for ``--resume``).
    """
    table, failed = _identify_isolating(batch, ids, config, library)
    if failed == len(batch) >= SYSTEMIC_FAILURE:
        raise InputError(f"the engine failed on every scan of a chunk: {table['error'][0]}",
                         source=batch.meta[0].get("source"),
                         hint="finished chunks are kept; fix the cause and run with --resume")
    if meta_cols is None:
        meta_cols = _meta_columns(batch.meta)
    table.update({k: batch_io.as_column(v, batch_io.COLUMN_KIND[k])
                  for k, v in meta_cols.items()})
    return table


def _identify_isolating(batch: SpectrumBatch, ids: np.ndarray, config: JobConfig,
                        library: str | None) -> tuple[batch_io.Table, int]:
    """Verdict rows and the number of scans the engine failed on (halving on failure)."""
    proc = get_processor(config, library)
    try:
        verdicts = proc(batch)
    except Exception as exc:  # the engine failed on this chunk: isolate the culprit(s)
        if len(batch) == 1:
            return _error_table(batch.sources(), ids, f"engine error: {exc}"), 1
        half = len(batch) // 2
        a, fa = _identify_isolating(batch[:half], ids[:half], config, library)
        b, fb = _identify_isolating(batch[half:], ids[half:], config, library)
        return batch_io.concat_tables([a, b]), fa + fb
    verdicts["scan_id"] = ids
    verdicts["source"] = np.array(batch.sources(), dtype=object)
    verdicts["status"] = np.full(len(batch), "ok", dtype=object)
    return batch_io.make_table(len(batch), **verdicts), 0


def _read_task(task: Task) -> tuple[list[SpectrumBatch], list[tuple[int, batch_io.Table]],
                                   dict[str, Any] | None]:
    """The task's readable scans, and error rows for each file that could not be read.

    Each error table comes with its position: the number of batches read before that file.
    For an archive task, the third item holds the metadata columns of its one batch.
    """
    if task.kind == "archive":
        from ramanid.io.archive import ArchiveReader

        try:
            with ArchiveReader(task.path) as reader:
                block = reader.read_block(task.start, task.stop)
        except InputError as exc:   # a damaged part of the archive: record it, go on
            sources = [f"{task.path}#{i}" for i in range(task.start, task.stop)]
            return [], [(0, _error_table(sources, [_path_id(s) for s in sources],
                                         exc.message))], None
        return [block.to_batch(task.path)], [], _array_meta_columns(block.meta_arrays())
    from ramanid.io import read_batches

    batches: list[SpectrumBatch] = []
    errors: list[tuple[int, batch_io.Table]] = []
    for f in task.files:
        try:
            batches.extend(read_batches(f))
        except InputError as exc:
            reason = exc.message + (f"; {exc.hint}" if exc.hint else "")
            errors.append((len(batches), _error_table([f], [_path_id(f)], reason)))
        except Exception as exc:  # a reader bug must not stop an archive-wide job
            errors.append((len(batches), _error_table(
                [f], [_path_id(f)], f"cannot read ({type(exc).__name__}: {exc})")))
    return batches, errors, None


def process_task(task: Task, config: JobConfig) -> tuple[batch_io.Table, batch_io.Table | None]:
    """Read and identify one task's scans: its result table (in input order) and changes."""
    from ramanid.io.archive import scan_ids

    batches, errors, block_meta = _read_task(task)
    # Identify scans sharing an axis together (one engine call per axis), then restore order.
    groups: dict[bytes, list[int]] = {}
    for i, b in enumerate(batches):
        groups.setdefault(b.axis.tobytes(), []).append(i)
    tables: list[tuple[list[int], batch_io.Table]] = []
    old_tables: list[batch_io.Table] = []
    for members in groups.values():
        batch = batches[members[0]] if len(members) == 1 else SpectrumBatch.concat(
            [batches[i] for i in members])
        ids = scan_ids(batch)
        tables.append((members, _identify(batch, ids, config, config.library, block_meta)))
        if config.old_library:
            old_tables.append(_identify(batch, ids, config, config.old_library, block_meta))
    # row order: batches in read order, each error row after the batches read before it
    sizes = [len(b) for b in batches]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    keys: list[np.ndarray] = []
    parts: list[batch_io.Table] = []
    old_parts: list[batch_io.Table] = []
    for k, (members, table) in enumerate(tables):
        key = np.concatenate([np.arange(offsets[i], offsets[i + 1]) * 2 + 1 for i in members])
        keys.append(key.astype(float))
        parts.append(table)
        if config.old_library:
            old_parts.append(old_tables[k])
    for pos, err in errors:
        keys.append(np.full(batch_io.table_len(err), offsets[pos] * 2, dtype=float))
        parts.append(err)
        if config.old_library:
            old_parts.append(err)
    if not parts:
        return batch_io.make_table(0), (batch_io.make_table(0, batch_io.CHANGE_COLUMNS)
                                        if config.old_library else None)
    order = np.argsort(np.concatenate(keys), kind="stable")
    table = batch_io.take(batch_io.concat_tables(parts), order)
    changes = None
    if config.old_library:
        old = batch_io.take(batch_io.concat_tables(old_parts), order)
        changes = compare_tables(old, table)
    return table, changes


def compare_tables(old: batch_io.Table, new: batch_io.Table) -> batch_io.Table:
    """Rows whose verdict changed between two libraries, with the kind of change.

    Kinds (in report order): ``new_hazard`` (no alarm before, alarm now), ``hazard_changed``
    (level or substances differ), ``hazard_cleared``, ``verdict_changed``, ``identity_changed``
    (same verdict, different best substance). Score-only changes are not reported.
    """
    n = batch_io.table_len(new)
    kinds = np.full(n, None, dtype=object)
    ol, nl = old["hazard_level"].tolist(), new["hazard_level"].tolist()
    osub, nsub = old["hazard_substances"].tolist(), new["hazard_substances"].tolist()
    ov, nv = old["verdict"].tolist(), new["verdict"].tolist()
    ot, nt = old["top_id"].tolist(), new["top_id"].tolist()
    for i in range(n):
        o_alarm = ol[i] not in (None, "none")
        n_alarm = nl[i] not in (None, "none")
        if n_alarm and not o_alarm:
            kinds[i] = "new_hazard"
        elif n_alarm and (ol[i] != nl[i] or osub[i] != nsub[i]):
            kinds[i] = "hazard_changed"
        elif o_alarm and not n_alarm:
            kinds[i] = "hazard_cleared"
        elif ov[i] != nv[i]:
            kinds[i] = "verdict_changed"
        elif nv[i] in ("match", "mixture") and ot[i] != nt[i]:
            kinds[i] = "identity_changed"
    rows = np.flatnonzero(kinds != None)  # noqa: E711 - elementwise on an object array
    return batch_io.make_table(
        len(rows), batch_io.CHANGE_COLUMNS,
        change=kinds[rows], scan_id=new["scan_id"][rows], source=new["source"][rows],
        old_verdict=old["verdict"][rows], new_verdict=new["verdict"][rows],
        old_top_name=old["top_name"][rows], new_top_name=new["top_name"][rows],
        old_top_score=old["top_score"][rows], new_top_score=new["top_score"][rows],
        old_hazard_level=old["hazard_level"][rows], new_hazard_level=new["hazard_level"][rows],
        new_hazard_substances=new["hazard_substances"][rows],
        new_hazard_message=new["hazard_message"][rows],
        old_library_version=old["library_version"][rows],
        new_library_version=new["library_version"][rows])


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


def run_task(task: Task, config: JobConfig) -> dict[str, Any]:
    """Run one task and checkpoint it; return its summary (as a dict). Idempotent.

    The summary file and the change rows are written (atomically) before the part file, whose
    appearance marks the task done.
    """
    part, summary_file, changes_file = _part_paths(config, task.index)
    if part.exists() and summary_file.exists():
        return json.loads(summary_file.read_text())
    with one_blas_thread():
        table, changes = process_task(task, config)
    summary = Summary.of_table(table, changes).to_dict()
    summary["task"] = task.index
    if changes is not None:
        batch_io.write_table(changes, changes_file, "jsonl", batch_io.CHANGE_COLUMNS)
    atomic_write_text(summary_file, json.dumps(summary))
    batch_io.write_table(table, part, config.fmt)
    return summary


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


def _run_inline(tasks: Iterator[Task], config: JobConfig) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield run_task(task, config)


def _run_pool(tasks: Iterator[Task], config: JobConfig, workers: int,
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

        # "fork" where the platform has it: fast start, and no re-import of the caller's
        # __main__ (so run_batch works from any script or notebook). Each task runs with one
        # BLAS thread anyway (one_blas_thread); the environment covers spawned workers.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with _env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"):
            pool = cf.ProcessPoolExecutor(max_workers=workers,
                                          mp_context=mp.get_context(method))
            list(pool.map(_noop, range(workers)))   # start the workers now
    try:
        yield from _bounded_map(lambda t: pool.submit(run_task, t, config), wait_one, tasks,
                                2 * workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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


def _run_dask(tasks: Iterator[Task], config: JobConfig, scheduler: str, workers: int,
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
    d.mkdir(parents=True, exist_ok=True)
    for tmp in d.glob(".*"):  # temporary files of writes interrupted by a kill
        with contextlib.suppress(OSError):
            tmp.unlink()
    if not job_file.exists():
        atomic_write_text(job_file, json.dumps({"fingerprint": config.fingerprint()}, indent=1))


def _assemble(config: JobConfig, n_tasks: int, summary: Summary) -> None:
    d = config.parts_dir
    parts = [_part_paths(config, i)[0] for i in range(n_tasks)]
    missing = [p for p in parts if not p.exists()]
    if missing:
        raise InputError(f"{len(missing)} chunk results are missing", source=d,
                         hint="run again with --resume")
    if config.changes_path:
        _assemble_changes(config, n_tasks)
    batch_io.concat_files(parts, config.out, config.fmt)
    atomic_write_text(config.summary_path, json.dumps(summary.to_dict(), indent=1))
    batch_io.remove_tree(d)


def _assemble_changes(config: JobConfig, n_tasks: int) -> None:
    """Write the change report, new hazard hits first (one pass per change kind, streaming)."""
    files = [_part_paths(config, i)[2] for i in range(n_tasks)]
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
    engine: str = "ramanid.batch:engine_processor"


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
    if options.chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1, not {options.chunk_size}")
    workers = options.workers or usable_cores()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    config = JobConfig(out=str(Path(options.out).resolve()), fmt=fmt,
                       library=_abs(options.library), old_library=_abs(options.old_library),
                       chunk_size=options.chunk_size, inputs=check_inputs(inputs),
                       engine=options.engine)
    if options.resume and not config.parts_dir.exists() and Path(config.out).exists() \
            and config.summary_path.exists():
        # the job had already finished: report it again
        return Summary.from_dict(json.loads(config.summary_path.read_text()))
    # A bad library stops the job before any work. In-process runs build the engine here once;
    # with worker processes the parent only checks the library files (lighter on memory).
    in_process = not options.scheduler and (workers == 1 or options.executor == "threads")
    for lib in (config.library, config.old_library):
        if lib is None and lib is config.old_library:
            continue
        if in_process or config.engine != JobConfig.engine:
            get_processor(config, lib)
        else:
            from ramanid.library import load_library

            load_library(lib)
    _check_job_dir(config, options.resume)

    done = {int(p.name[5:13]) for p in config.parts_dir.glob(f"part-*.{fmt}")}
    summary = Summary()
    n_tasks = 0

    def todo() -> Iterator[Task]:
        nonlocal n_tasks
        for task in iter_tasks(config):
            n_tasks = task.index + 1
            if task.index in done:
                sfile = _part_paths(config, task.index)[1]
                summary.add(Summary.from_dict(json.loads(sfile.read_text())))
                bar.update(task.size)
                continue
            yield task

    show = sys.stderr.isatty() if options.progress is None else options.progress
    bar = _progress(config, show)
    sizes: dict[int, int] = {}
    try:
        tasks = _track(todo(), sizes)
        if options.scheduler:
            results = _run_dask(tasks, config, options.scheduler, workers,
                                options.dask_processes)
        elif workers == 1:
            results = _run_inline(tasks, config)
        else:
            results = _run_pool(tasks, config, workers, options.executor)
        for result in results:
            summary.add(Summary.from_dict(result))
            bar.update(sizes.pop(int(result["task"]), 0))
    except BrokenProcessPool as exc:
        raise InputError("a worker process died (out of memory, or killed)",
                         source=config.out,
                         hint="finished chunks are kept: run again with --resume, with a "
                              "smaller --chunk-size or fewer --workers") from exc
    finally:
        bar.close()
    if n_tasks == 0:
        batch_io.remove_tree(config.parts_dir)
        raise InputError("no scan files found in the inputs",
                         source=", ".join(config.inputs),
                         hint="give directories holding scan files (.csv, .txt, .spc, .jdx, "
                              "...) or ramanid scan archives")
    _assemble(config, n_tasks, summary)
    return summary


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
