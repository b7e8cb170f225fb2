"""``ramanid library``: inspect, build, extend, check, approve, sign and verify reference libraries.

Laboratory workflow::

    ramanid library build default --out lab.h5        # start from the bundled library
    ramanid library add scan.csv --library lab.h5 --name "Fentanyl HCl" \\
        --class "fentanyl-class opioid" --hazard extreme --handling "do not open ..." \\
        --source "CRM lot 123" --licence "internal" --by "A. Analyst"
    ramanid library validate --library lab.h5 --plot check.png
    ramanid library approve ENTRY --library lab.h5 --by "B. Reviewer"
    ramanid library keygen --out lab-key.pem
    ramanid library sign --library lab.h5 --key lab-key.pem --by "Central lab"
    ramanid library verify --library lab.h5 --trusted-key lab-key.pem.pub
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ramanid.errors import EXIT_INPUT, InputError, LibraryError, UsageError

HELP = "inspect, build, extend, check, approve, sign and verify reference libraries"

#: Entry fields `add` needs; asked for interactively on a terminal, else required as flags.
_REQUIRED_ADD = (("name", "--name", "substance name"),
                 ("substance_class", "--class", "substance class (e.g. cutting agent, "
                                                "fentanyl-class opioid)"),
                 ("hazard_level", "--hazard", "hazard level (none/low/high/extreme)"),
                 ("source", "--source", "source of the spectrum (lab, CRM lot, reference)"),
                 ("licence", "--licence", "licence / terms of use"),
                 ("added_by", "--by", "your name (recorded as added_by)"))


def _lib_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", metavar="PATH",
                   help="library file (default: $RAMANID_LIBRARY or the bundled default)")


def _entry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("entry", metavar="ENTRY", help="entry id, id prefix, name or synonym")


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="write to this file instead of updating --library in place")


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trusted-key", action="append", metavar="PUB", dest="trusted_keys",
                   help="trust this public key (file or hex); repeatable; default: "
                        "$RAMANID_HOME/trusted_keys/*.pub")


def register(subparsers: Any) -> None:
    """Add ``ramanid library`` and its sub-commands."""
    p = subparsers.add_parser("library", help=HELP, description=HELP + ".",
                              epilog=__doc__.split("\n", 2)[2],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="library_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = sub.add_parser("info", help="library header, counts, hash and signature state",
                       description="Show the library's name, version, recipe, entry counts by "
                                   "status, provenance and hazard, content hash and signature "
                                   "state. Refuses an altered library (see `verify`).")
    _lib_arg(s)
    _trust_args(s)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("list", help="list entries",
                       description="One row per entry: id, name, class, hazard level, "
                                   "provenance, status, instrument.")
    _lib_arg(s)
    s.add_argument("--status", choices=("approved", "pending", "retired", "all"), default="all",
                   help="only entries with this status (default: all)")
    s.add_argument("--class", dest="substance_class", help="only this substance class")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="every field of one entry",
                       description="Every metadata field of one entry (provenance, licence, "
                                   "acquisition, who added and approved it) and its raw "
                                   "spectrum's range.")
    _lib_arg(s)
    _entry_arg(s)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("build", help="build a library from a source catalogue or scan files",
                       description="Build a new library file. From a catalogue (.json) every "
                                   "entry is approved as the catalogue says; from scan files "
                                   "every file becomes a PENDING entry to be completed, "
                                   "validated and approved.",
                       epilog="examples:\n"
                              "  ramanid library build default --out lab.h5   # start from the "
                              "bundled library\n"
                              "  ramanid library build crm-scans/ --out lab.h5 --name 'Lab X' "
                              "--by 'A. Analyst'",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("sources", nargs="+", metavar="SOURCES",
                   help="'default' (the bundled library's catalogue), a catalogue (.json, like "
                        "spectra_library/sources.json) or scan files and directories (each file "
                        "becomes a pending entry named after it)")
    s.add_argument("--out", required=True, metavar="FILE", help="library file to write")
    s.add_argument("--name", default="custom", help="library name (scan-file builds)")
    s.add_argument("--version", dest="lib_version", default="0.1.0",
                   help="library version (scan-file builds)")
    s.add_argument("--by", default=None, help="who builds it (scan-file builds)")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("add", help="add scan file(s) as pending entries",
                       description="Add a measured spectrum as a PENDING entry. Missing metadata "
                                   "is asked for on a terminal; otherwise pass the flags.")
    _lib_arg(s)
    s.add_argument("files", nargs="+", metavar="FILE",
                   help="scan file(s) in any format `ramanid identify` reads")
    s.add_argument("--name", help="substance name (default with several files: ask, or "
                                  "--names-from-files)")
    s.add_argument("--names-from-files", action="store_true",
                   help="name each entry after its file (stem)")
    s.add_argument("--class", dest="substance_class",
                   help="substance class, e.g. 'fentanyl-class opioid', 'cutting agent', "
                        "'explosive precursor', 'solvent'")
    s.add_argument("--hazard", dest="hazard_level", choices=("none", "low", "high", "extreme"),
                   help="hazard level; high and extreme raise the alarm and need --handling")
    s.add_argument("--handling", default=None, help="handling guidance shown with alarms")
    s.add_argument("--provenance", dest="provenance_kind", default="measured",
                   choices=("measured", "modelled", "in-silico"),
                   help="how the spectrum was obtained (default: measured); results resting "
                        "on a modelled or in-silico entry tell the officer to confirm in a "
                        "laboratory")
    s.add_argument("--source", help="where the spectrum comes from (laboratory, CRM lot, "
                                    "publication)")
    s.add_argument("--licence", help="licence or terms of use of the spectrum")
    s.add_argument("--substance", help="substance key shared by entries of the same substance "
                                       "(default: from the name; e.g. 'fentanyl' to stand "
                                       "beside or replace the modelled Fentanyl entry)")
    s.add_argument("--cas", help="CAS registry number")
    s.add_argument("--synonym", action="append", default=[], dest="synonyms",
                   help="another name the entry is found by (repeatable)")
    s.add_argument("--instrument", help="default: model and serial from the file")
    s.add_argument("--laser", type=float, dest="laser_nm", help="default: from the file")
    s.add_argument("--calibration", dest="calibration_id", help="calibration record id")
    s.add_argument("--reference", action="append", default=[], dest="references",
                   help="citation (repeatable)")
    s.add_argument("--notes", default="", help="free text kept with the entry")
    s.add_argument("--index", type=int, default=None,
                   help="spectrum of a multi-spectrum file to use (default: the only one)")
    s.add_argument("--average", action="store_true", help="average all spectra of the file")
    s.add_argument("--by", dest="added_by", help="who adds it")
    _out_arg(s)
    s.set_defaults(func=cmd_add)

    s = sub.add_parser("validate", help="check pending entries: SNR, saturation, coverage, "
                                        "calibration, duplicates, confusability",
                       description="Check entries before approval: signal-to-noise, "
                                   "saturation, axis coverage, calibration state, duplicates "
                                   "of existing entries, and the nearest other substances "
                                   "(flagged as confusable when closer than the engine's "
                                   "decision margin). Exit 1 when an entry fails a check.")
    _lib_arg(s)
    s.add_argument("entries", nargs="*", metavar="ENTRY", help="default: every pending entry")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--plot", metavar="OUT.png", help="plot entries over their nearest neighbours")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("approve", help="make an entry usable; records who and when",
                       description="Approve a pending entry so that identification uses it. "
                                   "Refuses entries that `validate` flags unless --force. The "
                                   "library version is bumped and its signature dropped: sign "
                                   "it again before distribution.")
    _lib_arg(s)
    _entry_arg(s)
    s.add_argument("--by", required=True, metavar="NAME", help="reviewer (recorded)")
    s.add_argument("--force", action="store_true",
                   help="approve although `validate` flags the entry (recorded in the log)")
    _out_arg(s)
    s.set_defaults(func=cmd_approve)

    s = sub.add_parser("retire", help="take an entry out of use (kept for the record)",
                       description="Retire an entry: identification stops using it; the entry "
                                   "and its spectrum stay in the file and the change log.")
    _lib_arg(s)
    _entry_arg(s)
    s.add_argument("--by", metavar="NAME", help="who retires it (recorded)")
    s.add_argument("--reason", default="", help="why (recorded in the change log)")
    _out_arg(s)
    s.set_defaults(func=cmd_retire)

    s = sub.add_parser("diff", help="entries added, retired, approved, changed between versions",
                       description="What changed between two library files: entries added, "
                                   "approved, retired, removed or changed, and whether the "
                                   "recipe changed - the input for re-identifying archives "
                                   "(`ramanid batch --since-library OLD`).")
    s.add_argument("old", metavar="OLD", help="older library file")
    s.add_argument("new", metavar="NEW", help="newer library file")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("export", help="write entries' raw spectra as JCAMP-DX or CSV files",
                       description="Write each entry's raw spectrum with its provenance as one "
                                   "file. Spectra of modelled or in-silico entries are marked "
                                   "as not measured in the file (name and metadata), so that "
                                   "identifying such a file never looks like a measured scan.")
    _lib_arg(s)
    s.add_argument("entries", nargs="*", metavar="ENTRY", help="default: every approved entry")
    s.add_argument("--format", required=True, choices=("jcamp", "csv"), help="file format")
    s.add_argument("--out", required=True, metavar="DIR", help="folder to write (created)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("keygen", help="create an Ed25519 signing key pair",
                       description="Create a signing key pair for a laboratory. Keep the "
                                   "private key secret; give the public key (KEY.pem.pub) to "
                                   "the field units, which install it in "
                                   "$RAMANID_HOME/trusted_keys/ and then load only libraries "
                                   "signed with it.")
    s.add_argument("--out", required=True, metavar="KEY.pem",
                   help="private key file (public key: KEY.pem.pub)")
    s.add_argument("--comment", default="", help="e.g. the laboratory's name")
    s.add_argument("--force", action="store_true", help="overwrite existing files")
    s.add_argument("--trust", action="store_true",
                   help="also install the public key in $RAMANID_HOME/trusted_keys")
    s.add_argument("--passphrase-env", metavar="VAR",
                   help="encrypt the private key with the passphrase in environment variable VAR")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("sign", help="sign a library with an Ed25519 private key",
                       description="Sign the library's content hash; any later change to the "
                                   "file invalidates the signature.")
    _lib_arg(s)
    s.add_argument("--key", required=True, metavar="KEY.pem",
                   help="private key written by `ramanid library keygen`")
    s.add_argument("--by", default="", metavar="NAME", help="signer (recorded)")
    s.add_argument("--passphrase-env", metavar="VAR",
                   help="the private key's passphrase is in environment variable VAR")
    _out_arg(s)
    s.set_defaults(func=cmd_sign)

    s = sub.add_parser("verify", help="check hashes and signature; list every problem",
                       description="Check the file hash, every entry's hash, the library hash "
                                   "and the signature, and list every problem (also for an "
                                   "altered file, for forensic inspection). Exit 0 when the "
                                   "library passes, 1 when it must not be used.")
    _lib_arg(s)
    _trust_args(s)
    s.add_argument("--require-signature", action="store_true",
                   help="fail unless signed by a trusted key (default: required when trusted "
                        "keys are configured)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_verify)


# -- helpers -----------------------------------------------------------------------------------
def _path(args: argparse.Namespace) -> Path:
    from ramanid.library import default_library_path

    return Path(args.library) if getattr(args, "library", None) else default_library_path()


def _load(args: argparse.Namespace, **kw: Any):
    from ramanid.library import load_library

    return load_library(_path(args), trusted_keys=getattr(args, "trusted_keys", None), **kw)


def _load_for_change(args: argparse.Namespace):
    """Load a library to modify it: integrity checked; signature not required (re-sign after)."""
    from importlib import resources

    from ramanid.library import load_library

    path = _path(args)
    bundled = Path(str(resources.files("ramanid.spectra_library") / "data" / "default.h5"))
    if not getattr(args, "out", None) and path.resolve() == bundled.resolve():
        raise UsageError("the bundled default library is not changed in place", source=path,
                         hint="pass --out NEW.h5 (or --library a copy of it)")
    return load_library(path, trusted_keys=[], require_signature=False)


def _save(lib, args: argparse.Namespace) -> Path:
    out = Path(args.out) if getattr(args, "out", None) else _path(args)
    lib.save(out)
    return out


def _passphrase(var: str | None) -> bytes | None:
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise UsageError(f"environment variable {var} is not set or empty",
                         hint="export the passphrase in it, or omit --passphrase-env")
    return value.encode("utf-8")


#: Figure formats accepted for --plot (matplotlib writers that need no extra package).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def _check_figure_path(path: str) -> None:
    """Refuse a --plot path whose extension matplotlib cannot write, before any work."""
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise UsageError(f"--plot: unsupported figure format {Path(path).suffix or '(none)'!r}",
                         source=path, hint="use a .png, .pdf or .svg file name")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=False))


# -- commands ----------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    """``ramanid library info``."""
    from collections import Counter

    lib = _load(args)
    by_status = Counter(e.status for e in lib.all_entries)
    by_kind = Counter(e.provenance_kind for e in lib.entries)
    by_hazard = Counter(e.hazard_level for e in lib.entries)
    info = {
        "path": str(lib.path), "name": lib.name, "format_version": lib.format_version,
        "version": lib.version, "parent_version": lib.parent_version, "created": lib.created,
        "sha256": lib.sha256, "recipe": {"name": lib.recipe.get("name"),
                                         "version": lib.recipe.get("version")},
        "axis_cm1": [float(lib.axis[0]), float(lib.axis[-1]), int(lib.axis.size)],
        "entries": {"total": len(lib.all_entries), **dict(by_status)},
        "usable_by_provenance": dict(by_kind), "usable_by_hazard": dict(by_hazard),
        "unmeasured_hazard_classes": lib.unmeasured_hazard_classes(),
        "signature": {"status": lib.signature_status,
                      **({k: lib.signature[k] for k in ("key_id", "signed_by", "signed_at")}
                         if lib.signature else {})},
        "changes": len(lib.changelog), "description": lib.description,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"{lib.name}  version {lib.version} (parent {lib.parent_version or '-'}), "
          f"created {lib.created}")
    print(f"file      {lib.path} (format {lib.format_version})")
    print(f"sha256    {lib.sha256}")
    print(f"recipe    {info['recipe']['name']} v{info['recipe']['version']}, axis "
          f"{lib.axis[0]:g}-{lib.axis[-1]:g} cm-1 ({lib.axis.size} points)")
    print("entries   " + ", ".join(f"{v} {k}" for k, v in info["entries"].items()))
    print("usable    " + ", ".join(f"{v} {k}" for k, v in sorted(by_kind.items())) +
          "; hazard " + ", ".join(f"{v} {k}" for k, v in sorted(by_hazard.items())))
    sig = info["signature"]
    print(f"signature {sig['status']}" + (f" (key {sig['key_id']}, {sig.get('signed_by') or '?'}"
                                          f", {sig.get('signed_at')})" if lib.signature else ""))
    for cls in info["unmeasured_hazard_classes"]:
        print(f"WARNING   no measured reference for class '{cls}': its entries are modelled; a "
              "negative result does not rule it out. Load a laboratory-validated library for "
              "field use.")
    return 0


def _row(e) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "substance_class": e.substance_class,
            "hazard_level": e.hazard_level, "provenance_kind": e.provenance_kind,
            "instrument": e.instrument, "status": e.status}


def cmd_list(args: argparse.Namespace) -> int:
    """``ramanid library list``."""
    lib = _load(args)
    rows = [e for e in lib.all_entries
            if (args.status == "all" or e.status == args.status)
            and (not args.substance_class or e.substance_class == args.substance_class)]
    if args.json:
        for e in rows:
            _print_json(_row(e))
        return 0
    print(f"{'id':16}  {'name':28} {'class':22} {'hazard':8} {'provenance':10} {'status':8} "
          "instrument")
    for e in rows:
        print(f"{e.id:16}  {e.name[:28]:28} {e.substance_class[:22]:22} {e.hazard_level:8} "
              f"{e.provenance_kind:10} {e.status:8} {(e.instrument or '-')[:40]}")
    print(f"{len(rows)} entries")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``ramanid library show ENTRY``."""
    lib = _load(args)
    e = lib.entry(args.entry)
    axis, _values = lib.raw(e.id)
    d = e.to_dict()
    d["raw_spectrum"] = {"points": int(axis.size), "from_cm1": float(axis[0]),
                         "to_cm1": float(axis[-1])}
    if args.json:
        _print_json(d)
        return 0
    for k, v in d.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        print(f"{k:16} {v}")
    if e.provenance_kind != "measured":
        print(f"NOTE             this entry is {e.provenance_kind.upper()}, not a measured "
              "spectrum: results resting on it must be confirmed in a laboratory.")
    return 0


def _scan_files(paths: list[str]) -> list[Path]:
    from ramanid.io import READ_EXTENSIONS

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file()
                            and f.suffix.lower() in READ_EXTENSIONS)
        else:
            files.append(p)
    return files


def cmd_build(args: argparse.Namespace) -> int:
    """``ramanid library build SOURCES --out FILE``."""
    if len(args.sources) == 1 and (args.sources[0].lower().endswith(".json")
                                   or args.sources[0] == "default"):
        from ramanid.spectra_library.build import build_from_catalogue

        # "default": the catalogue installed with ramanid (works outside a checkout too)
        lib = build_from_catalogue(None if args.sources[0] == "default" else args.sources[0])
    else:
        from ramanid.library import build_library

        srcs = [_source_from_file(f, {"name": f.stem, "added_by": args.by})
                for f in _scan_files(args.sources)]
        if not srcs:
            raise UsageError("no scan files found", source=" ".join(args.sources))
        lib = build_library(srcs, None, version=args.lib_version, name=args.name, by=args.by,
                            status="pending")
    out = lib.save(args.out)
    print(f"wrote {out}: {len(lib.all_entries)} entries ({len(lib.entries)} approved), "
          f"version {lib.version}, sha256 {lib.sha256}")
    return 0


def _source_from_file(path: Path, meta: dict[str, Any], index: int | None = None,
                      average: bool = False):
    import numpy as np

    from ramanid.io import read
    from ramanid.library import LibrarySource

    batch = read(path, laser_nm=meta.get("laser_nm"))  # the laser converts an nm axis
    simulated = any(str(m.get("simulated")).strip().lower() in ("true", "1", "yes")
                    for m in batch.meta)
    if simulated and meta.get("provenance_kind", "measured") == "measured":
        # Honest data: simulator output, demo mixtures and exported models carry `simulated`.
        raise UsageError("the file holds a SIMULATED scan (simulator output or an exported "
                         "model), not a measurement, so it cannot become a measured entry",
                         source=path, hint="add it with --provenance modelled and say in --notes "
                                           "how it was made, or add the real measurement")
    if average:
        values = batch.intensity.mean(axis=0)
    elif index is not None:
        if not 0 <= index < len(batch):
            raise UsageError(f"--index {index} out of range: the file holds {len(batch)} "
                             "spectra", source=path)
        values = batch.intensity[index]
    elif len(batch) > 1:
        raise UsageError(f"the file holds {len(batch)} spectra", source=path,
                         hint="pass --index N or --average")
    else:
        values = batch.intensity[0]
    m = batch.meta[index or 0]
    acq = {k: m[k] for k in ("timestamp", "integration_ms", "averages", "device_serial",
                             "device_model", "measurement_id", "software", "units")
           if m.get(k) is not None}
    acq["file"] = path.name
    if simulated:
        acq["simulated"] = True
    if average and len(batch) > 1:
        acq["averaged_spectra"] = len(batch)
    calibration = meta.pop("calibration_id", None) or m.get("calibration_id")
    if calibration:
        acq["calibration_id"] = calibration
    instrument = " ".join(str(x) for x in (m.get("device_model"), m.get("device_serial")) if x)
    meta["instrument"] = meta.get("instrument") or instrument or None
    meta["laser_nm"] = meta.get("laser_nm") or m.get("laser_nm")
    meta["acquisition"] = acq
    meta = {k: v for k, v in meta.items() if v is not None}
    return LibrarySource(batch.axis, np.asarray(values, dtype=np.float64), **meta)


def _ask(prompt: str) -> str:
    print(f"{prompt}: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip()


def cmd_add(args: argparse.Namespace) -> int:
    """``ramanid library add FILE ...``."""
    lib = _load_for_change(args)
    files = [Path(f) for f in args.files]
    if args.name and len(files) > 1:
        raise UsageError("--name names one entry but several files were given",
                         hint="add them one by one, or use --names-from-files")
    tty = sys.stdin.isatty()
    added = []
    for f in files:
        meta: dict[str, Any] = {
            "name": args.name or (f.stem if args.names_from_files else None),
            "substance_class": args.substance_class, "hazard_level": args.hazard_level,
            "handling": args.handling, "provenance_kind": args.provenance_kind,
            "source": args.source, "licence": args.licence, "cas": args.cas,
            "substance": args.substance,
            "synonyms": args.synonyms, "instrument": args.instrument, "laser_nm": args.laser_nm,
            "references": args.references, "notes": args.notes, "added_by": args.added_by,
            "calibration_id": args.calibration_id}
        missing = [(k, flag, text) for k, flag, text in _REQUIRED_ADD if not meta.get(k)]
        if missing and not tty:
            raise UsageError(f"missing metadata for {f.name}: "
                             + ", ".join(flag for _, flag, _ in missing),
                             hint="pass the flags (stdin is not a terminal, so ramanid does "
                                  "not ask)")
        for k, flag, text in missing:
            value = ""
            while not value:
                value = _ask(f"{f.name}: {text} [{flag}]")
                if k == "hazard_level" and value not in ("none", "low", "high", "extreme"):
                    print("  one of: none, low, high, extreme", file=sys.stderr)
                    value = ""
            meta[k] = value
        if meta["hazard_level"] in ("high", "extreme") and not meta.get("handling"):
            if tty:
                meta["handling"] = _ask(f"{f.name}: handling guidance for this hazardous "
                                        "substance [--handling]")
            if not meta.get("handling"):
                raise UsageError(f"hazard level {meta['hazard_level']} needs handling guidance",
                                 hint="pass --handling TEXT")
        by = meta["added_by"]
        src = _source_from_file(f, meta, args.index, args.average)
        added.append(lib.add(src, by=by, status="pending"))
    out = _save(lib, args)
    for e in added:
        print(f"added {e.id}  {e.name}  ({e.provenance_kind}, PENDING: run `ramanid library "
              f"validate` then `approve {e.id} --by NAME`)")
    print(f"wrote {out}: version {lib.version}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """``ramanid library validate``."""
    from ramanid.spectra_library.checks import format_table, plot_validation, validate_entries

    if args.plot:
        _check_figure_path(args.plot)
    lib = _load(args)
    reports = validate_entries(lib, args.entries or None)
    if not reports:
        print("no pending entries to validate (name entries to check approved ones)")
        return 0
    if args.json:
        for r in reports:
            _print_json(r)
    else:
        print(format_table(reports))
        print(f"(confusable: another substance scores >= {reports[0]['confusable_at']} = the "
              "engine's acceptance cap minus its decision margin)")
    if args.plot:
        try:
            plot_validation(lib, reports, args.plot)
        except OSError as exc:
            raise InputError(f"cannot write the figure ({exc.strerror or exc})",
                             source=args.plot) from None
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0 if all(r["ok"] for r in reports) else EXIT_INPUT


def cmd_approve(args: argparse.Namespace) -> int:
    """``ramanid library approve ENTRY --by NAME``."""
    from ramanid.spectra_library.checks import validate_entries

    lib = _load_for_change(args)
    report = validate_entries(lib, [args.entry])[0]
    blocking = report["problems"]
    if not report["ok"] and not args.force:
        raise UsageError(f"entry {report['id']} ({report['name']}) fails validation: "
                         + "; ".join(blocking), source=lib.path,
                         hint="fix the entry, or pass --force to approve it anyway")
    forced = "" if report["ok"] else "(forced despite: " + "; ".join(blocking) + ")"
    e = lib.approve(args.entry, by=args.by, note=forced)
    out = _save(lib, args)
    print(f"approved {e.id} {e.name} by {e.approved_by} at {e.approved_at}; wrote {out} "
          f"(version {lib.version}; sign it again before distribution)")
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    """``ramanid library retire ENTRY``."""
    lib = _load_for_change(args)
    e = lib.retire(args.entry, by=args.by, reason=args.reason)
    out = _save(lib, args)
    print(f"retired {e.id} {e.name}; wrote {out} (version {lib.version})")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """``ramanid library diff OLD NEW``."""
    from ramanid.library import diff_libraries, load_library

    d = diff_libraries(load_library(args.old, trusted_keys=[]),
                       load_library(args.new, trusted_keys=[]))
    if args.json:
        _print_json(d)
        return 0
    print(f"{args.old} (version {d['old_version']}) -> {args.new} (version {d['new_version']})")
    if d["recipe_changed"]:
        print("recipe changed: every processed spectrum differs; re-identify all archives")
    for key in ("added", "approved", "retired", "removed", "changed"):
        for e in d[key]:
            more = f"  fields: {', '.join(e['fields'])}" if key == "changed" else ""
            print(f"{key:9} {e['id']}  {e['name']}  [{e['hazard_level']}, "
                  f"{e['provenance_kind']}, {e['status']}]{more}")
    print(f"usable entries: +{len(d['usable_added'])} -{len(d['usable_removed'])}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``ramanid library export --format jcamp|csv --out DIR``."""
    from ramanid.io import write
    from ramanid.library import slugify
    from ramanid.spectrum import SpectrumBatch

    lib = _load(args)
    entries = [lib.entry(k) for k in args.entries] if args.entries else lib.entries
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError("--out must be a folder, and this is a file", source=out,
                         hint="pass a new or existing folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder ({exc.strerror or exc})", source=out) from None
    ext = {"jcamp": ".jdx", "csv": ".csv"}[args.format]
    unmeasured = 0
    for e in entries:
        axis, values = lib.raw(e.id)
        measured = e.provenance_kind == "measured"
        # A modelled/in-silico spectrum written to a file must never read back as a measured
        # scan: say so in its name and flag it like simulator output (`simulated`), which every
        # renderer labels "not a measured scan".
        name = e.name if measured else f"{e.name} ({e.provenance_kind.upper()}, not measured)"
        batch = SpectrumBatch.single(
            axis, values, name=name, source=f"library:{e.id}", laser_nm=e.laser_nm,
            device_serial=e.acquisition.get("device_serial"),
            device_model=e.acquisition.get("device_model"),
            timestamp=e.acquisition.get("timestamp"), scan_id=e.id,
            units=e.acquisition.get("units"))
        batch.meta[0].update({"provenance_kind": e.provenance_kind, "licence": e.licence,
                              "library_source": e.source})
        if not measured:
            batch.meta[0]["simulated"] = True
            unmeasured += 1
        tag = "" if measured else f"-{e.provenance_kind.upper()}"
        write(batch, out / f"{slugify(e.name)}{tag}-{e.id}{ext}", format=args.format)
    print(f"exported {len(entries)} entries as {args.format} to {out}")
    if unmeasured:
        print(f"note: {unmeasured} of them are NOT measured spectra (modelled/in-silico); their "
              "files are marked so and identify as simulated, never as measured scans")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """``ramanid library keygen --out KEY.pem``."""
    import shutil

    from ramanid import signing

    priv, pub, kid = signing.generate_keypair(args.out, comment=args.comment,
                                              overwrite=args.force,
                                              passphrase=_passphrase(args.passphrase_env))
    print(f"private key {priv} (keep it secret)\npublic key  {pub}\nkey id      {kid}")
    if args.trust:
        d = signing.trusted_keys_dir()
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pub, d / f"{kid}.pub")
        print(f"trusted     {d / (kid + '.pub')}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """``ramanid library sign --key KEY.pem``."""
    from ramanid import signing

    key = signing.load_private_key(args.key, _passphrase(args.passphrase_env))
    lib = _load_for_change(args)
    sig = lib.sign(key, by=args.by)
    out = _save(lib, args)
    print(f"signed {out}: library sha256 {lib.sha256}, key {sig['key_id']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``ramanid library verify``: exit 0 when the library passes every check, else 1."""
    lib = _load(args, allow_tampered=True,
                require_signature=True if args.require_signature else None)
    ok = not lib.integrity_problems
    result = {"path": str(lib.path), "ok": ok, "sha256": lib.sha256, "version": lib.version,
              "signature": lib.signature_status,
              "key_id": lib.signature.get("key_id") if lib.signature else None,
              "problems": lib.integrity_problems}
    if args.json:
        _print_json(result)
    else:
        print(f"{lib.path}: {'OK' if ok else 'REFUSED'} (version {lib.version}, signature "
              f"{lib.signature_status})")
        for p in lib.integrity_problems:
            print(f"  problem: {p}")
        if ok and lib.signature_status == "valid-untrusted":
            print("  note: the signature is valid, but no trusted key is configured, so it does "
                  "not show WHO signed it; pass --trusted-key LAB.pub to check it")
    if not ok:
        raise LibraryError(f"{len(lib.integrity_problems)} integrity problem(s)",
                           source=lib.path, hint="do not use this library")
    return 0

