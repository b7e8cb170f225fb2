"""Reference spectra the simulator places on its detector.

A sample is a *measured* spectrum (intensity against Raman shift) from the bundled library or a
file. The simulator only re-samples it through the device's wavelength calibration and adds
modelled background and noise, and every scan it produces is labelled as simulated.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ramanid.errors import InputError

_SHARED_LIBRARY_DIRS = ("enlighten/library", "enlighten/library-older")
DEFAULT_SAMPLE = "acetaminophen"


@dataclass(frozen=True)
class Sample:
    """A reference spectrum on a Raman-shift axis (cm-1, increasing)."""

    name: str
    shift: np.ndarray
    intensity: np.ndarray
    source: str


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (where the raw measured spectra live)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Minimal reader for ENLIGHTEN CSVs and two-column files (fallback when ramanid.io lacks
    ``read``): the ``Wavenumber`` column (or the first) against the last column."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    header_at = next((i for i, r in enumerate(rows) if r and r[0].strip() in
                      ("Pixel", "Wavenumber", "Raman Shift")), None)
    xcol = 0
    if header_at is not None:
        names = [c.strip() for c in rows[header_at]]
        xcol = names.index("Wavenumber") if "Wavenumber" in names else 0
        rows = rows[header_at + 1:]
    data = []
    for r in rows:
        try:
            data.append((float(r[xcol]), float(r[-1])))
        except (ValueError, IndexError):
            continue
    if len(data) < 2:
        raise InputError("no spectrum found", source=path)
    arr = np.asarray(data)
    return arr[:, 0], arr[:, 1]


def _read_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        from ramanid.io import read  # the I/O engineer's reader when present
    except ImportError:
        return _read_table(path)
    batch = read(path)
    return batch.axis, batch.intensity[0]


def find_sample_file(name: str) -> Path:
    """Resolve a sample name (case-insensitive file stem) in the shared measured libraries."""
    root = shared_data_dir()
    wanted = name.lower().strip()
    for sub in _SHARED_LIBRARY_DIRS:
        folder = root / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.csv")):
            if f.stem.lower() == wanted:
                return f
    raise InputError(f"no measured spectrum called {name!r} (the simulator only uses measured "
                     "references; modelled entries are not simulated)",
                     hint="give a spectrum file, or the name of a measured entry from "
                          "`ramanid library list`")


@functools.lru_cache(maxsize=64)
def _from_library(name: str) -> Sample | None:
    """A *measured* entry of the bundled library by name or synonym (None when absent)."""
    try:
        from ramanid.library import load_library

        lib = load_library()
    except Exception:
        return None
    wanted = name.lower().strip()
    for e in lib.all_entries:
        names = [e.name, *(getattr(e, "synonyms", None) or [])]
        if e.provenance_kind == "measured" and any(n.lower() == wanted for n in names):
            shift, inten = lib.raw(e.id)
            return _sample(e.name, shift, inten, f"library entry {e.id}: {e.source}")
    return None


def _sample(name: str, shift: np.ndarray, inten: np.ndarray, source: str) -> Sample:
    order = np.argsort(shift)
    shift, inten = np.asarray(shift, float)[order], np.asarray(inten, float)[order]
    return Sample(name, shift, np.clip(np.nan_to_num(inten), 0, None), source)


def load_sample(name_or_file: str | Path = DEFAULT_SAMPLE) -> Sample:
    """Load a measured reference spectrum by file path or library name.

    Parameters
    ----------
    name_or_file
        A spectrum file, or the name of a measured spectrum (e.g. ``"Caffeine"``): looked up
        among the *measured* entries of the bundled library, then in ../shared/data/enlighten.

    Returns
    -------
    Sample
        Shift axis sorted increasing, intensity with negative values clipped to zero.
    """
    path = Path(name_or_file)
    if not path.is_file():
        found = _from_library(str(name_or_file))
        if found is not None:
            return found
        path = find_sample_file(str(name_or_file))
    shift, inten = _read_file(path)
    return _sample(path.stem, shift, inten, str(path))
