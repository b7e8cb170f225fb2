"""Build the default reference library from the source catalogue (reproducible, one command).

Usage::

    python -m ramanid.spectra_library.build     # writes spectra_library/data/default.h5
    python -m ramanid.spectra_library.build --check          # fresh build == shipped file?
    ramanid library build spectra_library/sources.json --out spectra_library/data/default.h5

The catalogue (``sources.json``) lists every measured file with its substance metadata and the
provenance of its set; ``modelled.json`` holds the modelled entries (band lists with citations).
The build is deterministic: the created timestamp comes from the catalogue, entries are sorted,
nothing random is used, so the library hash of a fresh build equals the shipped one as long as the
sources and the preprocessing recipe are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "sources.json"
DEFAULT_OUT = HERE / "data" / "default.h5"

#: Catalogue keys copied into the entry metadata as they are.
_ENTRY_KEYS = ("name", "substance", "synonyms", "cas", "substance_class", "hazard_level",
               "handling", "references", "notes")
#: Reader metadata kept in an entry's acquisition details.
_READER_KEYS = ("timestamp", "integration_ms", "averages", "measurement_id", "detector", "label",
                "device_serial", "device_model", "units", "intensity_column")


def load_catalogue(path: str | Path | None = None) -> dict[str, Any]:
    """Read the JSON catalogue (:data:`CATALOGUE` by default)."""
    from ramanid.errors import InputError

    path = Path(path) if path else CATALOGUE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("library source catalogue not found", source=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"catalogue is not valid JSON ({exc.msg} at line {exc.lineno})",
                         source=path) from None


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measured_sources(catalogue: dict[str, Any], root: Path) -> list[Any]:
    """LibrarySource objects of the catalogue's measured files (read with ``ramanid.io.read``)."""
    from ramanid.io import read
    from ramanid.library import LibrarySource

    lib = catalogue["library"]
    out = []
    for item in catalogue["entries"]:
        s = catalogue["sets"][item["set"]]
        rel = Path(s["dir"]) / item["file"]
        batch = read(root / rel)
        m = batch.meta[0]
        acq: dict[str, Any] = dict(s.get("acquisition", {}))
        acq.update({k: m[k] for k in _READER_KEYS if m.get(k) is not None})
        if m.get("software"):
            acq["software"] = f"ENLIGHTEN {m['software']}"
        acq.update({"file": rel.as_posix(), "file_sha256": _sha256_file(root / rel),
                    "set": item["set"], "axis_range_cm1": [float(batch.axis[0]),
                                                           float(batch.axis[-1])]})
        meta = {k: item[k] for k in _ENTRY_KEYS if item.get(k) is not None}
        meta.update(provenance_kind=s["provenance_kind"], source=f"{s['source']}: {item['file']}",
                    licence=s["licence"], instrument=s.get("instrument"),
                    laser_nm=m.get("laser_nm") or s.get("laser_nm"), acquisition=acq,
                    added_by=lib["added_by"], added_at=lib["created"],
                    approved_by=lib["approved_by"], approved_at=lib["created"],
                    status="approved")
        out.append(LibrarySource(batch.axis, batch.intensity[0], **meta))
    return out


def modelled_sources(catalogue: dict[str, Any], root: Path) -> list[Any]:
    """LibrarySource objects of the modelled entries (Lorentzian bands, with citations)."""
    from ramanid.spectra_library.modelled import render_entry

    from ramanid.library import LibrarySource

    if not catalogue.get("modelled"):
        return []
    doc = json.loads((root / catalogue["modelled"]).read_text(encoding="utf-8"))
    proc, lib = doc["procedure"], catalogue["library"]
    out = []
    for d in doc["entries"]:
        axis, values = render_entry(d, proc)
        meta = {k: d[k] for k in _ENTRY_KEYS if d.get(k) is not None}
        meta.update({k: v for k, v in doc["common"].items() if v is not None})
        meta.update(acquisition={"procedure": f"{proc['name']} v{proc['version']}",
                                 "state": d.get("state", "solid"),
                                 "fwhm_cm1": proc["fwhm_cm1"][d.get("state", "solid")],
                                 "bands_cm1_relint_assignment": d["bands"],
                                 "definition": catalogue["modelled"]},
                    added_by=lib["added_by"], added_at=lib["created"],
                    approved_by=lib["approved_by"], approved_at=lib["created"],
                    status="approved")
        out.append(LibrarySource(axis, values, **meta))
    return out


def build_from_catalogue(path: str | Path | None = None, recipe: Any = None) -> Any:
    """Build the library described by a catalogue, in memory.

    Parameters
    ----------
    path
        Catalogue file (default: the shipped ``sources.json``); relative paths inside it are
        relative to its folder.
    recipe
        Preprocessing recipe (object or dict); default the engine's ``default_recipe()``.
    """
    from ramanid.library import build_library

    path = Path(path) if path else CATALOGUE
    cat = load_catalogue(path)
    root = path.resolve().parent
    lib = cat["library"]
    sources = measured_sources(cat, root) + modelled_sources(cat, root)
    return build_library(sources, recipe, version=lib["version"], created=lib["created"],
                         name=lib["name"], description=lib.get("description", ""),
                         by=lib["added_by"],
                         changelog=[{"version": lib["version"], "at": lib["created"],
                                     "by": lib["added_by"], "action": "build", "entry_id": None,
                                     "note": f"built from {path.name}: {len(sources)} entries"}])


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m ramanid.spectra_library.build",
                                description="Build the default reference library.")
    p.add_argument("catalogue", nargs="?", default=str(CATALOGUE))
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 unless the --out file equals a fresh build")
    args = p.parse_args(argv)
    from ramanid.errors import RamanidError
    from ramanid.library import library_differences, load_library

    try:
        lib = build_from_catalogue(args.catalogue)
        if args.check:
            shipped = load_library(args.out)
            diffs = library_differences(shipped, lib)
            print(f"shipped {shipped.sha256}\nfresh   {lib.sha256}")
            print("\n".join(diffs) if diffs else "equivalent (same sources, metadata, recipe)")
            return 1 if diffs else 0
        lib.save(args.out)
    except RamanidError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(lib.all_entries)} entries, version {lib.version}, "
          f"recipe {lib.recipe.get('name')} v{lib.recipe.get('version')}, sha256 {lib.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
