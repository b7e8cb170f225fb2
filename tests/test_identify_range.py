"""Acceptance thresholds of scans that cover only part of the library axis.

``t_j`` comes from the correlation of entry j with its nearest other substance. Over a part of
the axis that nearest relative can be much farther (or closer) than over the whole axis: linseed
and sesame oil correlate at ~0.90 over 310-1800 cm-1 and ~0.65 over 310-1200 cm-1, where their
weak bands also keep a scan of the oil itself near r = 0.83. Scans are judged against the rule
applied to the range they cover (``Identifier.entry_thresholds``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ramanid.identify import VERDICTS, Identifier
from ramanid.library import LibrarySource, build_library, load_library
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(90)

NAMES = ("Linseed oil", "Sesame oil", "Caffeine", "Lactose", "Glucose", "Polystyrene", "Ethanol",
         "Glycerol", "Methanol", "Toluene")
FIELDS = ("substance", "substance_class", "hazard_level", "handling", "provenance_kind",
          "source", "licence", "instrument", "laser_nm", "acquisition")


def _library(exclude=()):
    lib = load_library()
    out, raw = [], {}
    for e in lib.entries:
        if e.name in NAMES and e.acquisition.get("set") == "enlighten-library":
            ax, v = lib.raw(e.id)
            raw[e.name] = (ax, v)
            if e.name not in exclude:
                out.append(LibrarySource(ax, v, name=e.name,
                                         **{f: getattr(e, f) for f in FIELDS}))
    return build_library(out), raw


@pytest.fixture(scope="module")
def oils(shared_data):
    lib, raw = _library()
    if not {"Linseed oil", "Sesame oil"} <= set(raw):
        pytest.skip("the default library has no linseed / sesame oil entries")
    return Identifier(lib), lib, raw


def _cropped(raw, names, lo=310.0, hi=1200.0, seed=0):
    rng = np.random.default_rng(seed)
    axis = np.arange(lo, hi + 1.0, 1.0)
    rows = []
    for n in names:
        ax, v = raw[n]
        s = np.interp(axis, ax, v)
        s = s - np.median(s)
        rows.append(s * 10000.0 / s.max() + rng.normal(0, 50.0, axis.size))
    return SpectrumBatch(axis, np.vstack(rows))


def test_whole_axis_gives_the_calibrated_thresholds(oils):
    ident, _, _ = oils
    th = ident.thresholds
    assert ident.entry_thresholds() is th.t_entry
    assert ident.entry_thresholds(0, ident.n_points) is th.t_entry
    assert ident.entry_thresholds(0, 10) is th.t_entry   # too little of the axis for a verdict


def test_partial_range_thresholds_follow_the_rule_on_that_range(oils):
    ident, _, _ = oils
    th = ident.thresholds
    lo, hi = 0, 446                                    # 310-1200 cm-1 on the 2 cm-1 grid
    t = ident.entry_thresholds(lo, hi)
    assert t.shape == th.t_entry.shape
    assert np.all(t >= 0.7 - 1e-9) and np.all(t <= th.t_cap + 1e-9)
    assert t is ident.entry_thresholds(lo, hi)         # cached per range
    # by hand: library rows restricted to the range, scored as a scan of that range is
    L = ident.matcher.stack[ident.matcher.zero].astype(np.float64)
    part = L[:, lo:hi] - L[:, lo:hi].mean(axis=1, keepdims=True)
    part /= np.linalg.norm(part, axis=1, keepdims=True)
    rows = np.zeros_like(L)
    rows[:, lo:hi] = part
    cross, _ = ident.matcher.scores(rows.astype(np.float32), lo, hi)
    cross[ident.subst[:, None] == ident.subst[None, :]] = -1.0
    q = cross.max(axis=1)
    floor = float(np.clip(np.median(q) + th.margin, 0.7, 0.9))
    assert np.allclose(t, np.clip(q + th.margin, floor, th.t_cap), atol=1e-6)
    names = [e.name for e in ident.entries]
    for oil in ("Linseed oil", "Sesame oil"):   # the oils are no near duplicates on this range
        assert t[names.index(oil)] < th.t_entry[names.index(oil)] - 0.1


@pytest.mark.parametrize("chunk", [1024, 1])
def test_oils_scanned_over_part_of_the_axis_match_and_say_so(oils, chunk):
    ident, lib, raw = oils
    ident = Identifier(lib, chunk=chunk, workers=2, thresholds=ident.thresholds)
    recs = ident.run(_cropped(raw, ["Linseed oil", "Sesame oil"])).records()
    for rec, want in zip(recs, ["Linseed oil", "Sesame oil"], strict=True):
        assert rec["verdict"] == "match" and rec["candidates"][0]["name"] == want, rec["reason"]
        # the reason quotes the threshold that decided (the range's), and its numbers agree
        m = re.search(r"r=([0-9.]+).* >= its threshold ([0-9.]+)", rec["reason"])
        assert m and float(m[1]) >= float(m[2]) - 5e-4, rec["reason"]
        assert float(m[2]) < 0.9, rec["reason"]


def test_a_relative_scanned_over_part_of_the_axis_is_still_no_match(shared_data):
    """Sesame oil held out of the library: its cropped scan must not become linseed oil."""
    lib, raw = _library(exclude=("Sesame oil",))
    if "Sesame oil" not in raw or "Linseed oil" not in raw:
        pytest.skip("the default library has no linseed / sesame oil entries")
    ident = Identifier(lib)
    rs = ident.run(_cropped(raw, ["Sesame oil"] * 3, seed=3))
    assert [VERDICTS[v] for v in rs.verdict] == ["no_match"] * 3
