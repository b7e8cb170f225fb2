"""Readers and writers of spectrum files, auto-detected by content first and extension second.

Public API
----------
``read(path, *, format=None, laser_nm=None) -> SpectrumBatch``
    One file -> one batch (all its spectra must share one axis).
``read_batches(path, *, format=None, laser_nm=None) -> list[SpectrumBatch]``
    One file -> one batch per axis (JCAMP-DX link blocks, multi-file SPC with own X, archives).
``write(batch, path, *, format=None)``
    ``csv``, ``jcamp`` or ``ramanid-h5``; chosen from the extension when not given. Atomic.
``detect_format(path) -> str``
    One of :data:`FORMATS`.
``require_raman(batch, source=None) -> SpectrumBatch``
    Refuse (``InputError``) a batch whose x axis is not Raman shift: files read with their own
    time, m/z, Hz, ppm ... axis are fine to read and convert, not to identify.

Every problem with a file raises :class:`ramanid.errors.InputError` whose one-line message names
the file, the problem and what to do. Importing this package is light: numpy only; h5py is
imported inside the archive path.
"""

from __future__ import annotations

import re
from pathlib import Path

from ramanid.errors import InputError, UsageError
from ramanid.io._common import PathLike, decode_text, is_binary, load_bytes, require_raman
from ramanid.spectrum import SpectrumBatch

__all__ = ["FORMATS", "READ_EXTENSIONS", "WRITE_FORMATS", "detect_format", "read",
           "read_batches", "require_raman", "write"]

#: Format names accepted by ``format=`` and returned by :func:`detect_format`.
FORMATS = ("enlighten-csv", "csv", "bwtek", "horiba", "jcamp", "spc", "ramanid-h5")
#: Formats :func:`write` can produce.
WRITE_FORMATS = ("csv", "jcamp", "ramanid-h5")
#: File extensions (lower case, with dot) that directory scans should treat as spectrum files.
READ_EXTENSIONS = (".csv", ".txt", ".tsv", ".dat", ".jdx", ".dx", ".jcamp", ".spc", ".h5",
                   ".hdf5")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXT_FORMAT = {".jdx": "jcamp", ".dx": "jcamp", ".jcamp": "jcamp", ".spc": "spc",
               ".h5": "ramanid-h5", ".hdf5": "ramanid-h5", ".csv": "csv", ".txt": "csv",
               ".tsv": "csv", ".dat": "csv"}


def _sniff(data: bytes, path: Path) -> str:
    """Format name from the file's content (and its extension where content cannot tell)."""
    ext = path.suffix.lower()
    if data.startswith(_HDF5_MAGIC):
        return "ramanid-h5"
    if is_binary(data):
        from ramanid.io.spc import sniff as spc_sniff

        if spc_sniff(data) or ext == ".spc":
            return "spc"
        raise InputError("binary data that is not a known spectrum format", source=path,
                         hint="supported: CSV/TXT, JCAMP-DX, SPC, ramanid HDF5 archive")
    text = decode_text(data[:65536], path)
    lines = text.split("\n")
    head = [ln.strip() for ln in lines[:40] if ln.strip()]
    if any(ln.startswith("##") for ln in head[:10]) or (
            ext in (".jdx", ".dx", ".jcamp") and any(ln.startswith("##") for ln in head)):
        return "jcamp"
    from ramanid.io import bwtek, enlighten
    from ramanid.io.delimited import CSV_MAGIC

    if lines[0].strip() == CSV_MAGIC:
        return "csv"
    if enlighten.sniff(lines):
        return "enlighten-csv"
    if bwtek.sniff(lines):
        return "bwtek"
    if _looks_horiba(lines, ext):
        return "horiba"
    return "csv"


def _looks_horiba(lines: list[str], ext: str) -> bool:
    """LabSpec text export: ``#key=value`` header lines and/or tab-separated two-column .txt."""
    body = [ln for ln in lines[:50] if ln.strip()]
    if any(re.match(r"#[^:=]+=", ln) for ln in body[:20]):
        return True
    data = [ln for ln in body if not ln.startswith("#")][:10]
    return ext == ".txt" and bool(data) and all(ln.count("\t") == 1 for ln in data)


def detect_format(path: PathLike) -> str:
    """Return the format name of ``path`` (one of :data:`FORMATS`), by content then extension.

    Raises
    ------
    InputError
        When the file cannot be read, is empty, or is binary data of no known format.
    """
    p = Path(path)
    return _sniff(load_bytes(p), p)


def read_batches(path: PathLike, *, format: str | None = None,
                 laser_nm: float | None = None) -> list[SpectrumBatch]:
    """Read every spectrum of one file, one batch per distinct axis.

    Parameters
    ----------
    path
        The file.
    format
        One of :data:`FORMATS`; detected from content and extension when ``None``.
    laser_nm
        Excitation wavelength in nm. Needed when the file's axis is a wavelength and the file does
        not say the laser; overrides the file's value.

    Returns
    -------
    list of SpectrumBatch
        Each with a strictly increasing Raman-shift axis (or the file's own x units, recorded in
        ``meta["x_units"]``, for non-Raman JCAMP-DX/SPC files). ``meta["source"]`` is the
        path for a single-spectrum file and ``"<path>#<index>"`` (0-based, file order) for each
        spectrum of a file holding several (SPC multifile, JCAMP-DX compound/LINK or NTUPLES,
        multi-column CSV, ramanid HDF5 archive).
    """
    p = Path(path)
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown format {format!r}", source=p,
                         hint=f"choose one of {', '.join(FORMATS)}")
    if laser_nm is not None and not 150.0 <= float(laser_nm) <= 2000.0:
        raise UsageError(f"laser wavelength {laser_nm} nm is implausible", source=p,
                         hint="give the excitation wavelength in nm, e.g. --laser-nm 785")
    data = load_bytes(p)
    fmt = format or _sniff(data, p)
    if fmt == "ramanid-h5":
        return _read_archive(p)  # sources are already "<archive>#<index>"
    return _index_sources(_read_text_or_spc(data, p, fmt, laser_nm), p)


def _index_sources(batches: list[SpectrumBatch], path: Path) -> list[SpectrumBatch]:
    """``source`` = ``"<path>#<index>"`` (0-based, file order) when the file holds more than one
    spectrum, as archives do; plain ``"<path>"`` for a single-spectrum file. Readers keep file
    order across batches (only consecutive spectra sharing an axis are merged)."""
    if sum(len(b) for b in batches) <= 1:
        return batches
    k = 0
    for b in batches:
        for m in b.meta:
            m["source"] = f"{path}#{k}"
            k += 1
    return batches


def _read_text_or_spc(data: bytes, p: Path, fmt: str, laser_nm: float | None
                      ) -> list[SpectrumBatch]:
    if fmt == "spc":
        from ramanid.io.spc import read_spc

        return read_spc(data, p, laser_nm=laser_nm)
    text = decode_text(data, p)
    if fmt == "jcamp":
        from ramanid.io.jcamp import read_jcamp

        return read_jcamp(text, p, laser_nm=laser_nm)
    if fmt == "enlighten-csv":
        from ramanid.io.enlighten import read_enlighten

        return [read_enlighten(text, p, laser_nm=laser_nm)]
    if fmt == "bwtek":
        from ramanid.io.bwtek import read_bwtek

        return [read_bwtek(text, p, laser_nm=laser_nm)]
    from ramanid.io.delimited import read_delimited

    return [read_delimited(text, p, laser_nm=laser_nm, fmt=fmt)]


def read(path: PathLike, *, format: str | None = None,
         laser_nm: float | None = None) -> SpectrumBatch:
    """Read one spectrum file into one batch (all its spectra on one axis).

    See :func:`read_batches` for the parameters.

    Raises
    ------
    InputError
        For any unreadable or malformed file, and when the file's spectra have different axes
        (use :func:`read_batches` for those).
    """
    batches = read_batches(path, format=format, laser_nm=laser_nm)
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    if all(b.axis.shape == first.axis.shape and (b.axis == first.axis).all() for b in batches):
        return SpectrumBatch.concat(batches)
    raise InputError(f"the file holds {len(batches)} groups of spectra on different axes",
                     source=path, hint="the ramanid commands read each group separately; "
                     "in Python use read_batches(), or resample the spectra onto one axis")


def _read_archive(path: Path) -> list[SpectrumBatch]:
    try:
        from ramanid.io import archive
    except ImportError:  # pragma: no cover - archive module not installed yet
        raise InputError("HDF5 scan archives are not supported by this build", source=path,
                         hint="convert the scans to CSV") from None
    if not archive.is_archive(path):
        raise InputError("HDF5 file that is not a ramanid scan archive", source=path,
                         hint="a reference library is loaded with --library, not as a scan")
    return archive.read_archive(path)


def write(batch: SpectrumBatch, path: PathLike, *, format: str | None = None) -> None:
    """Write ``batch`` to ``path`` atomically (via :mod:`ramanid.atomic`).

    Parameters
    ----------
    batch
        The spectra to write.
    path
        Target file; replaced atomically.
    format
        ``"csv"`` (ramanid CSV with ``# key: value`` metadata), ``"jcamp"`` (JCAMP-DX 5.01,
        ``DIFDUP``; one block per spectrum, a LINK block when several) or ``"ramanid-h5"`` (scan
        archive). Taken from the extension when ``None`` (``.csv/.txt``, ``.jdx/.dx``,
        ``.h5/.hdf5``).
    """
    p = Path(path)
    fmt = format or _EXT_FORMAT.get(p.suffix.lower())
    if fmt not in WRITE_FORMATS:
        raise UsageError(f"cannot write format {fmt or p.suffix!r}", source=p,
                         hint=f"use one of {', '.join(WRITE_FORMATS)} (or a .csv/.jdx/.h5 name)")
    if fmt == "ramanid-h5":
        from ramanid.io import archive

        archive.write_archive(p, [batch])
        return
    from ramanid.atomic import atomic_write_text

    if fmt == "csv":
        from ramanid.io.delimited import format_csv

        atomic_write_text(p, format_csv(batch))
    else:
        from ramanid.io.jcamp import format_jcamp

        atomic_write_text(p, format_jcamp(batch), encoding="latin-1")
