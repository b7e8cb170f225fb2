"""Calibration of Raman instruments: pixel to wavelength, Raman shift, laser wavelength and
intensity response, and the per-device calibration records (installed as ``ramanid.calibration``).

Public API used by the rest of ramanid:

* :func:`load_record` ``(serial) -> CalibrationRecord | None``
* :func:`calibration_status` ``(serial, when=None) -> dict`` (``id``, ``age_days``, ``state`` in
  ok/missing/failed/stale, ``warning``)
* :func:`scan_calibration` ``(meta, when=None) -> dict`` (the same for one scan: the record it
  names in ``calibration_id``, aged at the scan's ``timestamp``)
* :func:`apply_calibration` ``(batch_or_pixel_scan, record) -> SpectrumBatch``

Fitting: :func:`fit_wavelength`, :func:`fit_excitation`, :func:`measure_bands`,
:func:`fit_shift_correction`, :func:`fit_intensity`; raw calibration files: :func:`read_raw`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Light parts are imported eagerly; the fitting modules (scipy) only on first use, so that
# `calibration_status` in every result costs no scipy import.
from ramanid.calibration.records import (
    CalibrationRecord,
    calibration_status,
    check_serial,
    list_records,
    list_serials,
    load_record,
    save_record,
    scan_calibration,
    usable_record,
)
from ramanid.calibration.units import (
    air_wavelength_to_shift,
    pixel_to_wavelength,
    shift_to_air_wavelength,
    shift_to_wavelength,
    wavelength_to_shift,
)

_LAZY = {
    "apply_calibration": "apply",
    "ExcitationFit": "excitation", "fit_excitation": "excitation",
    "IntensityCorrection": "intensity", "fit_intensity": "intensity",
    "RawMeasurement": "rawfile", "read_raw": "rawfile",
    "SILICON_CM1": "reference", "load_astm_e1840": "reference",
    "BandTable": "shift", "ShiftCorrection": "shift", "fit_shift_correction": "shift",
    "measure_bands": "shift", "raman_axis": "shift",
    "WavelengthFit": "wavelength", "fit_wavelength": "wavelength",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"ramanid.calibration.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ramanid.calibration' has no attribute {name!r}")

__all__ = [
    "SILICON_CM1",
    "BandTable",
    "CalibrationRecord",
    "ExcitationFit",
    "IntensityCorrection",
    "RawMeasurement",
    "ShiftCorrection",
    "WavelengthFit",
    "air_wavelength_to_shift",
    "apply_calibration",
    "calibration_status",
    "check_serial",
    "fit_excitation",
    "fit_intensity",
    "fit_shift_correction",
    "fit_wavelength",
    "list_records",
    "list_serials",
    "load_astm_e1840",
    "load_record",
    "measure_bands",
    "pixel_to_wavelength",
    "raman_axis",
    "read_raw",
    "save_record",
    "scan_calibration",
    "shift_to_air_wavelength",
    "shift_to_wavelength",
    "usable_record",
    "wavelength_to_shift",
]
