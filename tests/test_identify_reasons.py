"""``Identifier.reason_texts`` (column-wise) against the row-by-row wording it replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ramanid.identify import _INCONCLUSIVE, _MATCH, _MIXTURE, REASONS, Identifier
from ramanid.library import load_library
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(300)


def _row_by_row(ident: Identifier, rs, i: int) -> str:
    """The reason of row ``i`` as the engine worded it one row at a time (the oracle)."""
    th = ident.thresholds
    ax = ident.recipe.params["axis"]
    span = f"{ax['start']:g}-{ax['stop']:g} cm-1"
    hz_names = [ident.entries[int(h)].name for h in ident.hazard_idx]
    r_corr = rs.r_corr if rs.r_corr is not None else rs.top_scores[:, 0]
    t_entry = ident._result_thresholds(rs)
    unexpl = rs.unexplained if rs.unexplained is not None else np.zeros(len(rs))
    v = int(rs.verdict[i])
    best = int(rs.top_ids[i, 0])
    name = ident.entries[best].name if best >= 0 else ""
    r, rc = float(rs.top_scores[i, 0]), float(r_corr[i])
    t = float(t_entry[best]) if best >= 0 else float("nan")
    shown = f"r={r:.3f}" if r >= t or rc < t else \
        f"r={r:.3f} ({rc:.3f} corrected for the scan's noise)"
    if v == _INCONCLUSIVE:
        code = int(rs.reason[i])
        if code == 1:
            cov = float(rs.qc["coverage"][i])
            text = (f"the scan does not cover the library axis ({span}): "
                    f"{100 * cov:.0f}% covered, {100 * th.min_coverage:.0f}% needed")
        else:
            text = REASONS[code]
        reason = f"quality check failed: {text}"
    elif v == _MATCH:
        reason = f"best match {name} {shown} >= its threshold {t:.3f}"
    elif v == _MIXTURE:
        n_comp = int((rs.comp_ids[i] >= 0).sum())
        reason = (f"mixture of {n_comp} significant components explains the scan "
                  f"(r={rs.mix_r[i]:.3f})")
    elif rc < t:
        reason = f"no library entry explains the scan: best {name} {shown} < its threshold {t:.3f}"
    else:
        reason = (f"no library entry explains the scan: best {name} {shown} reaches its "
                  f"threshold {t:.3f}, but {100 * float(unexpl[i]):.0f}% of the scan's band "
                  f"energy lies where {name} has no band (limit "
                  f"{100 * float(ident.unexplained_limit(np.array(best))):.0f}%)")
    if v != _INCONCLUSIVE and rs.hazard_hits.shape[1] and rs.hazard_hits[i].any():
        reason += "; hazard detector: " + ", ".join(
            f"{hz_names[j]} ~{100 * round(float(rs.hazard_fracs[i, j]), 3):.0f}%"
            for j in np.flatnonzero(rs.hazard_hits[i]))
    return reason


def _scans(shared_data: Path, n: int = 600) -> SpectrumBatch:
    """Library-derived scans of every kind: pure, noisy, shifted, mixtures with hazards,
    weak, saturated, flat, unknown bands."""
    from ramanid.io import read_batches

    rng = np.random.default_rng(21)
    files = sorted((shared_data / "enlighten" / "library-older").glob("*.csv"))
    axis = np.linspace(300.0, 1900.0, 800)
    real = np.array([np.interp(axis, b.axis, b.intensity[0] / b.intensity[0].max())
                     for f in files for b in read_batches(f)])
    a = rng.integers(0, len(real), n)
    b = rng.integers(0, len(real), n)
    f = np.where(rng.random(n) < 0.4, rng.uniform(0.05, 0.6, n), 0.0)
    y = (1 - f)[:, None] * real[a] + f[:, None] * real[b]
    y = np.array([np.interp(axis + s, axis, row) for s, row in
                  zip(rng.uniform(-6, 6, n), y, strict=True)])
    y = 1000 * y * rng.uniform(0.2, 5, (n, 1)) + rng.normal(0, 1, y.shape) \
        * rng.choice([0.5, 5, 50, 400], (n, 1))
    y[::37] = rng.normal(100, 5, (y[::37].shape))                          # noise only
    y[5::41] = np.minimum(y[5::41], np.percentile(y[5::41], 60, axis=1, keepdims=True))
    peaks = sum(800 / (1 + ((axis - c) / 6.0) ** 2) for c in rng.uniform(400, 1750, 5))
    y[7::29] = peaks + rng.normal(0, 3, axis.size)                         # unknown bands
    return SpectrumBatch(axis, y)


def test_reasons_equal_the_row_by_row_wording(shared_data: Path) -> None:
    ident = Identifier(load_library())
    scans = _scans(shared_data)
    cropped = SpectrumBatch(scans.axis[scans.axis <= 1200],
                            scans.intensity[:, scans.axis <= 1200])
    short = SpectrumBatch(scans.axis[scans.axis <= 700], scans.intensity[:, scans.axis <= 700])
    kinds = set()
    for batch in (scans, cropped, short):
        rs = ident.run(batch)
        got = ident.reason_texts(rs)
        want = [_row_by_row(ident, rs, i) for i in range(len(rs))]
        assert got.tolist() == want
        rows = np.array([len(rs) - 1, 0, 3, 3])
        assert ident.reason_texts(rs, rows).tolist() == [want[i] for i in rows]
        assert ident.reason_texts(rs, np.array([], dtype=int)).tolist() == []
        for w in want:
            kinds |= {k for k in _KINDS if k in w}
    # every kind of wording occurred (the comparison covered each branch)
    assert kinds == set(_KINDS)


_KINDS = ("quality check failed: the scan does not cover", "quality check failed: the",
          "best match", "mixture of", "< its threshold", "reaches its threshold",
          "corrected for the scan's noise", "hazard detector")
