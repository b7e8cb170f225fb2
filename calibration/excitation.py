"""Excitation (laser) wavelength from a Raman standard measured on a wavelength-calibrated axis.

``lambda0 = 1e7 / (1e7 / lambda_band + shift_ref)`` (algorithms.md 1.3), evaluated in vacuum
wavenumbers from air wavelengths (:func:`ramanid.calibration.units.laser_from_band`). The band is
silicon's 520.7 cm-1 by default (configurable) or polystyrene's 1001.4 cm-1. A 785 nm instrument
moves a band by ~16 cm-1 per nm of laser error, so the guard against a wrong laser is tight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ramanid.calibration.peaks import find_peaks
from ramanid.calibration.rawfile import RawMeasurement
from ramanid.calibration.reference import POLYSTYRENE_PRIMARY_CM1, SILICON_CM1
from ramanid.calibration.units import air_wavelength_to_shift, laser_from_band
from ramanid.calibration.wavelength import WavelengthFit

from ramanid.errors import CalibrationError

STANDARD_BANDS = {"silicon": SILICON_CM1, "polystyrene": POLYSTYRENE_PRIMARY_CM1}


@dataclass
class ExcitationFit:
    """Result of a laser-wavelength determination."""

    laser_nm: float
    nominal_laser_nm: float | None
    standard: str
    reference_cm1: float
    band_x: float
    band_nm: float
    band_snr: float
    band_fwhm_cm1: float

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)


def _band_position(meas: RawMeasurement, wf: WavelengthFit, nominal: float, ref_cm1: float,
                   search_cm1: float, min_snr: float) -> tuple[float, float, float, float]:
    shift_nom = air_wavelength_to_shift(wf(meas.x), nominal)
    inside = np.abs(shift_nom - ref_cm1) <= search_cm1
    if inside.sum() < 5:
        raise CalibrationError(
            f"the spectrum does not cover {ref_cm1:g} cm-1 at {nominal:g} nm excitation",
            source=meas.source, hint="check the laser wavelength (--laser) and the file")
    pk = find_peaks(meas.x, meas.counts, min_snr=min_snr)
    if len(pk):
        at = np.interp(pk.position, meas.x, shift_nom)
        pk = pk.select(np.abs(at - ref_cm1) <= search_cm1)
    if not len(pk):
        raise CalibrationError(
            f"no band near {ref_cm1:g} cm-1 (searched +-{search_cm1:g} cm-1 around the nominal "
            f"{nominal:g} nm laser)", source=meas.source,
            hint="is this the right standard and the right laser? (--laser, --standard)")
    k = int(np.argmax(pk.height))
    x = float(pk.position[k])
    nm = float(wf(x))
    fwhm_nm = float(pk.fwhm[k] * np.gradient(wf(meas.x), meas.x)[int(pk.index[k])])
    fwhm_cm1 = 1e7 * fwhm_nm / nm ** 2
    return x, nm, float(pk.snr[k]), fwhm_cm1


def fit_excitation(meas: RawMeasurement, wf: WavelengthFit, *, standard: str = "silicon",
                   reference_cm1: float | None = None, nominal_laser_nm: float | None = None,
                   max_deviation_nm: float = 1.5, search_cm1: float = 40.0,
                   min_snr: float = 10.0) -> ExcitationFit:
    """Determine the laser wavelength from a silicon (or polystyrene) spectrum.

    Parameters
    ----------
    meas
        Raw spectrum of the standard, on the same detector coordinate as ``wf``.
    wf
        Wavelength calibration of the instrument (:func:`fit_wavelength`).
    standard
        ``silicon`` (520.7 cm-1) or ``polystyrene`` (1001.4 cm-1).
    reference_cm1
        Override the reference shift of the band (e.g. 520.45 for silicon).
    nominal_laser_nm
        The laser the instrument claims; defaults to the file's or the wavelength fit's.
    max_deviation_nm
        Refuse when the fitted laser differs from the nominal one by more than this.
    search_cm1
        Half width of the search window around the nominal band position.
    min_snr
        Minimum signal-to-noise of the band.

    Returns
    -------
    ExcitationFit
    """
    if standard not in STANDARD_BANDS and reference_cm1 is None:
        raise CalibrationError(f"unknown Raman standard {standard!r}",
                               hint="use silicon or polystyrene, or give --reference-cm1")
    ref = float(reference_cm1 if reference_cm1 is not None else STANDARD_BANDS[standard])
    nominal = nominal_laser_nm or meas.laser_nm or wf.laser_nm
    if nominal is None:
        raise CalibrationError("the nominal laser wavelength is unknown", source=meas.source,
                               hint="give it with --laser NM")
    x, nm, snr, fwhm = _band_position(meas, wf, float(nominal), ref, search_cm1, min_snr)
    laser = laser_from_band(nm, ref)
    if abs(laser - float(nominal)) > max_deviation_nm:
        raise CalibrationError(
            f"the {standard} band puts the laser at {laser:.3f} nm, {laser - nominal:+.2f} nm from "
            f"the nominal {nominal:g} nm (limit {max_deviation_nm:g} nm): wrong laser or wrong "
            "wavelength calibration", source=meas.source,
            hint="check --laser and that the lamp and standard come from the same instrument")
    return ExcitationFit(float(laser), float(nominal), standard, ref, x, nm, snr, fwhm)
