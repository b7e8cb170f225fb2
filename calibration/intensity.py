"""Relative intensity (instrument response) correction from a measured NIST SRM 2241/2242a.

``C(shift) = I_cert(shift) / S_meas(shift)``, ``corrected = sample * C`` (ASTM E2911 practice as
done by ENLIGHTEN and ramanchada2, algorithms.md section 2). ``S_meas`` is the dark-subtracted
SRM glass luminescence on the calibrated shift axis, smoothed (it is a broad band; smoothing keeps
detector noise out of the factor). ``C`` is defined only inside the SRM's certified range and
where the measured response is at least 5 % of its maximum; outside, scans are left as they are
and the record says so. ``C`` is normalised to a median of 1 so corrected spectra keep their
scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ramanid.calibration.reference import srm_for_laser
from scipy import ndimage, signal

from ramanid.errors import CalibrationError


@dataclass
class IntensityCorrection:
    """Per-shift multiplicative response correction, defined on ``axis_cm1`` only."""

    srm: str
    citation: str
    lo_cm1: float
    hi_cm1: float
    axis_cm1: np.ndarray
    factor: np.ndarray

    def factor_at(self, shift_cm1: np.ndarray) -> np.ndarray:
        """Correction factor at ``shift_cm1``; NaN outside the defined range."""
        s = np.asarray(shift_cm1, dtype=np.float64)
        out = np.interp(s, self.axis_cm1, self.factor, left=np.nan, right=np.nan)
        return np.where((s >= self.lo_cm1) & (s <= self.hi_cm1), out, np.nan)

    def apply(self, shift_cm1: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """Multiply each row of ``intensity`` by the factor inside the range, 1 elsewhere."""
        f = self.factor_at(shift_cm1)
        return np.asarray(intensity, dtype=np.float64) * np.where(np.isfinite(f), f, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {"srm": self.srm, "citation": self.citation, "lo_cm1": self.lo_cm1,
                "hi_cm1": self.hi_cm1, "axis_cm1": [round(float(v), 3) for v in self.axis_cm1],
                "factor": [float(f"{v:.6g}") for v in self.factor]}

    @classmethod
    def from_dict(cls, d: dict) -> IntensityCorrection:
        """Rebuild from :meth:`to_dict` output."""
        return cls(d["srm"], d.get("citation", ""), float(d["lo_cm1"]), float(d["hi_cm1"]),
                   np.asarray(d["axis_cm1"], dtype=np.float64),
                   np.asarray(d["factor"], dtype=np.float64))


def fit_intensity(shift_cm1: np.ndarray, counts: np.ndarray, laser_nm: float, *,
                  srm: str | None = None, min_coverage: float = 0.5, min_response: float = 0.05,
                  source: str | None = None
                  ) -> IntensityCorrection:
    """Response correction from a measured SRM spectrum on a calibrated shift axis.

    Parameters
    ----------
    shift_cm1
        Calibrated Raman-shift axis of the SRM measurement (any order).
    counts
        Dark-subtracted SRM counts.
    laser_nm
        Excitation wavelength; selects the SRM (2241 for 785 nm, 2242a for 532 nm) and refuses a
        laser the SRM is not certified for.
    srm
        Force the SRM (``2241`` or ``2242a``); still checked against ``laser_nm``.
    min_coverage
        Refuse when the measurement covers less than this fraction of the certified range.
    min_response
        The factor is defined only where the smoothed SRM signal exceeds this fraction of its
        maximum (0.05; higher values cut the range and leave a step at its edges).
    source
        Name of the measurement for error messages.

    Returns
    -------
    IntensityCorrection
    """
    cert = srm_for_laser(laser_nm, srm)
    s = np.asarray(shift_cm1, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    order = np.argsort(s)
    s, y = s[order], y[order]
    inside = (s >= cert.lo_cm1) & (s <= cert.hi_cm1)
    covered = (s[inside].max() - s[inside].min()) if inside.sum() > 1 else 0.0
    if covered < min_coverage * (cert.hi_cm1 - cert.lo_cm1):
        raise CalibrationError(
            f"the SRM {cert.srm} measurement covers {covered:.0f} cm-1 of its certified "
            f"{cert.lo_cm1:g}-{cert.hi_cm1:g} cm-1 range", source=source,
            hint="measure the SRM over the instrument's full range")
    s, y = s[inside], y[inside]
    # Spikes out (median filter), then a wide Savitzky-Golay smooth of the broad luminescence.
    y = ndimage.median_filter(y, size=7, mode="nearest")
    win = max(7, (y.size // 40) | 1)
    y = signal.savgol_filter(y, win, 2, mode="interp")
    if y.max() <= 0 or np.median(y) <= 0:
        raise CalibrationError(f"no SRM {cert.srm} luminescence in the measurement",
                               source=source, hint="check the SRM, the laser and the dark")
    ok = y > min_response * y.max()
    cert_i = cert.response(s)
    factor = np.full(s.shape, np.nan)
    factor[ok] = cert_i[ok] / y[ok]
    keep = np.isfinite(factor)
    factor = factor[keep] / np.median(factor[keep])
    axis = s[keep]
    return IntensityCorrection(cert.srm, cert.citation, float(axis.min()), float(axis.max()),
                               axis, factor)
