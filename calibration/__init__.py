"""Calibration of Raman instruments: pixel to wavelength, Raman shift, laser wavelength and
intensity response, and the per-device calibration records (installed as ``ramanid.calibration``)."""

from ramanid.calibration.units import pixel_to_wavelength, shift_to_wavelength, wavelength_to_shift

__all__ = ["pixel_to_wavelength", "shift_to_wavelength", "wavelength_to_shift"]
