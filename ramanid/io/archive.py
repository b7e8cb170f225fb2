"""ramanid's HDF5 scan archive: many scans in one file, read fast and in bounded memory.

Layout (format version 1)
-------------------------
::

    /                         attrs: ramanid_format = "ramanid-scan-archive", format_version = 1,
                                     n_scans, created (ISO 8601 UTC), ramanid_version
    /scans/g000000            one group per run of scans sharing one axis, in write order
        attrs: first          global index of the group's first scan
               n              number of scans in the group
        axis                  float64 (n_points,), Raman shift in cm-1, strictly increasing
        intensity             (n, n_points), chunked (about 1 MiB per chunk) and compressed
                              (gzip + shuffle by default; bitshuffle + LZ4 with ``lz4``, see
                              below); dtype as written (float64 unless the writer was asked
                              for float32 / an integer count type)
        scan_id               fixed 32-byte ASCII, the stable id of each scan (see
                              :func:`scan_ids`), computed once when the scan is written
        meta/<key>            one column per metadata key: bool, int64, float64 (NaN = unknown)
                              or UTF-8 strings ("" = unknown; written fixed-length, a power of
                              two bytes wide; older archives hold variable-length strings, read
                              the same); a column of lists/dicts (e.g. ``wavecal_coeffs``) is
                              JSON text with attr encoding = "json" and is read back as
                              lists/dicts

Scans are numbered ``0 .. n_scans-1`` in write order (groups in name order, rows within a
group); a scan's ``source`` when read back is ``"<archive path>#<index>"`` and the source it was
packed from is kept in the ``origin`` metadata column. Appending never renumbers existing scans:
new scans go into the last group when they share its axis and columns, else into a new group.

Compression of the intensities (:data:`COMPRESSIONS`): ``gzip`` (deflate after a byte
shuffle, HDF5's standard filters: every HDF5 tool reads it), ``lz4`` (the bitshuffle filter with
LZ4, HDF5 filter id 32008, the codec of many X-ray detector files; from the optional package
``hdf5plugin``, ``pip install 'ramanid[lz4]'``: as small as gzip or smaller, and read about 5x
faster, but other tools need the same plugin to read the intensities), ``lzf`` (h5py's own
filter) or ``none``. Metadata columns and scan ids always use gzip (or nothing with ``none``),
so they stay readable without any plugin.

Every write is atomic (a temporary file beside the target, renamed on success): a crash leaves
the old archive or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramanid.atomic import atomic_path
from ramanid.errors import InputError, UsageError
from ramanid.spectrum import SpectrumBatch

FORMAT_NAME = "ramanid-scan-archive"
FORMAT_VERSION = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Metadata keys that are part of a scan's identity (with its axis and intensities).
ID_META_KEYS = ("device_serial", "timestamp", "laser_nm")
#: Keys never stored as columns: they are derived when reading.
_DERIVED_KEYS = ("source", "scan_id")
_CHUNK_BYTES = 1 << 20
#: Compressions of the intensities (``None`` also means "none").
COMPRESSIONS = ("gzip", "lz4", "lzf", "none")
_PLUGIN_HINT = "pip install 'ramanid[lz4]' (the hdf5plugin package)"
#: Rows the writer buffers before writing (scans on one axis).
BUFFER_ROWS = 4096


# -- scan identity ------------------------------------------------------------------------------
def scan_ids(batch: SpectrumBatch) -> np.ndarray:
    """Return the stable content id of every scan in ``batch`` (32 hex characters each).

    The id is the BLAKE2b-128 digest of the axis (float64 bytes), the scan's intensities (float64
    bytes) and its identity metadata (:data:`ID_META_KEYS`). It does not depend on the file the
    scan came from, on its position, or on the run: the same scan read from a file, from an
    archive it was packed into, or in a resumed batch run gets the same id. Rows whose metadata
    already hold a ``scan_id`` keep it.

    Returns
    -------
    numpy.ndarray
        Array of ``str`` of length ``len(batch)``.
    """
    axis_bytes = np.ascontiguousarray(batch.axis, dtype=np.float64).tobytes()
    values = np.ascontiguousarray(batch.intensity, dtype=np.float64)
    out = np.empty(len(batch), dtype=object)
    for i, meta in enumerate(batch.meta):
        given = meta.get("scan_id")
        if given:
            out[i] = str(given)
            continue
        h = hashlib.blake2b(axis_bytes, digest_size=16)
        h.update(values[i].tobytes())
        h.update(repr(tuple(_id_value(meta.get(k)) for k in ID_META_KEYS)).encode())
        out[i] = h.hexdigest()
    return out


def _id_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (int, np.integer)):
        return float(value)
    return None if isinstance(value, str) and value == "" else value


# -- detection and whole-file reading -------------------------------------------------------------
def is_archive(path: str | Path) -> bool:
    """Return True when ``path`` is a ramanid scan archive (HDF5 with the archive marker).

    Cheap: reads 8 bytes first and opens the file with h5py only when they are the HDF5 signature.
    Never raises for unreadable or non-HDF5 files (returns False).
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_SIGNATURE:
                return False
    except OSError:
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return _attr_str(f.attrs.get("ramanid_format")) == FORMAT_NAME
    except Exception:  # any failure to open means "not an archive"
        return False


def read_archive(path: str | Path) -> list[SpectrumBatch]:
    """Read every scan of an archive: one batch per run of scans sharing an axis.

    Parameters
    ----------
    path
        Archive file.

    Returns
    -------
    list of SpectrumBatch
        In archive order; each row's ``source`` is ``"<path>#<index>"`` and its ``scan_id`` the
        stored id. Use :class:`ArchiveReader` to read large archives in bounded memory.
    """
    with ArchiveReader(path) as reader:
        out: list[SpectrumBatch] = []
        for batch in reader.iter_chunks(max(len(reader), 1)):
            if out and np.array_equal(out[-1].axis, batch.axis):
                out[-1] = SpectrumBatch.concat([out[-1], batch])
            else:
                out.append(batch)
        if not out:
            raise InputError("the archive holds no scans", source=path)
        return out


def _attr_str(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


# -- compression filters -------------------------------------------------------------------------
def _hdf5plugin() -> Any:
    """The ``hdf5plugin`` module (importing it registers its filters with HDF5), or None."""
    try:
        import hdf5plugin
    except ImportError:
        return None
    return hdf5plugin


def _filter_options(compression: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """h5py dataset options for the intensities and for the other datasets of an archive.

    Raises
    ------
    UsageError
        Unknown compression, or ``lz4`` without the ``hdf5plugin`` package.
    """
    if compression in (None, "none"):
        return {}, {}
    if compression not in COMPRESSIONS:
        raise UsageError(f"unknown archive compression {compression!r}",
                         hint=f"use one of: {', '.join(COMPRESSIONS)}")
    if compression == "lz4":
        plugin = _hdf5plugin()
        if plugin is None:
            raise UsageError("compression lz4 needs the hdf5plugin package, which is not "
                             "installed", hint=_PLUGIN_HINT + "; or use --compression gzip")
        return dict(plugin.Bitshuffle(cname="lz4")), {"compression": "gzip", "shuffle": True}
    same = {"compression": compression, "shuffle": True}
    return same, same


def require_filters(ds: Any, source: str | Path) -> None:
    """Make sure HDF5 can decode dataset ``ds`` (loading ``hdf5plugin`` when it is needed).

    Raises
    ------
    InputError
        A filter of ``ds`` is not available (e.g. an ``lz4`` archive without hdf5plugin).
    """
    from h5py import h5z

    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        fid, _, _, name = plist.get_filter(i)
        if h5z.filter_avail(fid) or (_hdf5plugin() is not None and h5z.filter_avail(fid)):
            continue
        label = name.decode("ascii", "replace").split(";")[0].strip() or "unknown"
        raise InputError(f"the archive's intensities are compressed with HDF5 filter {fid} "
                         f"({label}), which is not installed here", source=source,
                         hint=_PLUGIN_HINT)


def compression_of(ds: Any) -> str:
    """Name of the compression of dataset ``ds`` (one of :data:`COMPRESSIONS`, or the HDF5
    filter names)."""
    plist = ds.id.get_create_plist()
    ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if 32008 in ids:   # H5Z_FILTER_BITSHUFFLE (hdf5plugin), LZ4 inside
        return "lz4"
    return ds.compression or "none"


# -- reading in chunks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """A contiguous slice of one archive group, read column-wise (no per-row objects).

    Attributes
    ----------
    start
        Global index of the first scan.
    axis, intensity
        Axis and ``(n, n_points)`` intensities: float32 when stored as float32, else float64.
    scan_id
        Stored ids, array of ``str``.
    columns
        Metadata columns by key (numpy arrays; NaN / "" = unknown).
    """

    start: int
    axis: np.ndarray
    intensity: np.ndarray
    scan_id: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.intensity.shape[0])

    def sources(self, archive: str) -> np.ndarray:
        """``"<archive>#<index>"`` for every row."""
        idx = np.arange(self.start, self.start + len(self)).astype(str)
        return np.char.add(f"{archive}#", idx).astype(object)

    def meta_arrays(self) -> dict[str, np.ndarray]:
        """Metadata columns with unknowns as None (strings) or NaN (numbers).

        ``format`` is ``"ramanid-archive"`` where the packed file's format is unknown.
        """
        out: dict[str, np.ndarray] = {}
        for key, col in self.columns.items():
            if col.dtype == object:
                col = col.copy()
                col[col == ""] = None
            out[key] = col
        fmt = out.get("format")
        if fmt is None or fmt.dtype != object:
            out["format"] = np.full(len(self), "ramanid-archive", dtype=object)
        else:
            fmt[fmt == None] = "ramanid-archive"  # noqa: E711 - elementwise
        return out

    def meta_columns(self, archive: str) -> dict[str, np.ndarray]:
        """:meth:`meta_arrays` plus ``source`` and ``scan_id``: the columns of :meth:`to_batch`'s
        metadata rows, in their key order."""
        out = self.meta_arrays()
        out["source"] = self.sources(archive)
        out["scan_id"] = self.scan_id
        return out

    def to_batch(self, archive: str) -> SpectrumBatch:
        """Convert to a :class:`SpectrumBatch` with one metadata dict per row."""
        columns = self.meta_columns(archive)
        keys = list(columns)
        cols = [column_values(columns[k]) for k in keys]
        meta = [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)]
        return SpectrumBatch(self.axis, self.intensity, meta)


def column_values(col: np.ndarray) -> list[Any]:
    """Python values of a column, with unknowns as None (NaN in a float column)."""
    if col.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in col.tolist()]
    return col.tolist()


class ArchiveReader:
    """Read an archive in chunks of bounded size.

    Parameters
    ----------
    path
        Archive file.

    Notes
    -----
    Memory use of :meth:`iter_chunks` is about ``chunk_size x n_points x 8`` bytes (4 for a
    float32 archive) for the intensities plus the metadata of ``chunk_size`` rows, whatever the
    archive's size.
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = str(path)
        if not Path(path).is_file():
            raise InputError("no such archive file", source=path)
        if not is_archive(path):
            raise InputError("not a ramanid scan archive", source=path,
                             hint="pack scan files with `ramanid archive pack DIR --out FILE.h5`")
        try:
            self._file = h5py.File(path, "r")
            version = int(self._file.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise InputError(f"archive format version {version} is newer than this ramanid "
                                 f"reads ({FORMAT_VERSION})", source=path,
                                 hint="upgrade ramanid")
            scans = self._file.get("scans")
            names = sorted(scans.keys()) if scans is not None else []
            self._groups = [scans[n] for n in names]
            for grp in self._groups:   # fail now, in one line, if a filter plugin is missing
                require_filters(grp["intensity"], path)
            self._first = np.array([int(g.attrs["first"]) for g in self._groups], dtype=np.int64)
            self._n = np.array([int(g.attrs["n"]) for g in self._groups], dtype=np.int64)
            self._open: dict[int, dict[str, Any]] = {}
            self._advice_fd: int | None = None   # for prefetch()
            # prefetch(): the group advised last and its metadata chunks already advised
            self._advised: tuple[int, set[tuple[int, int]]] | None = None
        except InputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise InputError(f"damaged scan archive ({exc})", source=path) from exc

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._open = {}
        f = getattr(self, "_file", None)
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()
            self._file = None
        fd = getattr(self, "_advice_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
            self._advice_fd = None

    def prefetch(self, start: int, stop: int) -> None:
        """Ask the operating system to read scans ``start .. stop-1`` from disk now, in the
        background (``posix_fadvise(WILLNEED)`` on the byte ranges of their chunks).

        Advisory: does nothing where the platform has no ``posix_fadvise`` and never raises.
        ``ramanid batch`` calls it for each chunk of scans as it hands the chunk to a worker, a
        few chunks ahead of the work: the workers then find their scans in memory instead of
        waiting for the disk (an archive read cold from a 100 MB/s disk otherwise halved the
        job's speed: each worker reads its chunks one small piece at a time).
        """
        if not hasattr(os, "posix_fadvise") or stop <= start or self._file is None:
            return
        try:
            g = int(np.searchsorted(self._first, start, side="right")) - 1
            a = start - int(self._first[g])
            b = min(stop - int(self._first[g]), int(self._n[g]))
            if self._advised is None or self._advised[0] != g:
                self._advised = (g, set())
            seen = self._advised[1]
            opened = self._datasets(g)
            ranges = []
            for ds in (opened["intensity"], opened["scan_id"],
                       *(meta_ds for _, meta_ds in opened["meta"].values())):
                if ds.chunks is None:
                    continue
                rows = ds.chunks[0]
                tail = (0,) * (ds.ndim - 1)
                for r in range(a - a % rows, min(b, ds.shape[0]), rows):
                    if (id(ds), r) in seen:   # a metadata chunk serves several tasks
                        continue
                    info = ds.id.get_chunk_info_by_coord((r, *tail))
                    if info.byte_offset is not None and info.size:
                        ranges.append((int(info.byte_offset), int(info.size)))
                    if ds.ndim == 1:
                        if len(seen) > 4096:
                            seen.clear()
                        seen.add((id(ds), r))
            if not ranges:
                return
            if self._advice_fd is None:
                self._advice_fd = os.open(self.path, os.O_RDONLY)
            ranges.sort()
            lo, hi = ranges[0][0], ranges[0][0] + ranges[0][1]
            for off, size in [*ranges[1:], (None, 0)]:   # adjacent chunks: one request
                if off is not None and off <= hi + (64 << 10):
                    hi = max(hi, off + size)
                    continue
                os.posix_fadvise(self._advice_fd, lo, hi - lo, os.POSIX_FADV_WILLNEED)
                if off is not None:
                    lo, hi = off, off + size
        except Exception:   # advice only: reading works without it
            return

    # structure -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._n.sum())

    def groups(self) -> list[dict[str, Any]]:
        """Description of each axis group: scans, points, axis range, dtype, metadata keys."""
        out = []
        for grp, first, n in zip(self._groups, self._first.tolist(), self._n.tolist(),
                                 strict=True):
            axis = grp["axis"]
            out.append({"first": first, "n": n, "points": int(axis.shape[0]),
                        "axis_min": float(axis[0]), "axis_max": float(axis[-1]),
                        "dtype": str(grp["intensity"].dtype),
                        "compression": compression_of(grp["intensity"]),
                        "meta": sorted(grp["meta"].keys())})
        return out

    @property
    def group_sizes(self) -> list[int]:
        """Number of scans in each axis group, in archive order."""
        return self._n.tolist()

    def spans(self, chunk_size: int, start: int = 0) -> Iterator[tuple[int, int]]:
        """Yield ``(start, stop)`` global index ranges of at most ``chunk_size`` scans.

        Ranges never cross an axis group; they are the same for the same archive and arguments.
        """
        if chunk_size < 1:
            raise UsageError(f"chunk size must be at least 1, not {chunk_size}")
        for first, n in zip(self._first.tolist(), self._n.tolist(), strict=True):
            end = first + n
            pos = max(first, start)
            while pos < end:
                stop = min(pos + chunk_size, end)
                yield pos, stop
                pos = stop

    def read_block(self, start: int, stop: int) -> Block:
        """Read scans ``start .. stop-1`` (which must lie in one axis group) column-wise."""
        g = int(np.searchsorted(self._first, start, side="right")) - 1
        if g < 0 or stop > self._first[g] + self._n[g] or stop <= start:
            raise UsageError(f"scan range {start}..{stop} does not lie in one group of "
                             f"{self.path}")
        a, b = start - int(self._first[g]), stop - int(self._first[g])
        try:
            ds = self._datasets(g)
            axis = ds["axis"].copy()
            intensity = ds["intensity"][a:b]
            if intensity.dtype != np.float32:   # float32 stays as stored (the engine's dtype)
                intensity = intensity.astype(np.float64, copy=False)
            ids = np.array([s.decode("ascii") for s in ds["scan_id"][a:b].tolist()],
                           dtype=object)
            columns: dict[str, np.ndarray] = {}
            for key, (kind, meta_ds) in ds["meta"].items():
                if kind == "json":
                    columns[key] = _json_values(_read_text(meta_ds, a, b).tolist())
                elif kind == "str":
                    columns[key] = _read_text(meta_ds, a, b)
                else:
                    columns[key] = meta_ds[a:b]
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"damaged scan archive: cannot read scans {start}..{stop} "
                             f"({exc})", source=self.path) from exc
        return Block(start, axis, intensity, ids, columns)

    def _datasets(self, g: int) -> dict[str, Any]:
        """The open datasets of group ``g`` (kept open: their chunk caches then serve the next
        block of the same chunk, e.g. the metadata columns' 16384-row chunks), with the axis."""
        hit = self._open.get(g)
        if hit is None:
            grp = self._groups[g]
            meta = {}
            for key, ds in grp["meta"].items():
                text = ds.dtype.kind in "OSU" or h5py_is_string(ds)
                kind = ("num" if not text else
                        "json" if ds.attrs.get("encoding") == JSON_ENCODING else "str")
                meta[key] = (kind, ds)
            hit = {"axis": grp["axis"][()], "intensity": grp["intensity"],
                   "scan_id": grp["scan_id"], "meta": meta}
            self._open[g] = hit
        return hit

    def iter_blocks(self, chunk_size: int, start: int = 0) -> Iterator[Block]:
        """Yield :class:`Block` objects of at most ``chunk_size`` scans from ``start``."""
        for a, b in self.spans(chunk_size, start):
            yield self.read_block(a, b)

    def iter_chunks(self, chunk_size: int, start: int = 0) -> Iterator[SpectrumBatch]:
        """Yield batches of at most ``chunk_size`` scans from scan ``start`` on, in order."""
        for block in self.iter_blocks(chunk_size, start):
            yield block.to_batch(self.path)


def _read_text(ds: Any, a: int, b: int) -> np.ndarray:
    """Rows ``a..b-1`` of a text dataset as an object array of ``str``."""
    if ds.dtype.kind == "S":   # fixed-length UTF-8: decode the bytes here (fast)
        raw = ds[a:b]
        if raw.size and (raw == raw[0]).all():   # one value (often ""): decoded once
            return np.full(raw.size, raw[0].decode("utf-8", "replace"), dtype=object)
        return np.array([v.decode("utf-8", "replace") for v in raw.tolist()], dtype=object)
    return ds.asstr()[a:b]


def _json_values(texts: list[str]) -> np.ndarray:
    """Decoded JSON column (object array of lists/dicts; None where unknown)."""
    out = np.empty(len(texts), dtype=object)
    cache: dict[str, Any] = {}
    for i, t in enumerate(texts):
        if t:
            if t not in cache:
                cache[t] = json.loads(t)
            out[i] = cache[t]
    return out


def h5py_is_string(ds: Any) -> bool:
    """True when an h5py dataset holds strings."""
    import h5py

    return h5py.check_string_dtype(ds.dtype) is not None


# -- writing ---------------------------------------------------------------------------------------
#: ``encoding`` attribute of a metadata column that holds JSON text (lists, dicts).
JSON_ENCODING = "json"


def _json_default(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def _column_kind(values: Sequence[Any]) -> str:
    """'b' (all booleans), 'i' (all ints), 'f' (numbers, some unknown), 'j' (lists/dicts, some
    unknown) or 's' (anything else, or all unknown)."""
    if all(v is None for v in values):
        return "s"
    if all(v is None or isinstance(v, (list, tuple, dict)) for v in values):
        return "j"
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "b"
    kind = "i"
    for v in values:
        if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            kind = "f" if kind in "if" else kind
        elif isinstance(v, (bool, np.bool_)):
            return "s"
        elif isinstance(v, (int, np.integer)):
            continue
        elif isinstance(v, (float, np.floating)):
            kind = "f" if kind in "if" else kind
        else:
            return "s"
    return kind


def _column_array(values: Sequence[Any], kind: str) -> np.ndarray:
    if kind == "b":
        return np.asarray(values, dtype=bool)
    if kind == "i":
        return np.asarray(values, dtype=np.int64)
    if kind == "f":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if kind == "j":
        return np.array(["" if v is None else json.dumps(v, default=_json_default)
                         for v in values], dtype=object)
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


#: Bytes of one chunk of a text metadata column (the reader keeps it decoded in its cache).
_TEXT_CHUNK_BYTES = 256 << 10
#: Stand-in width of a variable-length text column (archives written before fixed widths).
_VLEN = 1 << 62


def _text_bytes(arr: np.ndarray) -> int:
    """Length in UTF-8 bytes of the longest text of an object column."""
    return max((len(v.encode("utf-8")) for v in arr.tolist()), default=0)


def _new_text_width(arr: np.ndarray) -> int:
    """Width (bytes) of a new fixed-length text column for ``arr``: a power of two with room
    for half as long again as its longest text, at least 16.

    Text columns are fixed-length UTF-8 (still "UTF-8 text" of format version 1: h5py's
    ``asstr()`` and other HDF5 readers read both forms): reading a fixed-length column costs
    a few hundredths of a microsecond per value, a variable-length one ~0.3 us (one heap
    object each), which is most of the cost of reading an archive's metadata. Longer text
    appended later starts a new group.
    """
    need = _text_bytes(arr)
    width = 16
    while width < need + need // 2:
        width *= 2
    return width


def _text_width(ds: Any) -> int | None:
    """Width of a fixed-length text dataset (None: variable-length)."""
    import h5py

    info = h5py.check_string_dtype(ds.dtype)
    return None if info is None else info.length


def _stored_text(ds: Any, arr: np.ndarray) -> np.ndarray:
    """``arr`` as the dataset stores it (fixed-length text as UTF-8 bytes)."""
    if arr.dtype != object or _text_width(ds) is None:
        return arr
    return np.array([v.encode("utf-8") for v in arr.tolist()], dtype=ds.dtype)


class ArchiveWriter:
    """Write (or append to) an archive atomically.

    Parameters
    ----------
    path
        Target archive.
    mode
        ``"w"`` to create (replacing any file), ``"a"`` to append to an existing archive (it is
        copied beside itself, appended to and renamed over the original on :meth:`close`).
    dtype
        Storage type of intensities (default float64, lossless). ``"float32"`` halves the size;
        an integer type (e.g. ``"uint16"``) suits raw detector counts and is refused for values
        that are not whole counts in range. Scan ids are always computed from the values as
        given, before any conversion.
    compression
        Compression of the intensities: ``"gzip"`` (default), ``"lz4"`` (needs hdf5plugin),
        ``"lzf"``, ``"none"`` or None (module docstring). Appended scans that join an existing
        group keep that group's compression.
    skip_duplicates
        Leave out scans whose id (:func:`scan_ids`) is already in the archive or was appended
        before (an appended folder that still holds the scans packed last month adds only the
        new ones); :attr:`skipped` counts them. Default False: every scan is written.

    Examples
    --------
    >>> with ArchiveWriter("scans.h5") as w:          # doctest: +SKIP
    ...     for batch in batches:
    ...         w.append(batch)
    """

    def __init__(self, path: str | Path, mode: str = "w", *, dtype: str | np.dtype | None = None,
                 compression: str | None = "gzip", skip_duplicates: bool = False) -> None:
        import h5py

        if mode not in ("w", "a"):
            raise UsageError(f"archive mode must be 'w' or 'a', not {mode!r}")
        self.path = Path(path)
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.compression = compression
        self._options = _filter_options(compression)    # refuses lz4 without its plugin
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            if mode == "a":
                if not is_archive(self.path):
                    raise InputError("cannot append: not a ramanid scan archive",
                                     source=self.path)
                shutil.copyfile(self.path, tmp)
                self._file = h5py.File(tmp, "r+")
                for grp in self._file["scans"].values():   # scans may join any old group
                    require_filters(grp["intensity"], self.path)
            else:
                self._file = h5py.File(tmp, "w")
                self._file.attrs["ramanid_format"] = FORMAT_NAME
                self._file.attrs["format_version"] = FORMAT_VERSION
                self._file.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(
                    timespec="seconds")
                self._file.attrs["n_scans"] = 0
                self._file.create_group("scans")
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        from ramanid._version import __version__

        self._file.attrs["ramanid_version"] = __version__
        self._n_total = int(self._file.attrs.get("n_scans", 0))
        #: scans left out because their id was already in the archive (``skip_duplicates``)
        self.skipped = 0
        self._known: set[str] | None = None
        if skip_duplicates:
            self._known = {s.decode("ascii") for g in self._file["scans"].values()
                           for s in g["scan_id"][()].tolist()}
        self._pending: list[SpectrumBatch] = []
        self._pending_rows = 0
        self._closed = False

    def __len__(self) -> int:
        """Scans in the archive so far, including buffered ones."""
        return self._n_total + self._pending_rows

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def _last_group(self) -> Any:
        scans = self._file["scans"]
        names = sorted(scans.keys())
        return scans[names[-1]] if names else None

    def append(self, batch: SpectrumBatch) -> None:
        """Append the scans of ``batch`` (ids computed here unless the rows carry one).

        Small batches on the same axis are buffered and written together (up to
        :data:`BUFFER_ROWS` rows), so packing many one-scan files makes few large writes.
        """
        if self._closed:
            raise UsageError("archive writer is closed")
        if self._known is not None:
            keep = []
            for i, ident in enumerate(scan_ids(batch).tolist()):
                if ident not in self._known:
                    self._known.add(ident)
                    keep.append(i)
            self.skipped += len(batch) - len(keep)
            if not keep:
                return
            if len(keep) < len(batch):
                batch = batch[keep]
        if self._pending and (not np.array_equal(self._pending[0].axis, batch.axis)
                              or self._pending_rows + len(batch) > BUFFER_ROWS):
            self.flush()
        self._pending.append(batch)
        self._pending_rows += len(batch)
        if self._pending_rows >= BUFFER_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write buffered scans to the file."""
        if not self._pending:
            return
        batch = (self._pending[0] if len(self._pending) == 1
                 else SpectrumBatch.concat(self._pending))
        self._pending, self._pending_rows = [], 0
        self._write(batch)

    def _write(self, batch: SpectrumBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        ids = scan_ids(batch)
        keys = [k for k in dict.fromkeys(k for m in batch.meta for k in m)
                if k not in _DERIVED_KEYS]
        columns: dict[str, np.ndarray] = {}
        json_keys: set[str] = set()
        for k in keys:
            vals = [m.get(k) for m in batch.meta]
            kind = _column_kind(vals)
            columns[k] = _column_array(vals, kind)
            if kind == "j":
                json_keys.add(k)
        # the file each scan came from is kept as "origin"
        if "origin" not in columns:
            columns["origin"] = _column_array([m.get("source") for m in batch.meta], "s")
        store = self.dtype or np.dtype(np.float64)
        values = batch.intensity
        if store.kind in "iu":   # integer storage is for raw counts only: never lossy
            info = np.iinfo(store)
            if not (np.array_equal(values, np.rint(values)) and values.min() >= info.min
                    and values.max() <= info.max):
                raise UsageError(f"intensities are not whole counts within {store} range",
                                 source=batch.meta[0].get("source"),
                                 hint="store them as float32 or float64")
        values = values.astype(store)

        grp = self._last_group()
        if grp is not None and not self._fits(grp, batch.axis, columns, store, json_keys):
            grp = None
        if grp is None:
            grp = self._new_group(batch.axis, columns, store, json_keys)
        old = int(grp.attrs["n"])
        new = old + n
        grp["intensity"].resize((new, batch.n_points))
        grp["intensity"][old:new] = values
        grp["scan_id"].resize((new,))
        grp["scan_id"][old:new] = np.array([s.encode("ascii") for s in ids], dtype="S32")
        for k, arr in columns.items():
            ds = grp["meta"][k]
            ds.resize((new,))
            ds[old:new] = _stored_text(ds, arr)
        grp.attrs["n"] = new
        self._n_total += n
        self._file.attrs["n_scans"] = self._n_total

    def _fits(self, grp: Any, axis: np.ndarray, columns: dict[str, np.ndarray],
              store: np.dtype, json_keys: set[str]) -> bool:
        if grp["intensity"].dtype != store:
            return False
        old_axis = grp["axis"][()]
        if old_axis.shape != axis.shape or not np.array_equal(old_axis, axis):
            return False
        meta = grp["meta"]
        if set(meta.keys()) != set(columns):
            return False
        for k, arr in columns.items():
            ds = meta[k]
            stored_str = h5py_is_string(ds)
            if (arr.dtype == object) != stored_str:
                return False
            if stored_str and _text_bytes(arr) > (_text_width(ds) or _VLEN):
                return False   # longer text than the fixed-length column holds
            if not stored_str and ds.dtype != arr.dtype:
                return False
            if (ds.attrs.get("encoding") == JSON_ENCODING) != (k in json_keys):
                return False
        return True

    def _new_group(self, axis: np.ndarray, columns: dict[str, np.ndarray],
                   store: np.dtype, json_keys: set[str]) -> Any:
        import h5py

        scans = self._file["scans"]
        grp = scans.create_group(f"g{len(scans):06d}")
        grp.attrs["first"] = self._n_total
        grp.attrs["n"] = 0
        grp.create_dataset("axis", data=np.asarray(axis, dtype=np.float64))
        rows = max(1, min(4096, _CHUNK_BYTES // max(1, axis.shape[0] * store.itemsize)))
        values_kw, kw = self._options
        grp.create_dataset("intensity", shape=(0, axis.shape[0]), maxshape=(None, axis.shape[0]),
                           dtype=store, chunks=(rows, axis.shape[0]), **values_kw)
        grp.create_dataset("scan_id", shape=(0,), maxshape=(None,), dtype="S32",
                           chunks=(16384,), **kw)
        meta = grp.create_group("meta")
        for k, arr in columns.items():
            if arr.dtype == object:   # text: fixed-length UTF-8 (see _new_text_width)
                width = _new_text_width(arr)
                dt: Any = h5py.string_dtype("utf-8", length=width)
                chunk = max(1024, min(16384, _TEXT_CHUNK_BYTES // width))
            else:
                dt, chunk = arr.dtype, 16384
            ds = meta.create_dataset(k, shape=(0,), maxshape=(None,), dtype=dt, chunks=(chunk,),
                                     **kw)
            if k in json_keys:
                ds.attrs["encoding"] = JSON_ENCODING
        return grp

    def close(self) -> None:
        """Finish the file and rename it over the target."""
        if self._closed:
            return
        try:
            self.flush()
        except BaseException:
            self.abort(*sys.exc_info())
            raise
        self._closed = True
        self._file.close()
        self._stack.close()

    def abort(self, *exc_info: object) -> None:
        """Discard everything written since opening; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._file.close()
        err = exc_info if len(exc_info) == 3 else (RuntimeError, RuntimeError("aborted"), None)
        with contextlib.suppress(BaseException):
            self._stack.__exit__(*err)


def write_archive(path: str | Path, batches: Iterable[SpectrumBatch], *,
                  dtype: str | np.dtype | None = None, compression: str | None = "gzip") -> int:
    """Write ``batches`` to a new archive atomically and return the number of scans written.

    See :class:`ArchiveWriter` for ``dtype`` and ``compression``.
    """
    with ArchiveWriter(path, "w", dtype=dtype, compression=compression) as writer:
        for batch in batches:
            writer.append(batch)
        return len(writer)
