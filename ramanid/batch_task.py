"""Running one task of a batch job in a worker: read, identify, compare, checkpoint.

Everything here runs wherever the task runs (the calling process, a local process or thread
pool, a Dask worker); :func:`run_task` is the one entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ramanid import batch_io
from ramanid.atomic import atomic_path, atomic_write_text
from ramanid.batch_job import SYSTEMIC_FAILURE, JobConfig, Summary, Task
from ramanid.blas import one_blas_thread
from ramanid.errors import InputError
from ramanid.hazard import is_alarm
from ramanid.memory import keep_heap
from ramanid.spectrum import SpectrumBatch

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

    Returns a function mapping a batch (and optionally its metadata as columns) to its verdict
    columns (see :func:`ramanid.batch_engine.make_engine_processor`).
    """
    from ramanid.batch_engine import make_engine_processor

    return make_engine_processor(library)


# -- running one task ----------------------------------------------------------------------------
def part_paths(config: JobConfig, index: int) -> tuple[Path, Path, Path]:
    d = config.parts_dir
    ext = batch_io.part_format(config.fmt)
    return (d / f"part-{index:08d}.{ext}", d / f"part-{index:08d}.summary.json",
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


# -- archive readers kept open in a worker -------------------------------------------------------
_READERS: dict[str, list[Any]] = {}
_READERS_LOCK = threading.Lock()
#: Archives a worker keeps open at once (a job reads its archives one after the other).
_MAX_READERS = 2
#: Blocks read through one open reader before it is opened afresh: HDF5's caches of an open
#: file (chunk index, metadata) grow as the reads move through it, and memory must not grow
#: with the number of scans.
_READER_USES = 16


def archive_reader(path: str) -> Any:
    """An open :class:`~ramanid.io.archive.ArchiveReader` of ``path``, kept for the next task.

    The next task of the same archive then skips opening the file, and the metadata columns'
    chunks (16384 rows, several tasks' worth) are decoded once instead of once per task. A
    reader is reused only while the file is the same one (inode, size, modification time),
    and for :data:`_READER_USES` blocks at most (bounded memory).

    Raises
    ------
    InputError
        As :class:`~ramanid.io.archive.ArchiveReader`.
    """
    from ramanid.io.archive import ArchiveReader

    try:
        st = os.stat(path)
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        sig = (0, 0, 0)
    with _READERS_LOCK:
        hit = _READERS.pop(path, None)
        if hit is not None and hit[0] == sig and sig != (0, 0, 0) and hit[2] < _READER_USES:
            hit[2] += 1
            _READERS[path] = hit            # most recently used last
            return hit[1]
        # a reader dropped here is not closed: a task of another thread may still be reading
        # with it (the file closes when the last reference goes)
        reader = ArchiveReader(path)
        while len(_READERS) >= _MAX_READERS:
            _READERS.pop(next(iter(_READERS)))
        _READERS[path] = [sig, reader, 1]
        return reader


def close_readers() -> None:
    """Close the archives this process keeps open (end of a job run in this process, when no
    task runs any more)."""
    with _READERS_LOCK:
        while _READERS:
            _READERS.popitem()[1][1].close()


# -- identifying ---------------------------------------------------------------------------------
class _Rows:
    """Scans to identify: a batch with ids and sources, and its metadata as columns when the
    batch carries none (archive blocks on the default engine)."""

    def __init__(self, batch: SpectrumBatch, ids: np.ndarray, sources: np.ndarray,
                 meta: Any = None) -> None:
        self.batch, self.ids, self.sources, self.meta = batch, ids, sources, meta

    def __len__(self) -> int:
        return len(self.batch)

    def part(self, a: int, b: int) -> _Rows:
        return _Rows(self.batch[a:b], self.ids[a:b], self.sources[a:b],
                     None if self.meta is None else self.meta.take(slice(a, b)))


def _identify(rows: _Rows, config: JobConfig, library: str | None,
              meta_cols: dict[str, Any] | None = None) -> batch_io.Table:
    """Result rows for a batch; an engine failure is isolated to the scans that cause it.

    ``meta_cols`` are the batch's metadata columns when already at hand (archive blocks).

    Raises
    ------
    InputError
        The engine failed on every scan of a chunk of at least :data:`SYSTEMIC_FAILURE` scans:
        that is a broken engine or library, not bad scans, so the job stops (finished chunks
        stay checkpointed for ``--resume``).
    """
    table, failed = _identify_isolating(rows, config, library)
    if failed == len(rows) >= SYSTEMIC_FAILURE:
        raise InputError(f"the engine failed on every scan of a chunk: {table['error'][0]}",
                         source=rows.sources[0],
                         hint="finished chunks are kept; fix the cause and run with --resume")
    if meta_cols is None:
        meta_cols = _meta_columns(rows.batch.meta)
    table.update({k: batch_io.as_column(v, batch_io.COLUMN_KIND[k])
                  for k, v in meta_cols.items()})
    return table


def _identify_isolating(rows: _Rows, config: JobConfig,
                        library: str | None) -> tuple[batch_io.Table, int]:
    """Verdict rows and the number of scans the engine failed on (halving on failure)."""
    proc = get_processor(config, library)
    try:
        verdicts = proc(rows.batch) if rows.meta is None else proc(rows.batch, rows.meta)
    except Exception as exc:  # the engine failed on this chunk: isolate the culprit(s)
        if len(rows) == 1:
            return _error_table(rows.sources.tolist(), rows.ids, f"engine error: {exc}"), 1
        half = len(rows) // 2
        a, fa = _identify_isolating(rows.part(0, half), config, library)
        b, fb = _identify_isolating(rows.part(half, len(rows)), config, library)
        return batch_io.concat_tables([a, b]), fa + fb
    n = len(rows)
    verdicts["scan_id"] = rows.ids
    verdicts["source"] = rows.sources
    verdicts["status"] = batch_io.filled(n, "ok")
    return batch_io.make_table(n, **verdicts), 0


def _read_task(task: Task) -> tuple[list[SpectrumBatch], list[tuple[int, batch_io.Table]]]:
    """A files task's readable scans, and error rows for each file that could not be read.

    Each error table comes with its position: the number of batches read before that file.
    """
    from ramanid.io import read_batches, require_raman

    batches: list[SpectrumBatch] = []
    errors: list[tuple[int, batch_io.Table]] = []
    for f in task.files:
        try:
            batches.extend([require_raman(b, f) for b in read_batches(f)])
        except InputError as exc:
            reason = exc.message + (f"; {exc.hint}" if exc.hint else "")
            errors.append((len(batches), _error_table([f], [_path_id(f)], reason)))
        except Exception as exc:  # a reader bug must not stop an archive-wide job
            errors.append((len(batches), _error_table(
                [f], [_path_id(f)], f"cannot read ({type(exc).__name__}: {exc})")))
    return batches, errors


def _archive_rows(task: Task, config: JobConfig) -> tuple[_Rows | None, batch_io.Table | None,
                                                            dict[str, Any] | None]:
    """An archive task's scans (or the error rows of a damaged part) and metadata columns.

    On the default engine the batch carries no per-row dicts (its metadata stays columns);
    ids are the stored ones (computed only for rows stored without one).
    """
    from ramanid.batch_engine import EngineProcessor, MetaColumns, bare_batch
    from ramanid.io.archive import scan_ids

    try:
        block = archive_reader(task.path).read_block(task.start, task.stop)
    except InputError as exc:   # a damaged part of the archive: record it, go on
        sources = [f"{task.path}#{i}" for i in range(task.start, task.stop)]
        return None, _error_table(sources, [_path_id(s) for s in sources], exc.message), None
    columns = block.meta_columns(task.path)
    meta = MetaColumns(columns, len(block))
    ids = block.scan_id
    missing = np.flatnonzero(ids == "")
    if missing.size:
        ids = ids.copy()
        part = SpectrumBatch(block.axis, block.intensity[missing],
                             [meta.row(i) for i in missing.tolist()])
        ids[missing] = scan_ids(part)
    libraries = [config.library, *([config.old_library] if config.old_library else [])]
    if all(isinstance(get_processor(config, lib), EngineProcessor) for lib in libraries):
        try:
            rows = _Rows(bare_batch(block.axis, block.intensity), ids, columns["source"], meta)
        except InputError:   # unusable values: let the full batch say which row
            rows = _Rows(block.to_batch(task.path), ids, columns["source"])
    else:   # another engine may read the rows' metadata dicts
        rows = _Rows(block.to_batch(task.path), ids, columns["source"])
    return rows, None, _array_meta_columns(columns)   # (source and scan_id are skipped)


def process_task(task: Task, config: JobConfig) -> tuple[batch_io.Table, batch_io.Table | None]:
    """Read and identify one task's scans: its result table (in input order) and changes."""
    if task.kind == "archive":
        rows, error, block_meta = _archive_rows(task, config)
        if rows is None:
            assert error is not None
            return error, (batch_io.make_table(0, batch_io.CHANGE_COLUMNS)
                           if config.old_library else None)
        table = _identify(rows, config, config.library, block_meta)
        changes = None
        if config.old_library:
            changes = compare_tables(_identify(rows, config, config.old_library, block_meta),
                                     table)
        return table, changes
    from ramanid.io.archive import scan_ids

    batches, errors = _read_task(task)
    # Identify scans sharing an axis together (one engine call per axis), then restore order.
    groups: dict[bytes, list[int]] = {}
    for i, b in enumerate(batches):
        groups.setdefault(b.axis.tobytes(), []).append(i)
    tables: list[tuple[list[int], batch_io.Table]] = []
    old_tables: list[batch_io.Table] = []
    for members in groups.values():
        batch = batches[members[0]] if len(members) == 1 else SpectrumBatch.concat(
            [batches[i] for i in members])
        rows = _Rows(batch, scan_ids(batch), np.array(batch.sources(), dtype=object))
        tables.append((members, _identify(rows, config, config.library)))
        if config.old_library:
            old_tables.append(_identify(rows, config, config.old_library))
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
    kinds = batch_io.filled(n, None)
    ol, nl = old["hazard_level"].tolist(), new["hazard_level"].tolist()
    osub, nsub = old["hazard_substances"].tolist(), new["hazard_substances"].tolist()
    ov, nv = old["verdict"].tolist(), new["verdict"].tolist()
    ot, nt = old["top_id"].tolist(), new["top_id"].tolist()
    for i in range(n):
        o_alarm = is_alarm(ol[i])
        n_alarm = is_alarm(nl[i])
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


def run_task(task: Task, config: JobConfig) -> dict[str, Any]:
    """Run one task and checkpoint it; return its summary (as a dict). Idempotent.

    The summary file and the change rows are written (atomically) before the part file, whose
    appearance marks the task done.
    """
    part, summary_file, changes_file = part_paths(config, task.index)
    saved = checkpoint(config, task.index)
    if saved is not None:
        return saved
    keep_heap()   # this process runs chunk after chunk: reuse the engine's large arrays
    with one_blas_thread():
        table, changes = process_task(task, config)
    summary = Summary.of_table(table, changes).to_dict()
    summary["task"] = task.index
    summary["digest"] = task.digest
    # checkpoints are not fsync'd (ramanid.atomic): their sizes go into the summary, and
    # checkpoint() redoes a task whose files have other sizes (cut short by a power failure)
    if changes is not None:
        batch_io.write_table(changes, changes_file, "jsonl", batch_io.CHANGE_COLUMNS,
                             durable=False)
        summary["changes_bytes"] = changes_file.stat().st_size
    with atomic_path(part, durable=False) as tmp:
        batch_io.write_file(table, tmp, batch_io.part_format(config.fmt))
        summary["part_bytes"] = tmp.stat().st_size
        atomic_write_text(summary_file, json.dumps(summary), durable=False)
    return summary


def checkpoint(config: JobConfig, index: int) -> dict[str, Any] | None:
    """The saved summary of task ``index`` if its checkpoint is complete, else None.

    Complete: the part file exists, the summary reads, and the part (and the change rows of a
    ``--since-library`` job) have the sizes the summary recorded. An incomplete checkpoint's
    files are removed (the task is then run again).
    """
    part, summary_file, changes_file = part_paths(config, index)
    if not part.exists():
        return None
    try:
        saved = json.loads(summary_file.read_text())
        ok = isinstance(saved, dict) and saved.get("part_bytes") == part.stat().st_size
        if ok and config.old_library:
            ok = saved.get("changes_bytes") == changes_file.stat().st_size
    except (OSError, ValueError):
        ok = False
    if ok:
        return saved
    for f in (part, summary_file, changes_file):
        with contextlib.suppress(OSError):
            f.unlink()
    return None

