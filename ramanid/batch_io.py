"""Result tables of ``ramanid batch``: the fixed column schema, writers and readers.

A result table is a ``dict`` of equal-length 1-D numpy arrays, one per column of
:data:`RESULT_COLUMNS` (strings as object arrays with ``None`` for unknown, numbers as float64
with NaN for unknown). Nested fields of ``ramanid identify --json`` are flattened: the best
candidate gets its own ``top_id`` / ``top_name`` / ``top_score`` columns and the full lists
(candidates, mixture components, hazard substances, QC figures, recipe) are JSON text.

Formats: Parquet (pyarrow, extra ``ramanid[parquet]``), CSV and JSON Lines (standard library).
In JSON Lines the JSON columns are embedded as JSON values, not strings. Every file is written
atomically (:mod:`ramanid.atomic`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ramanid.atomic import atomic_path
from ramanid.errors import InputError, UsageError

FORMATS = ("parquet", "csv", "jsonl")

#: (name, kind) of every result column, in output order. kind: "str", "float", "json" or "bool"
#: (True/False/None: Parquet boolean, CSV ``true``/``false``, JSON true/false).
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("scan_id", "str"),
    ("source", "str"),
    ("status", "str"),            # "ok" or "error" (file could not be read / processed)
    ("error", "str"),             # why, when status is "error"
    ("verdict", "str"),           # match | mixture | no_match | inconclusive (None on error)
    ("reason", "str"),
    ("hazard_level", "str"),      # none | low | high | extreme
    ("hazard_substances", "json"),
    ("hazard_message", "str"),
    ("top_id", "str"),
    ("top_name", "str"),
    ("top_score", "float"),
    ("candidates", "json"),
    ("components", "json"),
    ("qc_snr", "float"),
    ("qc_saturation", "float"),
    ("qc_fluorescence", "float"),
    ("qc_coverage", "float"),
    ("qc", "json"),
    ("shift_cm1", "float"),
    ("residual_r", "float"),
    ("best_provenance", "str"),
    ("warnings", "json"),
    ("calibration", "json"),      # status of the calibration applied to the scan (as identify)
    ("library_version", "str"),
    ("library_sha256", "str"),
    ("recipe", "json"),
    ("engine_version", "str"),
    ("name", "str"),
    ("device_serial", "str"),
    ("device_model", "str"),
    ("laser_nm", "float"),
    ("integration_ms", "float"),
    ("averages", "float"),
    ("timestamp", "str"),
    ("units", "str"),
    ("calibration_id", "str"),
    ("operator", "str"),
    ("format", "str"),
    ("origin", "str"),
    ("simulated", "bool"),        # True: the scan came from the simulator, not a real sample
    ("meta_extra", "json"),
)
#: Columns of the ``--since-library`` change report, most important change kinds first.
CHANGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("change", "str"),            # new_hazard | hazard_changed | hazard_cleared | verdict_changed
                                  # | identity_changed
    ("scan_id", "str"),
    ("source", "str"),
    ("old_verdict", "str"),
    ("new_verdict", "str"),
    ("old_top_name", "str"),
    ("new_top_name", "str"),
    ("old_top_score", "float"),
    ("new_top_score", "float"),
    ("old_hazard_level", "str"),
    ("new_hazard_level", "str"),
    ("new_hazard_substances", "json"),
    ("new_hazard_message", "str"),
    ("old_library_version", "str"),
    ("new_library_version", "str"),
)
COLUMN_KIND = {**dict(CHANGE_COLUMNS), **dict(RESULT_COLUMNS)}
COLUMN_NAMES = tuple(name for name, _ in RESULT_COLUMNS)
#: Scan metadata columns (copied from the scan, not from the engine).
META_COLUMNS = ("name", "device_serial", "device_model", "laser_nm", "integration_ms",
                "averages", "timestamp", "units", "calibration_id", "operator", "format",
                "origin", "simulated")

#: Text columns with few distinct values within a chunk (enumerations; the library, engine,
#: recipe and calibration identity; warnings; device metadata). Arrow part files hold them as
#: dictionary arrays: each distinct text once per part and an integer code per row, so the
#: ~1.5 KB of repeated text per row is neither copied, compressed nor decompressed, and the
#: Parquet writer takes a part's dictionary as it is instead of hashing every value.
DICTIONARY_COLUMNS = frozenset({
    "status", "error", "verdict", "hazard_level", "hazard_substances", "hazard_message",
    "top_id", "top_name", "components", "best_provenance", "warnings", "calibration",
    "library_version", "library_sha256", "recipe", "engine_version", "device_serial",
    "device_model", "units", "calibration_id", "operator", "format", "origin"})
#: Columns whose value differs in (nearly) every row: the Parquet result stores them without a
#: dictionary (a dictionary of distinct values only costs time to build and space).
UNIQUE_COLUMNS = frozenset({"scan_id", "source", "timestamp", "candidates", "qc"})

Table = dict[str, np.ndarray]
Schema = tuple[tuple[str, str], ...]


# -- building tables -----------------------------------------------------------------------------
def filled(n: int, value: Any) -> np.ndarray:
    """An object array of ``n`` references to the one object ``value``.

    ``np.full(n, text, dtype=object)`` turns a ``str`` into a numpy string first and makes a
    new ``str`` for every element (~20 ns each for a short text, ~120 for a 300-byte one, and
    ``n`` copies in memory); ``fill`` stores the same object everywhere: equal values, so the
    results are the same.
    """
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def empty_column(kind: str, n: int) -> np.ndarray:
    """A column of ``n`` unknown values of the given kind."""
    if kind == "float":
        return np.full(n, np.nan)
    return filled(n, None)


def as_column(values: Iterable[Any] | np.ndarray, kind: str) -> np.ndarray:
    """Coerce values to a column of ``kind`` (None/NaN/"" become unknown).

    Fast path: an object array for a text column is taken to hold ``str`` or None already
    (only ``""`` is turned into None); a numeric array for a float column is cast.
    """
    if kind == "bool":
        return np.array([_as_bool(v) for v in values], dtype=object)
    if isinstance(values, np.ndarray):
        if kind == "float" and values.dtype.kind in "fiub":
            return values.astype(np.float64)
        if kind != "float" and values.dtype == object:
            out = values.copy()
            out[out == ""] = None
            return out
    if kind == "float":
        out = []
        for v in values:
            try:
                out.append(np.nan if v is None or v == "" else float(v))
            except (TypeError, ValueError):
                out.append(np.nan)
        return np.asarray(out, dtype=np.float64)
    vals = list(values)
    arr = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            arr[i] = None
        elif kind == "json":
            arr[i] = v if isinstance(v, str) else json.dumps(v, default=_json_default)
        else:
            arr[i] = v if isinstance(v, str) else str(v)
    return arr


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _as_bool(v: Any) -> bool | None:
    """True/False from a bool, 0/1 or its text (``"True"``, ``"false"``, ...); else None."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        t = v.strip().lower()
        return True if t in _TRUE else False if t in _FALSE else None
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def make_table(n: int, schema: Schema = RESULT_COLUMNS, **columns: Any) -> Table:
    """A full table of ``n`` rows: given columns coerced, all others unknown."""
    unknown = set(columns) - {name for name, _ in schema}
    if unknown:
        raise UsageError(f"unknown result columns: {sorted(unknown)}")
    table: Table = {}
    for name, kind in schema:
        if name in columns and columns[name] is not None:
            col = as_column(columns[name], kind)
            if col.shape[0] != n:
                raise UsageError(f"result column {name} has {col.shape[0]} rows, not {n}")
            table[name] = col
        else:
            table[name] = empty_column(kind, n)
    return table


def table_len(table: Table) -> int:
    """Number of rows."""
    return int(next(iter(table.values())).shape[0])


def concat_tables(tables: list[Table], schema: Schema = RESULT_COLUMNS) -> Table:
    """Stack tables row-wise."""
    if not tables:
        return make_table(0, schema)
    return {name: np.concatenate([t[name] for t in tables]) for name, _ in schema}


def take(table: Table, index: np.ndarray) -> Table:
    """Rows ``index`` of ``table``."""
    return {name: col[index] for name, col in table.items()}


# -- writing -------------------------------------------------------------------------------------
def check_format(fmt: str) -> str:
    """Validate a format name; for parquet, check that pyarrow is installed."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown result format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise UsageError("writing Parquet needs pyarrow",
                             hint="pip install 'ramanid[parquet]', or use --format csv|jsonl"
                             ) from exc
    return fmt


def _arrow_type(name: str, kind: str, dictionary: bool) -> Any:
    import pyarrow as pa

    if kind == "float":
        return pa.float64()
    if kind == "bool":
        return pa.bool_()
    if dictionary and name in DICTIONARY_COLUMNS:
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def _arrow_schema(schema: Schema, dictionary: bool = False) -> Any:
    """The Arrow schema of a table of ``schema`` (``dictionary``: as in part files)."""
    import pyarrow as pa

    return pa.schema([pa.field(name, _arrow_type(name, kind, dictionary))
                      for name, kind in schema])


def _arrow_table(table: Table, schema: Schema, dictionary: bool = False) -> Any:
    """``table`` as an Arrow table; ``dictionary``: :data:`DICTIONARY_COLUMNS` as dictionary
    arrays (the form of part files)."""
    import pyarrow as pa

    arrow_schema = _arrow_schema(schema, dictionary)
    arrays = []
    for field in arrow_schema:
        col = table[field.name]
        if pa.types.is_floating(field.type):
            arrays.append(pa.array(col, type=field.type, mask=np.isnan(col)))
        elif pa.types.is_boolean(field.type):
            arrays.append(pa.array(col.tolist(), type=field.type))
        else:
            arrays.append(pa.array(col, type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _parquet_writer(path: str | Path, schema: Schema) -> Any:
    """A Parquet writer of result tables given in the part files' form (dictionary columns).

    The file is an ordinary Parquet file of UTF-8 strings, doubles and booleans (snappy, one
    row group per part): it stores no Arrow schema, so readers see ``string`` columns, as
    before, whatever the part files held. Columns of :data:`UNIQUE_COLUMNS` are written
    without a dictionary, and JSON columns without min/max statistics (of no use for
    filtering; they only swell the footer, which holds them for every row group).
    """
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, _arrow_schema(schema, dictionary=True), store_schema=False,
                            use_dictionary=[n for n, _ in schema if n not in UNIQUE_COLUMNS],
                            write_statistics=[n for n, k in schema if k != "json"])


def _csv_text(table: Table, schema: Schema, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow([name for name, _ in schema])
    cols = []
    for name, kind in schema:
        col = table[name]
        if kind == "float":
            cols.append(["" if math.isnan(v) else repr(v) for v in col.tolist()])
        elif kind == "bool":
            cols.append(["" if v is None else ("true" if v else "false") for v in col.tolist()])
        else:
            cols.append(["" if v is None else v for v in col.tolist()])
    writer.writerows(zip(*cols, strict=True))
    return buf.getvalue()


def _jsonl_text(table: Table, schema: Schema) -> str:
    dumps = json.dumps
    parts = []
    for name, kind in schema:
        col = table[name].tolist()
        key = dumps(name) + ": "
        if kind == "float":   # JSON has no NaN or infinity: both are written as null
            parts.append([key + (repr(v) if math.isfinite(v) else "null") for v in col])
        elif kind == "json":
            parts.append([key + ("null" if v is None else v) for v in col])
        else:
            parts.append([key + ("null" if v is None else dumps(v)) for v in col])
    return "".join("{" + ", ".join(row) + "}\n" for row in zip(*parts, strict=True))


def part_format(fmt: str) -> str:
    """Format of the part files (checkpoints) of a job that writes ``fmt``.

    A Parquet job checkpoints Arrow IPC files, LZ4-compressed, with the repetitive text
    columns as dictionary arrays (:data:`DICTIONARY_COLUMNS`): ~0.27 KB per row on disk, about
    a microsecond per row to write and to read back, where a Parquet part costs ~5 us to
    encode and ~2 to decode again at assembly; the result is encoded as Parquet once, when the
    parts are assembled. Uncompressed parts (~0.8 KB per row) cost ~1 us less per row but,
    on a 100 MB/s disk, the file system's periodic flushes of that volume stalled the workers
    (17 % I/O wait; 10^6 scans took 57.5 s instead of 48.9 s).
    CSV and JSON Lines parts are the result format itself (concatenated as bytes).
    """
    return "arrow" if fmt == "parquet" else fmt


def _read_arrow(path: str | Path) -> Any:
    """The table of an Arrow IPC part file (read whole: one part is small)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.OSFile(str(path), "rb") as fh:
        return ipc.open_file(fh).read_all()


def write_table(table: Table, path: str | Path, fmt: str, schema: Schema = RESULT_COLUMNS, *,
                durable: bool = True) -> None:
    """Write one table to ``path`` atomically in format ``fmt`` (or ``arrow``: a part file).

    ``durable``: fsync (see :func:`ramanid.atomic.atomic_path`).
    """
    with atomic_path(path, durable=durable) as tmp:
        write_file(table, tmp, fmt, schema)


def write_file(table: Table, tmp: Path, fmt: str, schema: Schema = RESULT_COLUMNS) -> None:
    """Write one table to the (temporary) file ``tmp`` in format ``fmt``, not atomically."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(_arrow_table(table, schema), tmp)
    elif fmt == "arrow":
        import pyarrow as pa
        import pyarrow.ipc as ipc

        data = _arrow_table(table, schema, dictionary=True)
        lz4 = ipc.IpcWriteOptions(compression="lz4")        # see part_format
        with pa.OSFile(str(tmp), "wb") as sink, \
                ipc.new_file(sink, data.schema, options=lz4) as writer:
            writer.write_table(data)
    elif fmt == "csv":
        tmp.write_text(_csv_text(table, schema, header=True), encoding="utf-8")
    elif fmt == "jsonl":
        tmp.write_text(_jsonl_text(table, schema), encoding="utf-8")
    else:
        raise UsageError(f"unknown result format {fmt!r}")


class PartAssembler:
    """Concatenates part files, one at a time and in the order given, into the file ``path``.

    Parts are in ``fmt``, or Arrow IPC files (``.arrow``) for a Parquet target (see
    :func:`part_format`). Memory is bounded by one part file. :meth:`close` finishes the file
    (a Parquet file with no part still gets the schema); :attr:`rows` counts the rows written.
    """

    def __init__(self, path: str | Path, fmt: str, schema: Schema = RESULT_COLUMNS) -> None:
        self.path, self.fmt, self.schema = Path(path), fmt, schema
        self.rows = 0
        self._writer: Any = None
        self._fh: Any = None
        if fmt != "parquet":
            self._fh = open(self.path, "wb")
            if fmt == "csv":
                self._fh.write((",".join(name for name, _ in schema) + "\n").encode())

    def append(self, part: str | Path) -> int:
        """Append one part file; return its number of rows."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            t = _read_arrow(part) if Path(part).suffix == ".arrow" else pq.read_table(part)
            if self._writer is None:
                self._writer = _parquet_writer(self.path, self.schema)
            if not t.schema.equals(self._writer.schema):   # a part in another form
                t = t.cast(self._writer.schema)
            self._writer.write_table(t)
            n = t.num_rows
        else:
            with open(part, "rb") as fh:
                if self.fmt == "csv":
                    fh.readline()
                data = fh.read()
            n = _count_records(data, self.fmt)
            self._fh.write(data)
        self.rows += n
        return n

    def close(self) -> None:
        """Finish the file."""
        if self.fmt == "parquet" and self._writer is None:
            self._writer = _parquet_writer(self.path, self.schema)
        for handle in (self._writer, self._fh):
            if handle is not None:
                handle.close()
        self._writer = self._fh = None

    def abort(self) -> None:
        """Close the file without finishing it (it is to be thrown away)."""
        for handle in (self._writer, self._fh):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._writer = self._fh = None


def _count_records(data: bytes, fmt: str) -> int:
    if fmt == "jsonl":
        return data.count(b"\n")
    return sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"))))


# -- reading -------------------------------------------------------------------------------------
def iter_results(path: str | Path, fmt: str | None = None,
                 columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rows of a result file as dicts (JSON columns parsed), in file order.

    Parameters
    ----------
    path
        Result file written by ``ramanid batch``.
    fmt
        ``parquet``, ``csv`` or ``jsonl``; guessed from the extension when None.
    columns
        Only these columns (all when None).
    """
    path = Path(path)
    fmt = fmt or format_from_suffix(path)
    if not path.is_file():
        raise InputError("no such result file", source=path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for rb in pf.iter_batches(columns=columns):
            for row in rb.to_pylist():
                yield _parse_row(row)
    elif fmt == "csv":
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out: dict[str, Any] = {}
                for k, v in row.items():
                    if columns and k not in columns:
                        continue
                    kind = COLUMN_KIND.get(k, "str")
                    if v == "":
                        out[k] = None
                    elif kind == "float":
                        out[k] = float(v)
                    elif kind == "bool":
                        out[k] = _as_bool(v)
                    else:
                        out[k] = v
                yield _parse_row(out)
    else:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    yield {k: v for k, v in row.items() if not columns or k in columns}


def _parse_row(row: dict[str, Any]) -> dict[str, Any]:
    for k, v in row.items():
        if COLUMN_KIND.get(k) == "json" and isinstance(v, str):
            row[k] = json.loads(v)
        elif COLUMN_KIND.get(k) == "float" and v is not None and math.isnan(v):
            row[k] = None
    return row


def format_from_suffix(path: str | Path) -> str:
    """Result format from a file name (``.parquet``/``.pq``, ``.csv``, ``.jsonl``/``.json``)."""
    suffix = Path(path).suffix.lower()
    mapping = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
               ".json": "jsonl", ".ndjson": "jsonl"}
    if suffix not in mapping:
        raise UsageError(f"cannot tell the result format from {Path(path).name!r}",
                         hint="give --format parquet|csv|jsonl")
    return mapping[suffix]


def remove_tree(path: Path) -> None:
    """Remove a checkpoint directory (ignores a missing one)."""
    shutil.rmtree(path, ignore_errors=True)


class TableSink:
    """Stream tables (or rows) into one result file, atomically, in bounded memory.

    Use as a context manager; the file appears at ``path`` only when the block ends normally.
    """

    def __init__(self, path: str | Path, fmt: str, schema: Schema = RESULT_COLUMNS) -> None:
        self.path, self.fmt, self.schema = Path(path), fmt, schema
        self.rows = 0
        self._atomic = atomic_path(self.path)
        self._writer: Any = None
        self._fh: Any = None

    def __enter__(self) -> TableSink:
        tmp = self._atomic.__enter__()
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(tmp, _arrow_table(make_table(0, self.schema),
                                                              self.schema).schema)
        else:
            self._fh = open(tmp, "w", encoding="utf-8", newline="")
            if self.fmt == "csv":
                self._fh.write(_csv_text(make_table(0, self.schema), self.schema, header=True))
        return self

    def write(self, table: Table) -> None:
        """Append a table."""
        n = table_len(table)
        if n == 0:
            return
        self.rows += n
        if self._writer is not None:
            self._writer.write_table(_arrow_table(table, self.schema))
        elif self.fmt == "csv":
            self._fh.write(_csv_text(table, self.schema, header=False))
        else:
            self._fh.write(_jsonl_text(table, self.schema))

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append rows given as dicts (JSON columns as Python objects or JSON text)."""
        n = len(rows)
        cols = {name: [r.get(name) for r in rows] for name, _ in self.schema}
        self.write(make_table(n, self.schema, **cols))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        self._atomic.__exit__(exc_type, exc, tb)
