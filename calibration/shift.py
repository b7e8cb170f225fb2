"""Raman-shift axis: conversion, check against ASTM E1840 reference bands, and correction.

* :func:`raman_axis` turns a detector coordinate into Raman shift with a wavelength fit and a laser
  wavelength (vacuum wavenumbers from air wavelengths).
* :func:`measure_bands` finds the peaks of a standard (sub-pixel centroids on the detector
  coordinate, converted to shift), matches them to reference shifts within a tolerance and
  returns the residual table.
* :func:`fit_shift_correction` is the ENLIGHTEN-style field correction: an offset when at least
  four bands match (a linear term as well when at least six match over 1000 cm-1), refused above
  20 cm-1 (ENLIGHTEN's ``MIN_PEAKS_FOUND = 4`` and ``MAX_WAVENUMBER_SHIFT = 20`` guards,
  algorithms.md 1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ramanid.calibration.peaks import find_peaks
from ramanid.calibration.reference import ReferenceBands
from ramanid.calibration.units import air_wavelength_to_shift

from ramanid.errors import CalibrationError

MIN_PEAKS = 4
MAX_CORRECTION_CM1 = 20.0
#: Bands measured below this signal-to-noise ratio are reported but neither fitted nor judged:
#: a centroid at SNR ~6 is uncertain by several cm-1, and the weak polystyrene C-H bands
#: (2852/2904/3054 cm-1) are unresolved multiplets at handheld resolution.
JUDGE_MIN_SNR = 10.0
#: Broad or unresolved bands (:data:`ramanid.calibration.reference.BROAD_BANDS_CM1`) are judged
#: with this multiple of the tolerance: their centroid at 8-13 cm-1 resolution moves by 1-2
#: cm-1 with band shape, not with the axis.
BROAD_TOLERANCE_FACTOR = 3.0


def raman_axis(x: np.ndarray, wavelength_fit, laser_nm: float) -> np.ndarray:
    """Raman shift (cm-1) of detector coordinate(s) ``x``."""
    return air_wavelength_to_shift(wavelength_fit(np.asarray(x, dtype=np.float64)), laser_nm)


@dataclass
class BandTable:
    """Reference bands matched to measured peaks (arrays of equal length)."""

    compound: str
    reference: np.ndarray
    measured: np.ndarray  # NaN where no peak matched
    snr: np.ndarray
    tolerance_cm1: float
    extra: dict = field(default_factory=dict)
    broad: np.ndarray | None = None  # True = broad band (wider tolerance); None = all sharp

    def broad_mask(self) -> np.ndarray:
        """Per band: True when it is broad/unresolved at handheld resolution."""
        if self.broad is None:
            return np.zeros(self.reference.shape, dtype=bool)
        return np.asarray(self.broad, dtype=bool)

    def band_tolerance(self, tolerance_cm1: float,
                       broad_factor: float = BROAD_TOLERANCE_FACTOR) -> np.ndarray:
        """Per-band tolerance: ``tolerance_cm1``, times ``broad_factor`` for broad bands."""
        return np.where(self.broad_mask(), tolerance_cm1 * broad_factor, tolerance_cm1)

    @property
    def error(self) -> np.ndarray:
        """measured - reference (NaN where unmatched)."""
        return self.measured - self.reference

    @property
    def matched(self) -> np.ndarray:
        """Mask of matched bands."""
        return np.isfinite(self.measured)

    def judged(self, min_snr: float = JUDGE_MIN_SNR) -> np.ndarray:
        """Mask of bands matched with SNR >= ``min_snr``: the ones fitted and judged."""
        with np.errstate(invalid="ignore"):
            return self.matched & (self.snr >= min_snr)

    def passed(self, tolerance_cm1: float, broad_factor: float = BROAD_TOLERANCE_FACTOR
               ) -> np.ndarray:
        """Per band: matched and |error| <= its tolerance (wider for broad bands)."""
        with np.errstate(invalid="ignore"):
            return self.matched & (np.abs(self.error)
                                   <= self.band_tolerance(tolerance_cm1, broad_factor))

    def rows(self, tolerance_cm1: float, min_snr: float = JUDGE_MIN_SNR,
             broad_factor: float = BROAD_TOLERANCE_FACTOR) -> list[dict]:
        """JSON-ready residual table; ``judged`` is False for bands too weak to judge;
        ``broad`` bands carry their wider ``tolerance_cm1``."""
        ok = self.passed(tolerance_cm1, broad_factor)
        judged = self.judged(min_snr)
        tol = self.band_tolerance(tolerance_cm1, broad_factor)
        return [{"reference_cm1": float(r), "measured_cm1": None if not np.isfinite(m) else
                 round(float(m), 3), "error_cm1": None if not np.isfinite(m) else
                 round(float(m - r), 3), "snr": None if not np.isfinite(s) else round(float(s), 1),
                 "judged": bool(j), "broad": bool(b), "tolerance_cm1": float(t), "pass": bool(p)}
                for r, m, s, p, j, b, t in zip(self.reference, self.measured, self.snr, ok,
                                               judged, self.broad_mask(), tol, strict=True)]


def measure_bands(x: np.ndarray, counts: np.ndarray, shift_of_x, reference: ReferenceBands, *,
                  tolerance_cm1: float = 8.0, min_snr: float = 5.0,
                  background_window: int = 61) -> BandTable:
    """Locate the reference bands of a standard in a measured spectrum.

    Parameters
    ----------
    x, counts
        Detector coordinate (increasing) and counts.
    shift_of_x
        Callable mapping ``x`` to Raman shift (cm-1), e.g. ``lambda x: raman_axis(x, wf, laser)``.
    reference
        Reference shifts (:func:`ramanid.calibration.reference.load_astm_e1840`).
    tolerance_cm1
        Largest distance between a reference band and the peak matched to it.
    min_snr
        Peak detection threshold.

    Returns
    -------
    BandTable
        Bands outside the measured range are reported unmatched.
    """
    pk = find_peaks(x, counts, min_snr=min_snr, background_window=background_window)
    shifts = np.asarray(shift_of_x(pk.position)) if len(pk) else np.empty(0)
    ax = np.asarray(shift_of_x(np.asarray([x[0], x[-1]], dtype=np.float64)))
    lo, hi = float(min(ax)), float(max(ax))
    measured = np.full(reference.shifts.shape, np.nan)
    snr = np.full(reference.shifts.shape, np.nan)
    taken: set[int] = set()
    # strongest reference classes first so a weak band never steals a strong band's peak
    for i in np.argsort(reference.intensity_class, kind="stable"):
        ref = reference.shifts[i]
        if not (lo + tolerance_cm1 <= ref <= hi - tolerance_cm1) or shifts.size == 0:
            continue
        d = np.abs(shifts - ref)
        cand = [j for j in np.argsort(d) if d[j] <= tolerance_cm1 and j not in taken]
        if cand:
            # the nearest, unless a clearly stronger peak is also within tolerance
            j = max(cand[:2], key=lambda k: pk.height[k] / (1.0 + d[k]))
            measured[i] = shifts[j]
            snr[i] = pk.snr[j]
            taken.add(int(j))
    return BandTable(reference.compound, reference.shifts.copy(), measured, snr, tolerance_cm1,
                     {"range_cm1": [lo, hi]}, reference.broad_mask().copy())


@dataclass
class ShiftCorrection:
    """``corrected = shift + c0 + c1 * shift`` (c1 = 0 for an offset correction)."""

    c0: float
    c1: float
    n_bands: int
    rms_before: float
    rms_after: float
    compound: str

    def __call__(self, shift: np.ndarray) -> np.ndarray:
        """Apply the correction to a shift axis."""
        s = np.asarray(shift, dtype=np.float64)
        return s + self.c0 + self.c1 * s

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {"c0": self.c0, "c1": self.c1, "n_bands": self.n_bands,
                "rms_before_cm1": self.rms_before, "rms_after_cm1": self.rms_after,
                "compound": self.compound}

    @classmethod
    def from_dict(cls, d: dict) -> ShiftCorrection:
        """Rebuild from :meth:`to_dict` output."""
        return cls(float(d["c0"]), float(d["c1"]), int(d["n_bands"]),
                   float(d["rms_before_cm1"]), float(d["rms_after_cm1"]), d.get("compound", ""))


def fit_shift_correction(table: BandTable, *, min_peaks: int = MIN_PEAKS,
                         max_correction_cm1: float = MAX_CORRECTION_CM1,
                         allow_linear: bool = True,
                         min_snr: float = JUDGE_MIN_SNR) -> ShiftCorrection:
    """Offset (or offset + linear) correction that moves measured bands onto the reference.

    Only bands matched with SNR >= ``min_snr`` are used, so that a weak, poorly located band
    cannot pull the correction. The offset is the median of their errors (robust to one
    mislocated band); the linear form is a least-squares line weighted by SNR.

    Raises
    ------
    CalibrationError
        Fewer than ``min_peaks`` bands matched with enough SNR, or a correction larger than
        ``max_correction_cm1`` anywhere in the matched range.
    """
    ok = table.judged(min_snr)
    n = int(ok.sum())
    if n < min_peaks:
        weak = int(table.matched.sum()) - n
        more = f" ({weak} more too weak, SNR < {min_snr:g})" if weak else ""
        raise CalibrationError(
            f"only {n} {table.compound} bands matched with SNR >= {min_snr:g}{more}; "
            f"need {min_peaks}",
            hint="measure the standard longer or with more laser power, or check the laser "
                 "and standard")
    ref, meas = table.reference[ok], table.measured[ok]
    err = ref - meas
    linear = allow_linear and n >= 6 and (meas.max() - meas.min()) >= 1000.0
    if linear:
        c1, c0 = np.polyfit(meas, err, 1, w=np.sqrt(table.snr[ok]))
    else:
        c0, c1 = float(np.median(err)), 0.0
    corr = c0 + c1 * meas
    if np.max(np.abs(corr)) > max_correction_cm1:
        raise CalibrationError(
            f"the {table.compound} bands call for a correction of up to "
            f"{np.max(np.abs(corr)):.1f} cm-1 (limit {max_correction_cm1:g}): recalibrate the "
            "wavelength axis and laser instead", hint="run `ramanid calibrate wavelength` and "
                                                      "`ramanid calibrate excitation`")
    after = err - corr
    return ShiftCorrection(float(c0), float(c1), n, float(np.sqrt(np.mean(err ** 2))),
                           float(np.sqrt(np.mean(after ** 2))), table.compound)
