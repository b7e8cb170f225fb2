"""Peer methods and shared data helpers for the engine benchmarks (run by hand).

Peers, implemented here as the peers do them (facts from ../shared/docs/algorithms.md, field.md):

* ENLIGHTEN (Wasatch): each library spectrum in turn, the scan is linearly interpolated onto that
  entry's axis over the overlap and a Pearson r is computed per entry in a Python loop; the best
  entry is accepted when r >= 0.65.
* Open Specy: Savitzky-Golay first derivative, absolute value, min-max scaling, then Pearson r
  against the whole library as one matrix product; best hit reported (we accept r >= 0.65 too,
  as no threshold is given).
* Speed peer pipeline: pybaselines arPLS per spectrum + scipy Savitzky-Golay + per-entry Pearson
  loop (the common open-source recipe).
"""

from __future__ import annotations

import glob
import os

import numpy as np
from scipy.signal import savgol_filter

ENLIGHTEN_MIN_SCORE = 0.65
DATA = os.environ.get("RAMANID_SHARED_DATA",
                      os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def files(sub: str) -> list[str]:
    """Sorted file paths under ``shared/data/<sub>``."""
    return sorted(glob.glob(os.path.join(DATA, sub)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Plain Pearson r of two 1-D arrays."""
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


class Enlighten:
    """ENLIGHTEN-style matcher: per-entry interpolation + Pearson loop, accept r >= 0.65."""

    def __init__(self, lib_axes: list[np.ndarray], lib_values: list[np.ndarray]) -> None:
        self.axes = lib_axes
        self.values = lib_values

    def best(self, axis: np.ndarray, y: np.ndarray) -> tuple[int, float]:
        best, bi = -2.0, -1
        for i, (ax, v) in enumerate(zip(self.axes, self.values, strict=False)):
            lo, hi = max(ax[0], axis[0]), min(ax[-1], axis[-1])
            sel = (ax >= lo) & (ax <= hi)
            if sel.sum() < 10:
                continue
            r = pearson(np.interp(ax[sel], axis, y), v[sel])
            if r > best:
                best, bi = r, i
        return bi, best


class OpenSpecy:
    """Open Specy-style matcher: SG 1st derivative, |.|, min-max, Pearson as one GEMM."""

    def __init__(self, grid: np.ndarray, lib_axes: list[np.ndarray], lib_values: list[np.ndarray],
                 window: int = 11, polyorder: int = 3) -> None:
        self.grid = grid
        self.window, self.polyorder = window, polyorder
        self.L = self._prep(np.vstack([np.interp(grid, a, v, left=np.nan, right=np.nan)
                                       for a, v in zip(lib_axes, lib_values, strict=False)]))

    def _prep(self, Y: np.ndarray) -> np.ndarray:
        Y = np.where(np.isfinite(Y), Y, np.nanmean(Y, axis=1, keepdims=True))
        D = np.abs(savgol_filter(Y, self.window, self.polyorder, deriv=1, axis=1))
        mn, mx = D.min(axis=1, keepdims=True), D.max(axis=1, keepdims=True)
        D = (D - mn) / np.where(mx > mn, mx - mn, 1.0)
        D = D - D.mean(axis=1, keepdims=True)
        return D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)

    def scores(self, axis: np.ndarray, Y: np.ndarray) -> np.ndarray:
        Q = np.vstack([np.interp(self.grid, axis, y, left=np.nan, right=np.nan) for y in Y])
        return self._prep(Q) @ self.L.T


def peer_pipeline(axis: np.ndarray, Y: np.ndarray, lib: np.ndarray, lam: float = 1e5
                  ) -> np.ndarray:
    """Speed peer: pybaselines arPLS per spectrum, SG(9,3), per-entry Pearson loop; best index."""
    from pybaselines import Baseline
    fitter = Baseline(axis)
    out = np.empty(Y.shape[0], dtype=np.int64)
    for i, y in enumerate(Y):
        z = y - fitter.arpls(y, lam=lam)[0]
        z = savgol_filter(z, 9, 3)
        scores = [pearson(z, entry) for entry in lib]
        out[i] = int(np.argmax(scores))
    return out


def read_xy(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Axis and intensity of a scan file via ramanid.io (first spectrum)."""
    from ramanid.io import read
    b = read(path)
    return b.axis, np.asarray(b.intensity[0], dtype=np.float64)


ENTRY_FIELDS = ("substance", "substance_class", "hazard_level", "handling", "provenance_kind",
                "source", "licence", "instrument", "laser_nm", "acquisition")


def current_library(keep=None):
    """The shipped default library rebuilt in memory with the current default recipe.

    ``keep(entry) -> bool`` selects entries (all when None).
    """
    from ramanid.library import LibrarySource, build_library, load_library
    src = load_library()
    sources = []
    for e in src.entries:
        if keep is not None and not keep(e):
            continue
        ax, v = src.raw(e.id)
        sources.append(LibrarySource(ax, v, name=e.name,
                                     **{f: getattr(e, f) for f in ENTRY_FIELDS}))
    return build_library(sources)
