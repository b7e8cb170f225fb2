"""``ramanid identify FILE...``: identify scans from files and print the verdicts.

This module also publishes :func:`run_identification`, the one function that turns spectra into
printed verdicts and an exit status; ``ramanid scan`` (spectra from a device) and ``ramanid demo``
call it too, so that every command prints and exits identically.

Only the standard library and :mod:`ramanid.i18n` are imported at module level: numpy, h5py (the
library file) and matplotlib (``--plot``) are imported when they are needed, so that ``ramanid
--help`` and a plain identification start fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ramanid import i18n

EPILOG = """\
exit status:
  0  done, nothing hazardous identified
  1  input error: a file could not be read, or the library could not be loaded
     (the other files are still identified and printed)
  2  usage error (bad command line)
  3  at least one scan raised a hazard alarm (hazard level high or extreme)
precedence: 3 wins over 1 (a hazard must never be hidden by an unreadable file), 1 wins over 0.

examples:
  ramanid identify scan.csv
  ramanid identify *.csv --json > results.jsonl
  ramanid identify parcel17.spc --plot parcel17.png --lang es --operator "J. Diaz" --case MX-2291
"""

DEFAULT_TOP = 5


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _laser_nm(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 200.0 <= value <= 2000.0:
        raise argparse.ArgumentTypeError(
            f"{value:g} nm is not a Raman excitation wavelength (expected 200-2000 nm, "
            "e.g. 785 or 1064)")
    return value


def _lang(text: str) -> str:
    code = i18n.normalise_lang(text)
    if code is None:
        raise argparse.ArgumentTypeError(
            f"unsupported language {text!r}; choose one of {', '.join(i18n.LANGS)}")
    return code


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add the options shared by every command that prints verdicts (identify, scan, demo).

    ``--library``, ``--json``, ``--top``, ``--plot``, ``--lang``, ``--operator``, ``--case``.
    """
    parser.add_argument("--library", metavar="PATH",
                        help="reference library file (default: $RAMANID_LIBRARY, else the "
                             "bundled default library)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per scan, one per line (see README: "
                             "the JSON result contract)")
    parser.add_argument("--top", type=_positive_int, default=DEFAULT_TOP, metavar="K",
                        help=f"number of candidates to report per scan (default {DEFAULT_TOP})")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="write a figure: scan over the best reference, residual, hazard "
                             "banner (several scans: OUT-01-<name>.png, OUT-02-<name>.png, ...)")
    parser.add_argument("--lang", type=_lang, default=None, metavar="L",
                        help=f"language of the verdicts: {', '.join(i18n.LANGS)} (default: "
                             "$RAMANID_LANG, else the locale, else en)")
    parser.add_argument("--operator", metavar="NAME", help="who took the scans (recorded)")
    parser.add_argument("--case", metavar="ID", help="case or seizure number (recorded)")


def register(subparsers: Any) -> None:
    """Add ``identify`` to the ``ramanid`` command line."""
    parser = subparsers.add_parser(
        "identify", help="identify substances in scan files",
        description="Identify the substance(s) in each scan file against the reference library "
                    "and print a verdict per scan, with a hazard banner that cannot be missed.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="scan files (ENLIGHTEN CSV, CSV/TXT, B&W Tek, Horiba, JCAMP-DX, "
                             "SPC, ramanid HDF5 archive)")
    add_output_options(parser)
    parser.add_argument("--laser-nm", type=_laser_nm, default=None, metavar="NM",
                        help="excitation wavelength, needed when a file's axis is in nm")
    parser.set_defaults(func=main)


# -- shared machinery -----------------------------------------------------------------------------
def _opt(options: Any, name: str, default: Any = None) -> Any:
    if isinstance(options, Mapping):
        value = options.get(name, default)
    else:
        value = getattr(options, name, default)
    return default if value is None else value


def error_line(exc: BaseException, source: str | None = None) -> str:
    """The one-line error message printed for an input that failed (no traceback)."""
    from ramanid.errors import RamanidError

    if isinstance(exc, RamanidError):
        return f"ramanid: error: {exc.one_line()}"
    where = f"{source}: " if source else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return (f"ramanid: error: {where}unexpected {type(exc).__name__}: {text} "
            "(please report this with the file)")


def _calibration_for(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """``ramanid.calibration.scan_calibration(meta)``: the calibration applied to this scan."""
    try:
        from ramanid.calibration import scan_calibration
    except ImportError:
        return None
    try:
        return dict(scan_calibration(dict(meta)))
    except Exception:  # a broken calibration store must not stop an identification
        return None


def _complete_record(record: dict[str, Any], meta: Mapping[str, Any],
                     options: Any) -> dict[str, Any]:
    """Add what the command line knows to a result record (operator, case, calibration)."""
    operator = _opt(options, "operator")
    if operator is not None or "operator" not in record:
        record["operator"] = operator if operator is not None else meta.get("operator")
    if "case_id" not in record or _opt(options, "case") is not None:
        record["case_id"] = _opt(options, "case")
    if not isinstance(record.get("calibration"), Mapping):
        # the status of the record APPLIED to this scan (not merely the device's), and exactly
        # one calibration warning that agrees with it
        status = _calibration_for(meta)
        if status is not None:
            record["calibration"] = status
            warnings = [w for w in record.get("warnings") or []
                        if not (isinstance(w, Mapping) and w.get("code") == "calibration")]
            if status.get("warning"):
                warnings.append({"code": "calibration", "state": status["state"],
                                 "message": status["warning"]})
            record["warnings"] = warnings
    if meta.get("simulated"):
        record["simulated"] = True
    return record


PLOT_FORMATS = (".png", ".pdf", ".svg")


def check_plot_target(out: str | Path | None) -> None:
    """Refuse a ``--plot`` target that cannot be written, before any work is done.

    Raises
    ------
    ramanid.errors.UsageError
        The extension is not a figure format (``.png``, ``.pdf``, ``.svg``; none means PNG).
    ramanid.errors.InputError
        The figure's directory does not exist or does not accept a new file (probed by creating
        and removing a temporary file there), or the target is a directory.
    """
    import os
    import tempfile

    from ramanid.errors import InputError, UsageError

    if not out:
        return
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix and suffix not in PLOT_FORMATS:
        raise UsageError(f"unsupported figure format {suffix!r}",
                         source="--plot", hint=f"use {', '.join(PLOT_FORMATS)}")
    if path.is_dir():
        raise InputError(f"cannot write the figure {path}: it is a directory",
                         hint="give a file name, e.g. --plot result.png")
    parent = path.parent
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".check")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        hint = (f"the directory {parent} does not exist" if not parent.is_dir()
                else "choose a directory you can write to")
        raise InputError(f"cannot write the figure {path}: {reason}", hint=hint) from None
    os.close(fd)
    os.unlink(probe)


def plot_paths(out: str | Path, sources: Sequence[str]) -> list[Path]:
    """Figure paths for scans from ``sources``.

    One scan: ``out`` itself. Several: ``<stem>-01-<scan name>.png``, ``<stem>-02-...`` beside
    ``out``, numbered in output order and named after each scan's file.
    """
    out = Path(out)
    if len(sources) == 1:
        return [out]
    suffix = out.suffix or ".png"
    paths = []
    for i, source in enumerate(sources, 1):
        name = Path(str(source).split("#")[0].split(" ")[0]).stem
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "scan"
        paths.append(out.with_name(f"{out.stem}-{i:02d}-{slug}{suffix}"))
    return paths


def _emit(text: str, stream: TextIO) -> None:
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, errors="replace").decode(encoding))
    stream.flush()


def run_identification(batch_or_batches: Any, options: Any = None, *, input_errors: int = 0,
                       library: Any = None, stdout: TextIO | None = None,
                       stderr: TextIO | None = None) -> int:
    """Identify spectra, print the verdicts and return the CLI exit status.

    This is the single path from spectra to printed verdicts: ``ramanid identify``,
    ``ramanid scan`` and ``ramanid demo`` all call it, so they print and exit identically.

    Parameters
    ----------
    batch_or_batches
        A :class:`ramanid.spectrum.SpectrumBatch` or a sequence of them (one row = one scan).
        A row whose metadata has ``simulated=True`` is labelled as simulated in the output.
    options
        An ``argparse.Namespace`` or a mapping with any of: ``library`` (path), ``json`` (bool),
        ``top`` (int), ``plot`` (path), ``lang``, ``operator``, ``case``, ``color`` (bool or None).
        Missing options take their defaults.
    input_errors
        Number of inputs the caller already failed to read (and reported); they count in the
        summary line and make the status 1 unless a hazard makes it 3.
    library
        An already loaded :class:`ramanid.library.Library` (else it is loaded from
        ``options.library``, the ``RAMANID_LIBRARY`` variable or the bundled default).
    stdout, stderr
        Where verdicts and error lines go (default ``sys.stdout``/``sys.stderr``).

    Returns
    -------
    int
        0 nothing hazardous, 1 some input error, 3 some hazard (3 wins over 1).

    Raises
    ------
    ramanid.errors.LibraryError
        When the library cannot be loaded (the CLI prints it as one line, exit status 1).
    """
    from ramanid.identify import identify
    from ramanid.report import can_encode, exit_status, json_line, render_text
    from ramanid.spectrum import SpectrumBatch

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    options = {} if options is None else options
    check_plot_target(_opt(options, "plot"))
    batches = ([batch_or_batches] if isinstance(batch_or_batches, SpectrumBatch)
               else list(batch_or_batches))
    lang = i18n.resolve_lang(_opt(options, "lang"))
    top = int(_opt(options, "top", DEFAULT_TOP))
    as_json = bool(_opt(options, "json", False))
    if library is None:
        from ramanid.library import load_library

        library = load_library(_opt(options, "library"))

    operator = _opt(options, "operator")
    records: list[dict[str, Any]] = []
    scans: list[tuple[SpectrumBatch, int]] = []  # (batch, row) of each record, for plots
    errors = int(input_errors)
    for batch in batches:
        if operator is not None:
            for meta in batch.meta:
                meta["operator"] = operator
        try:
            batch_records = identify(batch, library, top=top)
        except Exception as exc:  # one bad scan must not stop the others
            print(error_line(exc, batch.sources()[0] if len(batch) else None), file=stderr)
            errors += 1
            continue
        for row, record in enumerate(batch_records):
            records.append(_complete_record(dict(record), batch.meta[row], options))
            scans.append((batch, row))
        if as_json:
            for record in records[len(records) - len(batch_records):]:
                _emit(json_line(record) + "\n", stdout)

    if not as_json:
        color = _opt(options, "color")
        text = render_text(records, lang, color, errors=errors, stream=stdout)
        if not can_encode(text, stdout):
            # a terminal that cannot show the language: English in plain ASCII beats "????"
            text = render_text(records, "en", color, errors=errors, ascii_only=True,
                               stream=stdout)
        _emit(text, stdout)

    plot = _opt(options, "plot")
    if plot and records:
        from ramanid.plot import plot_result

        note_stream = stderr if as_json else stdout
        paths = plot_paths(plot, [str(r.get("source")) for r in records])
        for path, record, (batch, row) in zip(paths, records, scans, strict=True):
            try:
                written = plot_result(record, batch[row], library, path, lang=lang)
            except OSError as exc:  # disk full, directory gone since the check, ...
                print(f"ramanid: error: cannot write the figure {path}: "
                      f"{exc.strerror or exc}", file=stderr)
                errors += 1
                continue
            except Exception as exc:  # a figure that fails must not hide the verdicts
                print(error_line(exc, str(path)), file=stderr)
                errors += 1
                continue
            _emit(i18n.t("plot.written", lang, path=written) + "\n", note_stream)
    return exit_status(records, errors)


def read_inputs(paths: Sequence[str], *, laser_nm: float | None = None,
                stderr: TextIO | None = None) -> tuple[list[Any], int]:
    """Read every file; print a one-line error for each that fails and go on.

    Files whose x axis is not Raman shift (time, m/z, Hz, ...) count as failed.

    Returns the batches read and the number of files that failed.
    """
    from ramanid.io import read_batches, require_raman

    stderr = sys.stderr if stderr is None else stderr
    batches: list[Any] = []
    failed = 0
    for path in paths:
        try:
            # a chromatogram, NMR or mass spectrum is readable but not identifiable
            batches.extend([require_raman(b, path) for b in read_batches(path, laser_nm=laser_nm)])
        except Exception as exc:  # every bad file: one line, then the next file
            print(error_line(exc, path), file=stderr)
            failed += 1
    return batches, failed


def apply_device_calibrations(batches: Sequence[Any], *,
                              stderr: TextIO | None = None) -> list[Any]:
    """Put file scans on their device's calibrated axis, as ``ramanid scan`` does live.

    For the rows of each batch whose ``device_serial`` has a usable calibration record
    (:func:`ramanid.calibration.usable_record`: not FAILED) and that carry no ``calibration_id``
    yet (a scan saved by ``ramanid scan`` already had it applied), the record is applied with
    :func:`ramanid.calibration.apply_calibration` and the rows get its ``calibration_id``. A
    record that cannot be applied to a file leaves its rows as they are, with a warning line on
    ``stderr``; the verdict then says the calibration was not applied. Rows of a calibrated batch
    get ``scan_id`` = :func:`ramanid.io.archive.scan_ids` of the file's own data first, so the id
    matches the one ``ramanid batch`` gives the same file.
    """
    from ramanid.errors import CalibrationError

    stderr = sys.stderr if stderr is None else stderr
    try:
        from ramanid.calibration import apply_calibration, usable_record
    except ImportError:  # pragma: no cover - calibration part absent
        return list(batches)
    out: list[Any] = []
    records: dict[str, Any] = {}
    for batch in batches:
        serials = [None if m.get("calibration_id") else m.get("device_serial")
                   for m in batch.meta]
        todo = {s for s in serials if s}
        if not todo:
            out.append(batch)
            continue
        for serial in todo:
            if serial not in records:
                try:
                    records[serial] = usable_record(serial)
                except Exception:  # a broken calibration store must not stop identification
                    records[serial] = None
        if not any(records[s] for s in todo):
            out.append(batch)
            continue
        groups: dict[str | None, list[int]] = {}
        for row, serial in enumerate(serials):
            groups.setdefault(serial if serial and records.get(serial) else None, []).append(row)
        from ramanid.io.archive import scan_ids

        # the scan's id is the content id of the file as read (what `ramanid batch` computes),
        # fixed before the calibration changes axis and intensities
        for meta, ident in zip(batch.meta, scan_ids(batch), strict=True):
            meta["scan_id"] = str(ident)
        for serial, rows in groups.items():
            part = batch if len(groups) == 1 else batch[rows]
            if serial is None:
                out.append(part)
                continue
            record = records[serial]
            try:
                out.append(apply_calibration(part, record))
            except CalibrationError as exc:
                print(f"ramanid: warning: calibration {record.id} of device {serial} not "
                      f"applied to {part.sources()[0]}: {exc.message}", file=stderr)
                out.append(part)
    return out


def main(args: argparse.Namespace) -> int:
    """Handler of ``ramanid identify``."""
    check_plot_target(args.plot)  # a bad --plot fails before any file is read
    batches, failed = read_inputs(args.files, laser_nm=args.laser_nm)
    if not batches:
        # nothing could be read: report it, no library needed
        from ramanid.report import render_summary

        if not args.json and len(args.files) > 1:
            _emit(render_summary([], failed, i18n.resolve_lang(args.lang)) + "\n", sys.stdout)
        return 1
    return run_identification(apply_device_calibrations(batches), args, input_errors=failed)
