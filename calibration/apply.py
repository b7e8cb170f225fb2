"""Apply a stored calibration record to scans (device pixels or an instrument's shift axis)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ramanid.calibration.rawfile import RawMeasurement
from ramanid.calibration.records import CalibrationRecord
from ramanid.calibration.units import air_wavelength_to_shift, shift_to_air_wavelength

from ramanid.errors import CalibrationError
from ramanid.spectrum import SpectrumBatch

PixelScan = tuple[np.ndarray, np.ndarray, Sequence[dict[str, Any]]]


def _finish(shift: np.ndarray, intensity: np.ndarray, meta: list[dict[str, Any]],
            record: CalibrationRecord, use_intensity: bool) -> SpectrumBatch:
    corr = record.shift_fit()
    if corr is not None:
        shift = corr(shift)
    inten = record.intensity_fit() if use_intensity else None
    if inten is not None:
        intensity = inten.apply(shift, intensity)
    order = np.argsort(shift)
    shift, intensity = shift[order], intensity[:, order]
    keep = np.concatenate([[True], np.diff(shift) > 0])
    for m in meta:
        m["calibration_id"] = record.id
        if record.laser_nm is not None:
            m["laser_nm"] = record.laser_nm
        if inten is not None:
            m["intensity_corrected_cm1"] = [inten.lo_cm1, inten.hi_cm1]
    return SpectrumBatch(shift[keep], intensity[:, keep], meta)


def apply_calibration(data: SpectrumBatch | PixelScan, record: CalibrationRecord, *,
                      laser_nm: float | None = None, intensity: bool = False) -> SpectrumBatch:
    """Put scans on the calibrated Raman-shift axis (and response-correct them when possible).

    Parameters
    ----------
    data
        Either a :class:`SpectrumBatch` whose axis is the instrument's own Raman shift (computed
        with the nominal laser ``meta["laser_nm"]`` or ``laser_nm``; when the batch carries its
        factory polynomial ``meta["wavecal_coeffs"]`` and the record a pixel fit, each point's
        pixel is recovered and the record's fit used), or a device scan
        ``(pixels, counts, meta)``: 1-D pixel indices, counts of shape ``(n_scans, n_pixels)``
        (or 1-D for one scan) and one metadata dict per scan.
    record
        The device's calibration record (:func:`load_record`).
    laser_nm
        Nominal laser of a batch whose metadata lacks it.
    intensity
        Also apply the record's SRM response correction (inside its certified range only).
        Off by default: a scan must be processed like the library it is matched against, and
        the shipped library is built from spectra that are not response-corrected (ENLIGHTEN
        exports, "Raman Intensity Corrected = False"). Turn it on for libraries built from
        SRM-corrected spectra.

    Returns
    -------
    SpectrumBatch
        Increasing calibrated shift axis; ``meta["calibration_id"]`` set, ``meta["laser_nm"]``
        the calibrated excitation; with ``intensity=True`` intensities multiplied by the SRM
        response correction inside its certified range only (``meta["intensity_corrected_cm1"]``
        gives that range).

    Raises
    ------
    CalibrationError
        When the record cannot be applied to this kind of data.
    """
    wf = record.wavelength_fit()
    if isinstance(data, SpectrumBatch):
        nominal = laser_nm or data.meta[0].get("laser_nm") or (wf.laser_nm if wf else None)
        meta = [dict(m) for m in data.meta]
        shift = data.axis.copy()
        coeffs = meta[0].get("wavecal_coeffs")
        if wf is not None and wf.x_kind == "pixel" and coeffs and nominal is not None:
            # The instrument computed its axis from its factory polynomial (plain 1/lambda):
            # recover each point's pixel, then use the record's pixel -> wavelength fit.
            lo, hi = wf.domain
            grid = np.linspace(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), 40001)
            wl_grid = np.polynomial.polynomial.polyval(grid, np.asarray(coeffs, dtype=float))
            if np.all(np.diff(wl_grid) > 0):
                wl_factory = 1e7 / (1e7 / float(nominal) - shift)
                pixels = np.interp(wl_factory, wl_grid, grid)
                laser = record.laser_nm or float(nominal)
                shift = air_wavelength_to_shift(wf(pixels), laser)
                return _finish(shift, np.array(data.intensity, dtype=np.float64), meta, record,
                               intensity)
        if record.laser_nm is not None or (wf is not None and wf.x_kind == "nominal_nm"):
            if nominal is None:
                raise CalibrationError(
                    "the scan's nominal laser wavelength is unknown, so its axis cannot be "
                    "recalibrated", source=meta[0].get("source"), hint="give --laser")
            wl = shift_to_air_wavelength(shift, float(nominal))
            if wf is not None and wf.x_kind == "nominal_nm":
                wl = wf(wl)
            shift = air_wavelength_to_shift(wl, record.laser_nm or float(nominal))
        return _finish(shift, np.array(data.intensity, dtype=np.float64), meta, record,
                       intensity)

    pixels, counts, meta_in = data
    if wf is None or wf.x_kind != "pixel":
        raise CalibrationError(
            f"calibration record {record.id} has no pixel -> wavelength fit",
            hint="run `ramanid calibrate wavelength` with a lamp spectrum from this device")
    laser = record.laser_nm or laser_nm
    if laser is None:
        raise CalibrationError(f"calibration record {record.id} has no laser wavelength",
                               hint="run `ramanid calibrate excitation`")
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    meta = [dict(m) for m in meta_in] or [{} for _ in range(counts.shape[0])]
    shift = air_wavelength_to_shift(wf(np.asarray(pixels, dtype=np.float64)), float(laser))
    return _finish(shift, counts, meta, record, intensity)


def shift_function(record: CalibrationRecord | None, meas: RawMeasurement
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """Map a raw measurement's detector coordinate to calibrated Raman shift.

    Uses the record's wavelength fit when it has one for this kind of coordinate (else the
    instrument's own scale), the record's laser (else the file's nominal one) and the record's
    shift correction.
    """
    wf = record.wavelength_fit() if record is not None else None
    if wf is not None and wf.x_kind != meas.x_kind:
        wf = None
    laser = (record.laser_nm if record is not None else None) or meas.laser_nm
    if laser is None:
        raise CalibrationError("the laser wavelength is unknown", source=meas.source,
                               hint="give --laser NM")
    corr = record.shift_fit() if record is not None else None
    nominal = meas.nominal_wavelength()

    def to_shift(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        wl = wf(x) if wf is not None else np.interp(x, meas.x, nominal)
        s = air_wavelength_to_shift(wl, float(laser))
        return corr(s) if corr is not None else s

    return to_shift
