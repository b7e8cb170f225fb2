"""Laboratory libraries start small: a library of 1-3 approved entries must identify each
entry's own spectrum (the unexplained-band limit derived from a handful of pseudo-scans
collapsed below the reference's own share of weak bands: lactose alone was `no_match`)."""

from __future__ import annotations

import itertools

import pytest

from ramanid.identify import VERDICTS, Identifier
from ramanid.library import LibrarySource, build_library, load_library
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(90)

NAMES = ("Lactose", "Caffeine", "Glucose", "Sucrose", "Acetaminophen", "Mannitol")


def _raw():
    lib = load_library()
    out = {}
    for e in lib.entries:
        if e.name in NAMES and e.provenance_kind == "measured" and \
                e.acquisition.get("set") == "enlighten-library":
            out[e.name] = lib.raw(e.id)
    return out


@pytest.mark.parametrize("size", [1, 2, 3])
def test_small_library_identifies_its_own_references(shared_data, size):
    raw = _raw()
    names = sorted(raw)
    assert len(names) >= 4, names
    wrong, runs = [], []
    for combo in itertools.islice(itertools.combinations(names, size), 6):
        lib = build_library([LibrarySource(*raw[n], name=n, substance=n) for n in combo])
        ident = Identifier(lib)
        for n in combo:
            ax, v = raw[n]
            rs = ident.run(SpectrumBatch(ax, v[None, :], [{}]))
            rec = rs.records()[0]
            if rec["verdict"] != "match" or VERDICTS[int(rs.verdict[0])] != "match" or \
                    ident.entries[int(rs.top_ids[0, 0])].name != n:
                wrong.append((combo, n, rec["reason"]))
            runs.append((combo, n, ident, rs))
    assert not wrong, wrong
    # the scan IS the reference: the unexplained-band limit never rejects it
    rejected = [(combo, n, float(rs.unexplained[0])) for combo, n, ident, rs in runs
                if rs.unexplained[0] > ident.unexplained_limit(rs.top_ids[:, 0])[0]]
    assert not rejected, rejected
