"""Preprocessing of spectrum batches into the matching space, as a named, versioned recipe.

Every step takes a 2-D batch (spectra x points) and returns one; there is no Python loop over
spectra. The default recipe (``default_recipe()``) runs, in order:

1. :func:`despike` - cosmic-ray removal on the native grid: Whitaker & Hayes (Chemometr. Intell.
   Lab. Syst. 2018, 179, 82-84) modified z-score ``0.6745 (x - median) / MAD`` of the local
   spikiness ``y_i - (y_{i-1} + y_{i+1})/2``, plus a width guard so that narrow but real bands of
   high-SNR spectra are kept: a point is a spike only if its excess over the neighbours is at
   least 60 % of its height over the local minimum within +-2 points.
2. :func:`resample` - onto the library axis (start/stop/step of the recipe) with a banded
   triangular kernel (a few weighted gathers per grid point): linear interpolation where the
   scan is coarser than the grid, local averaging where it is finer. Grid points outside the
   scan are "not covered"; the covered fraction is reported and matching uses only the covered
   part.
3. baseline removal - :mod:`ramanid.baseline` (``clipwhit`` by default: iterative clipping with
   a Whittaker smoother on 4-point block means; ``arpls``/``asls``/``modpoly``/``mor`` on
   request), on the covered part.
4. :func:`smooth` - Savitzky-Golay (coefficients by least squares on the window's Vandermonde
   matrix, as Savitzky & Golay, Anal. Chem. 1964, 36, 1627; edges repeat the end values),
   window/polyorder from the recipe (0 disables). numpy only: importing scipy.signal and
   scipy.ndimage would cost about 0.5 s at every start of ``ramanid identify``.
5. :func:`normalise` - ``X``: mean-centred, unit L2 per row, float32, so that the Pearson r of
   two processed spectra is their dot product (SNV gives the same r).

QC figures per spectrum (``Processed.qc``):

``snr``            largest baseline-removed band height above the median level / noise sigma
                   (noise from the MAD of the native first differences, divided by sqrt 2)
``saturation``     fraction of native points that sit on a flat top at the row maximum (the same
                   maximum value repeated on neighbouring pixels) or at/above ``saturation_level``;
                   0 for a constant row (no signal at all: ``snr`` is then exactly 0)
``fluorescence``   baseline-to-signal ratio: mean baseline over the covered range / band height
``coverage``       fraction of the library axis covered by the scan axis
``nonfinite``      points that are NaN or infinite (such a row is not processed: all zero)

Rows with values beyond the float32 range (|y| > 1e30) are scaled by their largest magnitude
before processing (every figure above is a ratio, so unchanged; ``signal`` is then in those
scaled units).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ramanid import baseline as _baseline
from ramanid.errors import UsageError
from ramanid.spectrum import SpectrumBatch

__all__ = [
    "Processed",
    "Recipe",
    "default_recipe",
    "despike",
    "noise_sigma",
    "normalise",
    "resample",
    "resampler",
    "savgol_coeffs",
    "smooth",
    "snv",
]

RECIPE_NAME = "ramanid-default"
RECIPE_VERSION = "3"

DEFAULT_PARAMS: dict[str, Any] = {
    "axis": {"start": 310.0, "stop": 1800.0, "step": 2.0},
    "despike": {"threshold": 8.0},
    "baseline": {"method": "clipwhit", "block": 4, "lam": 40.0, "n_iter": 10, "envelope": "mean"},
    "smooth": {"window": 7, "polyorder": 3},
    "normalise": "vector",
    "saturation_level": None,
}


# --------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------
def noise_sigma(y: np.ndarray, max_samples: int = 256) -> np.ndarray:
    """Robust per-row noise sigma: 1.4826 median(|first differences|) / sqrt(2).

    The median uses at most ``max_samples`` evenly strided differences per row (it estimates the
    same quantity at a fraction of the cost); first differences of a spectrum have a median of
    about 0, so the median absolute difference is the MAD.
    """
    stride = max(1, (y.shape[1] - 1) // max_samples)
    upper = y[:, 1::stride]                      # neighbour differences, every `stride` points
    d = np.abs(upper - y[:, 0:-1:stride][:, : upper.shape[1]])
    return 1.4826 * np.median(d, axis=1) / np.sqrt(2.0)


def despike(y: np.ndarray, threshold: float = 8.0, sigma: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Remove cosmic-ray spikes from every row (modified z-score with a width guard).

    Parameters
    ----------
    y
        Spectra, shape ``(n, m)`` (native grid).
    threshold
        Modified z-score above which a point can be a spike (Whitaker & Hayes use 5-10).
    sigma
        Per-row noise sigma if already known (see :func:`noise_sigma`).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Despiked copy of ``y`` and the number of spike points replaced per row.
    """
    y = np.asarray(y)
    n, m = y.shape
    if m < 7:
        return y.copy(), np.zeros(n, dtype=np.int64)
    if sigma is None:
        sigma = noise_sigma(y)
    s = np.zeros_like(y)
    np.add(y[:, :-2], y[:, 2:], out=s[:, 1:-1])
    s[:, 1:-1] *= -0.5
    s[:, 1:-1] += y[:, 1:-1]
    # s of white noise has sigma * sqrt(1.5); modified z = 0.6745 * s / MAD ~ s / sigma_s
    lim = (threshold * np.sqrt(1.5) * np.maximum(sigma, np.finfo(np.float32).tiny)).astype(y.dtype)
    cand = s > lim[:, None]
    cand[:, :3] = False
    cand[:, -3:] = False
    out = y.copy()
    counts = np.zeros(n, dtype=np.int64)
    r, c = np.nonzero(cand)
    if r.size == 0:
        return out, counts
    # width guard at the candidate points only: excess over neighbours vs height over local min
    win = y[r[:, None], c[:, None] + np.arange(-2, 3)[None, :]]
    height = y[r, c] - win.min(axis=1)
    spike = s[r, c] >= 0.6 * height
    r, c = r[spike], c[spike]
    if r.size == 0:
        return out, counts
    # replace the spike and its two flanks by the line between the points 2 away
    left, right = y[r, c - 2], y[r, c + 2]
    for k in (-1, 0, 1):
        out[r, c + k] = left + (right - left) * (k + 2) / 4.0
    np.add.at(counts, r, 1)
    return out, counts


class Resampler:
    """Banded resampling operator from a scan axis onto the covered part of the library grid.

    Grid point ``g`` is ``sum_k weights[k, g] * y[start[g] + k]`` (``k < weights.shape[0]``):
    a triangular kernel of half-width ``max(native step, grid step)``, normalised to sum 1.

    Attributes
    ----------
    start
        ``(hi-lo,)`` first native index of each grid point's kernel.
    weights
        ``(taps, hi-lo)`` kernel weights.
    lo, hi
        Covered grid index range.
    gain
        Factor by which white noise sigma shrinks (root mean of the squared weight sums).
    """

    def __init__(self, start: np.ndarray, weights: np.ndarray, lo: int, hi: int,
                 gain: float) -> None:
        self.start, self.weights, self.lo, self.hi, self.gain = start, weights, lo, hi, gain

    def apply(self, y: np.ndarray) -> np.ndarray:
        """Resample every row of ``y`` (n, len(axis)) onto ``grid[lo:hi]`` (same dtype)."""
        w = self.weights.astype(y.dtype)
        m = y.shape[1]
        out = y[:, self.start] * w[0]
        for k in range(1, w.shape[0]):
            out += y[:, np.minimum(self.start + k, m - 1)] * w[k]
        return out


@lru_cache(maxsize=32)
def _resampler_cached(axis_key: bytes, n_in: int, start: float, stop: float, step: float
                      ) -> Resampler:
    x = np.frombuffer(axis_key, dtype=np.float64)
    grid = grid_axis(start, stop, step)
    covered = (grid >= x[0]) & (grid <= x[-1])
    idx = np.flatnonzero(covered)
    if idx.size == 0 or n_in < 2:
        return Resampler(np.zeros(0, dtype=np.intp), np.zeros((1, 0)), 0, 0, 1.0)
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    g = grid[lo:hi]
    j = np.clip(np.searchsorted(x, g), 1, n_in - 1)
    native_step = x[j] - x[j - 1]
    h = np.maximum(native_step, step)  # kernel half-width: linear interp or local average
    k_max = int(np.ceil(np.max(h / np.min(np.diff(x))))) + 1
    ks = np.arange(-k_max, k_max + 1)[:, None]
    i = j[None, :] + ks                                          # (taps, G) native indices
    ok = (i >= 0) & (i < n_in)
    ii = np.clip(i, 0, n_in - 1)
    w = np.where(ok, np.maximum(0.0, 1.0 - np.abs(x[ii] - g[None, :]) / h[None, :]), 0.0)
    w /= w.sum(axis=0, keepdims=True)
    # keep only the band of taps with any weight, starting at each point's first used index
    used = w > 0
    first = np.argmax(used, axis=0)
    last = w.shape[0] - 1 - np.argmax(used[::-1], axis=0)
    taps = int(np.max(last - first)) + 1
    start_idx = ii[first, np.arange(g.size)]
    sel = first[None, :] + np.arange(taps)[:, None]
    inside = sel < w.shape[0]
    weights = np.where(inside, np.take_along_axis(w, np.minimum(sel, w.shape[0] - 1), axis=0),
                       0.0)
    gain = float(np.sqrt(np.mean(np.sum(w * w, axis=0))))
    return Resampler(start_idx.astype(np.intp), weights, lo, hi, gain)


def grid_axis(start: float, stop: float, step: float) -> np.ndarray:
    """The library axis ``start, start+step, ..., <= stop`` in cm-1."""
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(n)


def resampler(axis: np.ndarray, start: float, stop: float, step: float) -> Resampler:
    """Resampling operator from ``axis`` onto the covered part of the grid (cached per axis).

    Returns
    -------
    Resampler
        ``R.apply(Y)`` is the resampled batch on ``grid[R.lo:R.hi]``; ``R.gain`` the noise gain
        (factor by which white noise sigma shrinks).
    """
    axis = np.ascontiguousarray(axis, dtype=np.float64)
    return _resampler_cached(axis.tobytes(), axis.size, float(start), float(stop), float(step))


def resample(y: np.ndarray, axis: np.ndarray, start: float, stop: float, step: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample every row onto the grid; uncovered grid points are 0 and flagged.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Resampled batch ``(n, M)`` and the boolean coverage mask ``(M,)``.
    """
    rs = resampler(axis, start, stop, step)
    m_out = grid_axis(start, stop, step).size
    out = np.zeros((y.shape[0], m_out), dtype=y.dtype)
    if rs.hi > rs.lo:
        out[:, rs.lo:rs.hi] = rs.apply(y)
    mask = np.zeros(m_out, dtype=bool)
    mask[rs.lo:rs.hi] = True
    return out, mask


@lru_cache(maxsize=16)
def savgol_coeffs(window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing coefficients (value at the window centre), float64.

    The least-squares fit of a polynomial of degree ``polyorder`` to ``window`` equally spaced
    points evaluated at the centre is a fixed linear combination of the points: the first row
    of the pseudo-inverse of the Vandermonde matrix ``A[i, p] = (i - window // 2) ** p``.
    """
    if window % 2 == 0 or polyorder >= window:
        raise UsageError(f"Savitzky-Golay window {window} must be odd and > polyorder {polyorder}")
    x = np.arange(window, dtype=np.float64) - window // 2
    A = x[:, None] ** np.arange(polyorder + 1)[None, :]
    coef = np.linalg.pinv(A)[0]
    coef.setflags(write=False)
    return coef


def smooth(y: np.ndarray, window: int = 7, polyorder: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing of every row (``window`` < 3 or > row length: unchanged).

    Edges repeat the end values (scipy.ndimage ``mode="nearest"``).
    """
    if window < 3 or y.shape[1] < window:
        return y
    coef = savgol_coeffs(window, polyorder).astype(y.dtype)
    half = window // 2
    m = y.shape[1]
    pad = np.concatenate([np.repeat(y[:, :1], half, axis=1), y,
                          np.repeat(y[:, -1:], half, axis=1)], axis=1)
    out = pad[:, 0:m] * coef[0]
    for k in range(1, window):
        out += pad[:, k:k + m] * coef[k]
    return out


def normalise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-centre and scale every row to unit L2 norm (float32); zero rows stay zero.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The normalised rows and the norm of each centred row.
    """
    x = y - y.mean(axis=1, keepdims=True)
    nrm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    x = x / np.where(nrm > 0, nrm, 1.0).astype(x.dtype)[:, None]
    return x.astype(np.float32, copy=False), nrm


def snv(y: np.ndarray) -> np.ndarray:
    """Standard normal variate: each row minus its mean, divided by its standard deviation."""
    sd = y.std(axis=1, keepdims=True)
    return (y - y.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


# --------------------------------------------------------------------------------------------
# recipe
# --------------------------------------------------------------------------------------------
@dataclass
class Processed:
    """Output of :meth:`Recipe.process`.

    Attributes
    ----------
    axis
        The library axis (cm-1), shape ``(M,)``.
    X
        float32 ``(n, M)``: covered part mean-centred and unit L2, zeros outside coverage.
    qc
        dict of 1-D arrays: ``snr``, ``saturation``, ``fluorescence``, ``coverage``, ``spikes``.
    signal
        float32 ``(n, M)``: baseline-removed, smoothed spectra in the scan's units (for
        plots/mixtures), zeros outside coverage.
    baseline
        float32 ``(n, M)`` baseline that was removed (zeros outside coverage).
    lo, hi
        Covered grid index range ``[lo, hi)`` (one axis per batch).
    noise
        Per-row noise sigma per point in the units of ``X`` (after resampling and smoothing).
    norm
        Norm of each centred signal row (``signal`` = ``X * norm`` + mean on the covered part).
    """

    axis: np.ndarray
    X: np.ndarray
    qc: dict[str, np.ndarray]
    signal: np.ndarray
    baseline: np.ndarray
    lo: int
    hi: int
    noise: np.ndarray
    norm: np.ndarray
    recipe: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@dataclass
class Recipe:
    """A named, versioned preprocessing recipe; its ``params`` include the library axis."""

    name: str = RECIPE_NAME
    version: str = RECIPE_VERSION
    params: dict[str, Any] = field(default_factory=lambda: _merge(DEFAULT_PARAMS, {}))

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description ``{"name", "version", "params"}``."""
        return {"name": self.name, "version": self.version, "params": copy.deepcopy(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """Rebuild a recipe from :meth:`to_dict` output (missing params take the defaults)."""
        if not isinstance(d, dict) or "params" not in d:
            raise UsageError("recipe description must be a dict with 'name', 'version', 'params'")
        given = dict(d.get("params") or {})
        params = _merge(DEFAULT_PARAMS, given)
        if isinstance(given.get("baseline"), dict) and "method" in given["baseline"]:
            params["baseline"] = dict(given["baseline"])  # parameters belong to that method
        method = params["baseline"].get("method")
        if method not in (*_baseline.METHODS, "none"):
            raise UsageError(f"unknown baseline method {method!r} in recipe")
        return cls(str(d.get("name", RECIPE_NAME)), str(d.get("version", RECIPE_VERSION)), params)

    # -- axis -------------------------------------------------------------------------------------
    @property
    def axis(self) -> np.ndarray:
        """The library axis of this recipe (cm-1)."""
        a = self.params["axis"]
        return grid_axis(a["start"], a["stop"], a["step"])

    # -- processing -------------------------------------------------------------------------------
    def process(self, batch: SpectrumBatch, *, keep_baseline: bool = True) -> Processed:
        """Run the recipe on a batch (no Python loop over spectra).

        Parameters
        ----------
        batch
            Spectra on one increasing Raman-shift axis.
        keep_baseline
            Keep the removed baseline in the result (memory: one float32 array like ``X``).

        Returns
        -------
        Processed
        """
        return self.process_array(batch.axis, batch.intensity, keep_baseline=keep_baseline)

    def process_array(self, axis: np.ndarray, intensity: np.ndarray, *,
                      keep_baseline: bool = True) -> Processed:
        """:meth:`process` on a bare axis ``(m,)`` and intensity array ``(n, m)``."""
        p = self.params
        ax = p["axis"]
        raw = np.atleast_2d(np.asarray(intensity))
        y = raw if raw.dtype in (np.float32, np.float64) else raw.astype(np.float64)
        y, nonfinite = _sanitise(y)
        flat = y.max(axis=1) == y.min(axis=1) if y.shape[1] else np.ones(y.shape[0], bool)
        sigma = noise_sigma(y)
        sat = np.where(flat, 0.0, _saturation(y, p.get("saturation_level")))
        thr = p["despike"].get("threshold")
        spikes = np.zeros(y.shape[0], dtype=np.int64)
        if thr:
            y, spikes = despike(y, float(thr), sigma)
        rsm = resampler(axis, ax["start"], ax["stop"], ax["step"])
        lo, hi, gain = rsm.lo, rsm.hi, rsm.gain
        m_out = self.axis.size
        n = y.shape[0]
        X = np.zeros((n, m_out), dtype=np.float32)
        signal = np.zeros((n, m_out), dtype=np.float32)
        base_full = np.zeros((n, m_out), dtype=np.float32) if keep_baseline else None
        coverage = np.full(n, (hi - lo) / m_out)
        qc = {"snr": np.zeros(n), "saturation": sat, "fluorescence": np.zeros(n),
              "coverage": coverage, "spikes": spikes, "nonfinite": nonfinite}
        noise = np.full(n, np.inf)
        norm = np.zeros(n)
        if hi - lo >= 8:
            yr = np.ascontiguousarray(rsm.apply(y), dtype=np.float32)
            bl_params = {k: v for k, v in p["baseline"].items() if k != "method"}
            base = _baseline.estimate(yr, p["baseline"]["method"], **bl_params).astype(np.float32)
            sig = smooth(yr - base, int(p["smooth"]["window"]), int(p["smooth"]["polyorder"]))
            xc, norm = normalise(sig)
            X[:, lo:hi] = xc
            signal[:, lo:hi] = sig
            if base_full is not None:
                base_full[:, lo:hi] = base
            # band height above the median level (the median of a baseline-removed spectrum is
            # its baseline; for pure noise the height is then only ~3 smoothed sigma)
            height = np.maximum(sig.max(axis=1).astype(np.float64)
                                - np.median(sig[:, ::4], axis=1), 0.0)
            qc["snr"] = np.where(flat, 0.0, height / np.maximum(sigma, 1e-12))
            qc["fluorescence"] = np.maximum(base.mean(axis=1), 0.0) / np.maximum(height, 1e-12)
            w = int(p["smooth"]["window"])
            sg_gain = (float(np.sqrt(np.sum(savgol_coeffs(w, int(p["smooth"]["polyorder"])) ** 2)))
                       if w >= 3 else 1.0)
            noise = sigma * gain * sg_gain / np.maximum(norm, 1e-12)
        if base_full is None:
            base_full = np.zeros((0, m_out), dtype=np.float32)
        return Processed(self.axis, X, qc, signal, base_full, lo, hi, noise, norm, self.to_dict())


def _sanitise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with non-finite values zeroed (count returned); rows beyond float32 range scaled."""
    mx = np.max(np.abs(y), axis=1) if y.shape[1] else np.zeros(y.shape[0])
    bad = ~np.isfinite(mx)
    big = (mx > 1e30) & ~bad
    nonfinite = np.zeros(y.shape[0], dtype=np.int64)
    if bad.any() or big.any():
        y = y.astype(np.float64, copy=True)
        if bad.any():
            nonfinite[bad] = (~np.isfinite(y[bad])).sum(axis=1)
            y[bad] = 0.0
        y[big] /= mx[big, None]
    return y, nonfinite


def _saturation(y: np.ndarray, level: float | None) -> np.ndarray:
    """Fraction of points on a flat top at the row maximum, or at/above ``level``."""
    mx = y.max(axis=1, keepdims=True)
    at_max = y >= mx
    flat = at_max[:, 1:] & at_max[:, :-1]  # maximum repeated on neighbouring pixels
    frac = np.where(flat.any(axis=1), at_max.sum(axis=1), 0) / y.shape[1]
    if level is not None:
        frac = np.maximum(frac, (y >= float(level)).mean(axis=1))
    return frac.astype(np.float64)


def default_recipe() -> Recipe:
    """The recipe the shipped library is built with (see module docstring for the steps)."""
    return Recipe()
