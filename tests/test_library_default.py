"""The shipped default library: reproducible build, honest provenance, real metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from ramanid.spectra_library.build import CATALOGUE, build_from_catalogue
from ramanid.spectra_library.modelled import render_bands

from ramanid.library import default_library_path, library_differences, load_library

pytestmark = pytest.mark.timeout(120)  # every test here does real file I/O

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "spectra_library"


@pytest.fixture(scope="module")
def lib():
    return load_library()


@pytest.mark.timeout(120)
def test_shipped_file_equals_a_fresh_build(lib):
    """Content comparison (hashes of metadata and raw spectra; processed rows to 1e-5)."""
    fresh = build_from_catalogue()
    assert lib.path == default_library_path()
    diffs = library_differences(lib, fresh)
    assert not diffs, ("spectra_library/data/default.h5 is stale, run "
                       "`python -m ramanid.spectra_library.build`: " + "; ".join(diffs))
    assert [e.id for e in fresh.all_entries] == [e.id for e in lib.all_entries]



def test_measured_entries_carry_real_provenance(lib):
    measured = [e for e in lib.entries if e.provenance_kind == "measured"]
    assert len(measured) == 89
    cat = json.loads(CATALOGUE.read_text())
    for e in measured:
        assert e.licence.startswith("MIT") and "Wasatch" in e.source
        assert e.laser_nm and 784 < e.laser_nm < 786
        f = PKG / e.acquisition["file"]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == e.acquisition["file_sha256"]
        ax, _ = lib.raw(e.id)
        assert [ax[0], ax[-1]] == e.acquisition["axis_range_cm1"]
    new = [e for e in measured if e.acquisition["set"] == "enlighten-library"]
    old = [e for e in measured if e.acquisition["set"] == "enlighten-library-older"]
    assert len(new) == 80 and len(old) == 9
    assert all(e.instrument.endswith("serial WP-01990") for e in new)
    assert all(e.acquisition["software"] == "ENLIGHTEN 4.1.44" for e in new)
    assert all(e.acquisition["timestamp"].startswith("2026-04-06") for e in new)
    assert all("older" in e.instrument for e in old)
    # the same substance from the second instrument is a separate entry, same substance key
    for name in ("acetaminophen", "cyclohexane", "glucose", "lactose", "sucrose", "toluene"):
        both = [e for e in measured if e.substance == name]
        assert len(both) == 2 and len({e.instrument for e in both}) == 2
    assert len(cat["entries"]) == 89
    assert (PKG / "data" / "LICENSE-ENLIGHTEN").read_text().startswith("MIT")
    assert (PKG / "sources" / "enlighten" / "LICENSE").read_bytes() == \
        (PKG / "data" / "LICENSE-ENLIGHTEN").read_bytes()


def test_hazard_classes(lib):
    an = lib.entry("Ammonium nitrate")
    assert (an.substance_class, an.hazard_level) == ("explosive precursor", "high")
    assert an.handling and any("2019/1148" in r for r in an.references)
    assert lib.entry("Caffeine").hazard_level == "none"
    assert lib.entries_by(name="Toluene")[0].hazard_level == "low"
    assert all(e.hazard_level in ("none", "low", "high", "extreme") for e in lib.all_entries)


def test_opioid_entries_are_modelled_with_citations(lib):
    opioids = [e for e in lib.entries if e.substance_class == "fentanyl-class opioid"]
    names = {e.name for e in opioids}
    assert "Fentanyl" in names and len(names) >= 6
    for e in opioids:
        assert e.provenance_kind == "modelled" and e.hazard_level == "extreme"
        assert "do not open" in e.handling and "naloxone" in e.handling
        assert "laboratory" in e.handling and "gloves" in e.handling
        assert len(e.references) >= 2 and "NOT MEASURED" in e.notes
        bands = e.acquisition["bands_cm1_relint_assignment"]
        assert any(998 <= b[0] <= 1005 for b in bands) and any(1024 <= b[0] <= 1032 for b in bands)
        assert e.instrument is None and e.laser_nm is None
    # the library says plainly that no measured reference exists for this hazard class
    assert lib.unmeasured_hazard_classes() == ["fentanyl-class opioid"]


def test_render_bands_places_lorentzians():
    ax = np.arange(300.0, 2300.0, 0.5)
    y = render_bands(ax, [[1003, 1.0, "a"], [1600, 0.5, "b"]], fwhm=10.0, peak_height=1000)
    assert ax[np.argmax(y)] == 1003 and y.max() == pytest.approx(1000)
    half = ax[y >= y.max() / 2]
    half = half[(half > 900) & (half < 1100)]
    assert half[-1] - half[0] == pytest.approx(10.0, abs=0.6)
    assert y[np.argmin(abs(ax - 1600))] == pytest.approx(500, rel=0.02)


def test_shipped_csv_copies_equal_the_shared_originals(shared_data):
    for sub in ("library", "library-older"):
        for f in sorted((shared_data / "enlighten" / sub).glob("*.csv")):
            copy = PKG / "sources" / "enlighten" / sub / f.name
            assert copy.read_bytes() == f.read_bytes(), f.name


@pytest.mark.timeout(120)
def test_modelled_procedure_validation_identifies_measured_substances():
    """The band-list procedure, applied to substances we measured, finds the right substance."""
    from ramanid.spectra_library.validate_modelled import validate

    rows = validate()
    checked = [r for r in rows if r["band_list"] in ("astm", "literature")]
    assert len(checked) >= 6
    for r in checked:
        assert r["rank_of_same_substance"] == 1, r
        assert r["band_mae_cm1"] < 5, r
