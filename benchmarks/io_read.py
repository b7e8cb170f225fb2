"""Reading speed of ramanid.io against named peers, measured in the same run (run by hand).

* ENLIGHTEN CSV (80 files of ../shared/data/enlighten/library): ``ramanid.io.read`` against
  ``numpy.genfromtxt`` on the same rows (header skipped by a prior scan, as a careful user would).
* JCAMP-DX (the Lancashire suite files that both decode fully, plus tannic_acid.jdx):
  ``ramanid.io.read_batches`` against the ``jcamp`` package (``jcamp.readfile``, MIT).

Usage: ``python benchmarks/io_read.py [--repeat N]``. Prints ms per file and the ratio.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from ramanid.io import read, read_batches

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _time(fn, files, repeat):  # tiny helper
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for f in files:
            fn(f)
        best = min(best, time.perf_counter() - t)
    return best / len(files) * 1000.0


def _genfromtxt_enlighten(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(("Pixel,", "Wavenumber,")))
    return np.genfromtxt(path, delimiter=",", skip_header=start + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    enl = sorted((DATA / "enlighten" / "library").glob("*.csv"))
    ours = _time(read, enl, args.repeat)
    peer = _time(_genfromtxt_enlighten, enl, args.repeat)
    print(f"ENLIGHTEN CSV ({len(enl)} files): ramanid.io.read {ours:.2f} ms/file, "
          f"numpy.genfromtxt {peer:.2f} ms/file, ratio {peer / ours:.1f}x")

    import jcamp

    suite = DATA / "formats" / "jcamp" / "data"
    cands = [*sorted(suite.glob("Robert_J_Lancashire_test_data/*.jdx")),
             suite / "raman_spectra" / "tannic_acid.jdx"]
    ok = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in cands:
            try:
                peer = jcamp.readfile(str(f))
                ours = read_batches(f)
            except Exception:
                continue
            if len(peer.get("y", [])) == ours[0].n_points:  # and the peer decoded fully
                ok.append(f)
        ours = _time(read_batches, ok, args.repeat)
        peer = _time(lambda f: jcamp.readfile(str(f)), ok, args.repeat)
    print(f"JCAMP-DX ({len(ok)} files both decode): ramanid.io {ours:.2f} ms/file, "
          f"jcamp.readfile {peer:.2f} ms/file, ratio {peer / ours:.1f}x")


if __name__ == "__main__":
    main()
