"""Peak finding with sub-pixel centroids for calibration spectra (emission lamps, Raman standards).

The steps are: subtract a smooth lower envelope (rolling minimum then moving average, so broad
fluorescence and lamp continuum do not bias the peak shapes), estimate the noise from the median
absolute deviation of first differences, keep local maxima whose prominence exceeds ``min_snr``
times the noise, then refine each position by a least-squares Gaussian-plus-linear fit over its
top points (sub-pixel, on the actual coordinate, so non-uniform axes are handled).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, signal

_MAD_TO_SIGMA = 1.4826


@dataclass
class Peaks:
    """Peaks found in one spectrum (arrays of equal length, sorted by position).

    Attributes
    ----------
    position
        Sub-pixel centre in the coordinate of the input ``x``.
    height
        Height above the local background (counts).
    fwhm
        Full width at half maximum in ``x`` units.
    snr
        Height divided by the noise estimate.
    index
        Index of the local maximum in the input arrays.
    """

    position: np.ndarray
    height: np.ndarray
    fwhm: np.ndarray
    snr: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def select(self, mask: np.ndarray) -> Peaks:
        """Return the peaks where ``mask`` is true."""
        return Peaks(self.position[mask], self.height[mask], self.fwhm[mask], self.snr[mask],
                     self.index[mask])

    def strongest(self, n: int) -> Peaks:
        """Return the ``n`` highest peaks, still sorted by position."""
        keep = np.sort(np.argsort(-self.height)[:n])
        return Peaks(self.position[keep], self.height[keep], self.fwhm[keep], self.snr[keep],
                     self.index[keep])


def noise_sigma(y: np.ndarray) -> float:
    """Robust noise standard deviation of a spectrum from its first differences (MAD)."""
    d = np.diff(np.asarray(y, dtype=np.float64))
    mad = np.median(np.abs(d - np.median(d)))
    return float(_MAD_TO_SIGMA * mad / np.sqrt(2.0)) or float(np.std(d) / np.sqrt(2.0)) or 1.0


def subtract_background(y: np.ndarray, window: int = 61) -> np.ndarray:
    """Remove a smooth lower envelope (rolling minimum, then moving average) from ``y``."""
    y = np.asarray(y, dtype=np.float64)
    window = max(3, min(int(window), y.shape[-1] // 2 * 2 - 1))
    env = ndimage.minimum_filter1d(y, window, mode="nearest")
    env = ndimage.uniform_filter1d(env, window, mode="nearest")
    return y - np.minimum(env, y)


def _gauss_lin(x: np.ndarray, a: float, mu: float, s: float, b0: float, b1: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + b0 + b1 * (x - mu)


def refine_position(x: np.ndarray, y: np.ndarray, i: int, half: int = 3) -> tuple[float, float]:
    """Sub-pixel centre and FWHM of the peak whose maximum is at index ``i``.

    A Gaussian plus linear background is fitted by least squares to the points around ``i``
    (``half`` points either side, at least 2). When that fit fails or leaves the window, the
    vertex of a parabola through the three top points is used.

    Returns
    -------
    (centre, fwhm) in ``x`` units.
    """
    n = x.shape[0]
    lo, hi = max(0, i - half), min(n, i + half + 1)
    xs, ys = x[lo:hi], y[lo:hi]
    if 0 < i < n - 1:
        y0, y1, y2 = y[i - 1], y[i], y[i + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        frac = float(np.clip(frac, -0.5, 0.5))
        step = x[i + 1] - x[i] if frac > 0 else x[i] - x[i - 1]
        parabola = x[i] + frac * step
    else:
        parabola = float(x[i])
    width0 = max(float(xs[-1] - xs[0]) / 4.0, 1e-9)
    if xs.shape[0] >= 5:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = optimize.curve_fit(
                    _gauss_lin, xs, ys, p0=(y[i] - ys.min(), parabola, width0, ys.min(), 0.0),
                    maxfev=400)
            mu, s = float(p[1]), abs(float(p[2]))
            if xs[0] < mu < xs[-1] and p[0] > 0 and s < 4 * (xs[-1] - xs[0]):
                return mu, 2.3548 * s
        except (RuntimeError, ValueError, optimize.OptimizeWarning):
            pass
    return float(parabola), 2.0 * width0


def find_peaks(x: np.ndarray, y: np.ndarray, *, min_snr: float = 5.0,
               background_window: int = 61, half_window: int | None = None,
               max_peaks: int | None = None) -> Peaks:
    """Find peaks and their sub-pixel centres.

    Parameters
    ----------
    x
        Strictly increasing coordinate (pixel, nm or cm-1).
    y
        Intensities (counts), same length.
    min_snr
        Minimum prominence over the noise standard deviation.
    background_window
        Width in points of the rolling-minimum background estimate.
    half_window
        Points either side used in the centroid fit; by default from each peak's width.
    max_peaks
        Keep only the highest ``max_peaks`` peaks.

    Returns
    -------
    Peaks
    """
    x = np.asarray(x, dtype=np.float64)
    y = subtract_background(np.asarray(y, dtype=np.float64), background_window)
    sigma = noise_sigma(y)
    idx, props = signal.find_peaks(y, prominence=min_snr * sigma, width=0.5)
    if max_peaks is not None and idx.shape[0] > max_peaks:
        keep = np.sort(np.argsort(-props["prominences"])[:max_peaks])
        idx = idx[keep]
        props = {k: v[keep] for k, v in props.items()}
    pos = np.empty(idx.shape[0])
    fwhm = np.empty(idx.shape[0])
    for k, (i, w) in enumerate(zip(idx, props["widths"], strict=True)):
        half = half_window if half_window is not None else int(np.clip(round(0.8 * w), 2, 12))
        pos[k], fwhm[k] = refine_position(x, y, int(i), half)
    heights = props["prominences"]
    return Peaks(pos, heights, fwhm, heights / sigma, idx)
