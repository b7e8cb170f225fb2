"""Unit conversions between pixel, wavelength and Raman shift.

Raman shift (cm-1) = 1e7 / laser_nm - 1e7 / wavelength_nm (Stokes side positive).
The wavelength of pixel ``p`` from polynomial coefficients ``c`` (lowest order first, the Ocean and
Wasatch convention) is ``sum_i c[i] * p**i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NM_PER_CM = 1e7


def wavelength_to_shift(wavelength_nm: np.ndarray | float, laser_nm: float) -> np.ndarray:
    """Convert wavelength(s) in nm to Raman shift in cm-1 for excitation ``laser_nm``."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    return NM_PER_CM / float(laser_nm) - NM_PER_CM / wl


def shift_to_wavelength(shift_cm1: np.ndarray | float, laser_nm: float) -> np.ndarray:
    """Convert Raman shift(s) in cm-1 to wavelength in nm for excitation ``laser_nm``."""
    s = np.asarray(shift_cm1, dtype=np.float64)
    return NM_PER_CM / (NM_PER_CM / float(laser_nm) - s)


def pixel_to_wavelength(coefficients: Sequence[float], n_pixels: int | np.ndarray) -> np.ndarray:
    """Evaluate the wavelength polynomial (lowest order first) at pixels ``0..n_pixels-1``.

    ``n_pixels`` may also be an explicit array of pixel indices.
    """
    pixels = np.arange(n_pixels, dtype=np.float64) if np.ndim(n_pixels) == 0 else np.asarray(
        n_pixels, dtype=np.float64)
    return np.polynomial.polynomial.polyval(pixels, np.asarray(coefficients, dtype=np.float64))
