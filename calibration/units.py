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


def air_refractive_index(wavelength_nm: np.ndarray | float) -> np.ndarray:
    """Refractive index of standard dry air at ``wavelength_nm``.

    Edlén (1966) dispersion formula as updated by Birch & Downs (1994), in the form given by
    D. C. Morton, ApJS 130, 403 (2000), eq. 8 (the IAU standard used for NIST ASD air wavelengths):
    ``n - 1 = 8.34254e-5 + 2.406147e-2 / (130 - s^2) + 1.5998e-4 / (38.9 - s^2)``, ``s = 1000/nm``
    (um^-1). About 1.000275 at 785 nm. The wavelength may be air or vacuum: the difference changes
    ``n`` by less than 1e-9.
    """
    s2 = (1e3 / np.asarray(wavelength_nm, dtype=np.float64)) ** 2
    return 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)


def air_wavelength_to_shift(wavelength_nm: np.ndarray | float, laser_nm: float) -> np.ndarray:
    """Raman shift (vacuum wavenumber difference, cm-1) from AIR wavelengths of line and laser.

    Reference shifts (ASTM E1840, silicon) are true wavenumber differences, while lamp lines (NIST
    ASD) and spectrometer wavelength scales are in air. Using ``1/lambda_air`` directly would scale
    every shift by ``n_air`` (about +0.28 cm-1 at 1000 cm-1, +0.8 cm-1 at 3000 cm-1); this converts
    each wavelength to vacuum first.
    """
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    lam0 = float(laser_nm)
    return (NM_PER_CM / (lam0 * float(air_refractive_index(lam0)))
            - NM_PER_CM / (wl * air_refractive_index(wl)))


def shift_to_air_wavelength(shift_cm1: np.ndarray | float, laser_nm: float) -> np.ndarray:
    """Inverse of :func:`air_wavelength_to_shift`: AIR wavelength (nm) of a Raman shift."""
    s = np.asarray(shift_cm1, dtype=np.float64)
    lam0 = float(laser_nm)
    vac = NM_PER_CM / (NM_PER_CM / (lam0 * float(air_refractive_index(lam0))) - s)
    return vac / air_refractive_index(vac)


def laser_from_band(band_air_nm: float, shift_cm1: float) -> float:
    """AIR laser wavelength that puts a band measured at ``band_air_nm`` at ``shift_cm1``.

    ``lambda0 = 1e7 / (1e7 / lambda_band + shift)`` (algorithms.md 1.3), done in vacuum
    wavenumbers and returned in air.
    """
    nu_band = NM_PER_CM / (band_air_nm * float(air_refractive_index(band_air_nm)))
    vac = NM_PER_CM / (nu_band + shift_cm1)
    return float(vac / air_refractive_index(vac))
