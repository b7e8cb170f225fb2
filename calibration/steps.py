"""Calibration steps as the CLI runs them: read files, fit, build and save a device record.

Each ``calibrate_*`` function measures one thing, inherits the rest of the device's calibration
from its current record, decides pass/fail, saves the new record atomically and returns it.
:func:`check_standard` is the qualification check (nothing is saved).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ramanid.calibration.apply import shift_function
from ramanid.calibration.excitation import fit_excitation
from ramanid.calibration.intensity import fit_intensity
from ramanid.calibration.rawfile import RawMeasurement, read_raw
from ramanid.calibration.records import (
    DEFAULT_VALID_DAYS,
    CalibrationRecord,
    load_record,
    save_record,
)
from ramanid.calibration.reference import ReferenceBands, load_astm_e1840
from ramanid.calibration.shift import (
    BROAD_TOLERANCE_FACTOR,
    MIN_PEAKS,
    fit_shift_correction,
    measure_bands,
)
from ramanid.calibration.wavelength import fit_wavelength

from ramanid.errors import CalibrationError

DEFAULT_TOLERANCE_CM1 = 1.0


def _read_all(files: Sequence[str | Path], laser_nm: float | None) -> list[RawMeasurement]:
    if not files:
        raise CalibrationError("no measurement file given")
    return [read_raw(f, laser_nm=laser_nm) for f in files]


def _new(serial: str, kind: str, standard: str, files: Sequence[str | Path],
         valid_days: float | None, **fields: Any) -> CalibrationRecord:
    rec = CalibrationRecord(serial=serial, kind=kind, standard=standard,
                            source_files=[str(Path(f).resolve()) for f in files],
                            valid_days=float(valid_days or DEFAULT_VALID_DAYS[kind]), **fields)
    return rec.inherit(load_record(serial))


def calibrate_wavelength(serial: str, files: Sequence[str | Path], *, lamp: str = "neon",
                         laser_nm: float | None = None, max_order: int = 3,
                         max_rms_cm1: float = 1.0, valid_days: float | None = None,
                         save: bool = True) -> CalibrationRecord:
    """Fit pixel -> wavelength from lamp spectra and store it for ``serial``.

    A new wavelength fit invalidates the laser and shift corrections fitted on the old one, so
    those are not inherited (intensity correction is kept: it depends on the shift axis only
    weakly, and the record says which SRM measurement it came from).
    """
    meas = _read_all(files, laser_nm)
    wf = fit_wavelength(meas, lamp=lamp, laser_nm=laser_nm, max_order=max_order,
                        max_rms_cm1=max_rms_cm1)
    parent = load_record(serial)
    rec = CalibrationRecord(
        serial=serial, kind="wavelength", standard=f"{lamp} lamp (NIST ASD air wavelengths)",
        source_files=[str(Path(f).resolve()) for f in files],
        valid_days=float(valid_days or DEFAULT_VALID_DAYS["wavelength"]),
        laser_nm=laser_nm or meas[0].laser_nm, wavelength=wf.to_dict(),
        residuals={"rms_nm": wf.rms_nm, "rms_cm1": wf.rms_cm1, "max_cm1": wf.max_cm1,
                   "n_lines": len(wf.lines["x"]), "model": wf.model,
                   "loo_rms_cm1": wf.loo_rms_cm1, "lines": wf.lines},
        passed=bool(wf.loo_rms_cm1[wf.model] <= max_rms_cm1), tolerance_cm1=max_rms_cm1)
    if parent is not None:
        rec.parent = parent.id
        rec.intensity = parent.intensity
    if save:
        save_record(rec)
    return rec


def calibrate_excitation(serial: str, files: Sequence[str | Path], *, standard: str = "silicon",
                         reference_cm1: float | None = None, laser_nm: float | None = None,
                         max_deviation_nm: float = 1.5, valid_days: float | None = None,
                         save: bool = True) -> CalibrationRecord:
    """Fit the laser wavelength from one or more spectra of a Raman standard.

    With several spectra (e.g. several silicon wafers) the laser is the SNR^2-weighted mean and
    the spread is reported.
    """
    parent = load_record(serial)
    wf = parent.wavelength_fit() if parent is not None else None
    if wf is None:
        raise CalibrationError(f"device {serial} has no wavelength calibration",
                               hint="run `ramanid calibrate wavelength` with a lamp spectrum "
                                    "first")
    meas = _read_all(files, laser_nm)
    fits = [fit_excitation(m, wf, standard=standard, reference_cm1=reference_cm1,
                           nominal_laser_nm=laser_nm or m.laser_nm or wf.laser_nm,
                           max_deviation_nm=max_deviation_nm) for m in meas]
    w = np.array([f.band_snr ** 2 for f in fits])
    lasers = np.array([f.laser_nm for f in fits])
    laser = float(np.sum(w * lasers) / np.sum(w))
    spread_cm1 = float(1e7 / laser ** 2 * (lasers.max() - lasers.min()))
    rec = _new(serial, "excitation", f"{standard} {fits[0].reference_cm1:g} cm-1", files,
               valid_days, laser_nm=laser,
               excitation={"laser_nm": laser, "fits": [f.to_dict() for f in fits],
                           "spread_cm1": spread_cm1},
               residuals={"spread_cm1": spread_cm1,
                          "per_file_laser_nm": lasers.tolist()},
               passed=True, tolerance_cm1=None)
    rec.shift_correction = None  # a new laser supersedes the old field correction
    if save:
        save_record(rec)
    return rec


def _reference(compound: str, astm: str | Path | None,
               bands: Sequence[float] | None) -> ReferenceBands:
    ref = load_astm_e1840(compound, astm)
    if not bands:
        return ref
    keep = np.array([np.min(np.abs(np.asarray(bands, float) - s)) <= 0.5 for s in ref.shifts])
    if not keep.any():
        raise CalibrationError(f"none of the bands {list(bands)} is an ASTM E1840 band of "
                               f"{ref.compound}", hint=f"choose from {ref.shifts.tolist()}")
    return ReferenceBands(ref.compound, ref.shifts[keep], ref.intensity_class[keep], ref.source,
                          ref.broad_mask()[keep])


def _bands(serial: str, path: str | Path, compound: str, astm: str | Path | None,
           laser_nm: float | None, search_cm1: float, bands: Sequence[float] | None = None):
    rec = load_record(serial)
    meas = read_raw(path, laser_nm=laser_nm)
    ref = _reference(compound, astm, bands)
    to_shift = shift_function(rec, meas)
    table = measure_bands(meas.x, meas.counts, to_shift, ref, tolerance_cm1=search_cm1)
    return rec, meas, table


def calibrate_shift(serial: str, path: str | Path, *, compound: str = "polystyrene",
                    astm: str | Path | None = None, tolerance_cm1: float = DEFAULT_TOLERANCE_CM1,
                    laser_nm: float | None = None, search_cm1: float = 8.0,
                    allow_linear: bool = False, valid_days: float | None = None,
                    save: bool = True, broad_factor: float = BROAD_TOLERANCE_FACTOR
                    ) -> CalibrationRecord:
    """Offset (optionally linear) Raman-shift correction from an ASTM E1840 standard.

    Pass/fail: every judged sharp band within ``tolerance_cm1`` after correction, every judged
    broad band (:data:`~ramanid.calibration.reference.BROAD_BANDS_CM1`) within
    ``broad_factor * tolerance_cm1``.
    """
    parent, _, table = _bands(serial, path, compound, astm, laser_nm, search_cm1)
    if parent is not None and parent.shift_correction is not None:
        # measure on the axis *without* the old correction, so corrections do not stack
        base = CalibrationRecord.from_dict({**parent.to_dict(), "shift_correction": None})
        meas = read_raw(path, laser_nm=laser_nm)
        table = measure_bands(meas.x, meas.counts, shift_function(base, meas),
                              load_astm_e1840(compound, astm), tolerance_cm1=search_cm1)
    corr = fit_shift_correction(table, allow_linear=allow_linear)
    after = table.error + (corr.c0 + corr.c1 * table.measured)
    rows = table.rows(tolerance_cm1, broad_factor=broad_factor)
    for row, a in zip(rows, after, strict=True):
        row["error_after_cm1"] = None if not np.isfinite(a) else round(float(a), 3)
        row["pass"] = bool(np.isfinite(a) and abs(a) <= row["tolerance_cm1"])
    matched = [r for r in rows if r["judged"]]  # weak bands are reported, not judged
    rec = _new(serial, "shift", f"{table.compound} (ASTM E1840)", [path], valid_days,
               shift_correction=corr.to_dict(),
               residuals={"rms_before_cm1": corr.rms_before, "rms_after_cm1": corr.rms_after,
                          "broad_factor": broad_factor, "bands": rows},
               passed=bool(matched) and all(r["pass"] for r in matched),
               tolerance_cm1=tolerance_cm1)
    if save:
        save_record(rec)
    return rec


def calibrate_intensity(serial: str, path: str | Path, *, srm: str | None = None,
                        laser_nm: float | None = None, valid_days: float | None = None,
                        save: bool = True) -> CalibrationRecord:
    """Response correction from a measured NIST SRM 2241/2242a spectrum."""
    rec0 = load_record(serial)
    meas = read_raw(path, laser_nm=laser_nm)
    to_shift = shift_function(rec0, meas)
    laser = (rec0.laser_nm if rec0 is not None else None) or meas.laser_nm
    corr = fit_intensity(to_shift(meas.x), meas.counts, float(laser), srm=srm,
                         source=str(path))
    rec = _new(serial, "intensity", f"NIST SRM {corr.srm}", [path], valid_days,
               intensity=corr.to_dict(),
               residuals={"range_cm1": [corr.lo_cm1, corr.hi_cm1],
                          "factor_min": float(np.min(corr.factor)),
                          "factor_max": float(np.max(corr.factor))},
               passed=True)
    if save:
        save_record(rec)
    return rec


def check_standard(serial: str, path: str | Path, *, compound: str = "polystyrene",
                   astm: str | Path | None = None, tolerance_cm1: float = DEFAULT_TOLERANCE_CM1,
                   laser_nm: float | None = None, search_cm1: float = 8.0,
                   bands: Sequence[float] | None = None,
                   broad_factor: float = BROAD_TOLERANCE_FACTOR) -> dict[str, Any]:
    """Qualification: each reference band's error on the device's calibrated axis, pass/fail.

    ``bands`` restricts the check to some of the compound's ASTM bands (e.g. the sharp ones).

    Returns
    -------
    dict
        ``serial``, ``record_id``, ``compound``, ``tolerance_cm1``, ``bands`` (rows with
        ``reference_cm1``, ``measured_cm1``, ``error_cm1``, ``snr``, ``judged``, ``pass``,
        ``in_range``), ``n_matched``, ``n_judged``, ``n_pass``, ``passed``: at least
        ``MIN_PEAKS`` bands inside the measured range found with SNR >= ``JUDGE_MIN_SNR``
        and every such band within tolerance. Weaker or missing bands are reported but not
        judged (their centroid is too uncertain to fail a unit on). Broad bands (row
        ``broad``) are judged with ``broad_factor * tolerance_cm1`` (row ``tolerance_cm1``).
    """
    rec, _, table = _bands(serial, path, compound, astm, laser_nm, search_cm1, bands)
    rows = table.rows(tolerance_cm1, broad_factor=broad_factor)
    lo, hi = table.extra["range_cm1"]
    for r in rows:
        r["in_range"] = lo + search_cm1 <= r["reference_cm1"] <= hi - search_cm1
    judged = [r for r in rows if r["in_range"] and r["judged"]]
    return {"serial": serial, "record_id": rec.id if rec else None, "source": str(path),
            "compound": table.compound, "tolerance_cm1": tolerance_cm1,
            "broad_factor": broad_factor, "bands": rows,
            "n_matched": int(table.matched.sum()), "n_judged": len(judged),
            "n_pass": sum(r["pass"] for r in judged),
            "passed": len(judged) >= min(MIN_PEAKS, len(table.reference))
            and all(r["pass"] for r in judged)}
