"""Pixel-level reading of calibration measurements (private to :mod:`ramanid.calibration`).

Calibration needs what the general readers of :mod:`ramanid.io` deliberately hide: the detector
pixel index, the raw dark-subtracted counts and the instrument's own header (factory wavelength
polynomial, nominal laser wavelength). Two layouts are handled:

* **B&W Tek BWSpec ``.txt``**: ``key;value`` header lines (``coefs_a0..a3`` is the factory
  pixel -> wavelength polynomial, lowest order first; ``laser_wavelength`` the nominal laser),
  then a ``Pixel;Wavelength;...;Raw data #1;Dark Subtracted #1;...`` table with ``;``
  separators and ``,`` or ``.`` decimals. Some exports leave the wavelength columns blank; the
  pixel column and counts are always present.
* **Horiba two-column text** (LabSpec export) and every other format :mod:`ramanid.io` reads:
  Raman shift (cm-1, computed by the instrument with its nominal laser) and counts. There is no
  pixel column; the instrument's own axis, as nominal wavelength, is the coordinate to calibrate
  (see :class:`RawMeasurement`). The CHARISMA Horiba files are Raman shift (101-4500 cm-1), not
  wavelength: their neon lines only line up with NIST wavelengths through the nominal laser.

B&W Tek columns come from :func:`ramanid.io.bwtek.read_columns` (the I/O layer's parser); this
module only adds the calibration view (pixel coordinate, saturation mask, factory polynomial).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ramanid.errors import CalibrationError

# Nominal laser wavelengths of the Horiba exports, which carry no header: taken from the
# measurement's stated laser line (the CHARISMA index gives 532/633/785 nm; a HeNe laser is
# 632.8 nm). Callers can always pass the exact value.
NOMINAL_LASER_NM = {532: 532.0, 633: 632.8, 785: 785.0}


@dataclass
class RawMeasurement:
    """One raw measurement of a calibration standard.

    Attributes
    ----------
    source
        File the measurement was read from.
    x
        Detector coordinate, strictly increasing: the pixel index for B&W Tek files, the
        instrument's nominal wavelength in nm (from its Raman-shift axis and nominal laser) for
        Horiba two-column files.
    x_kind
        ``"pixel"`` or ``"nominal_nm"``.
    counts
        Dark-subtracted counts (1-D, same length as ``x``).
    laser_nm
        Nominal laser wavelength stated by the instrument (or supplied), ``None`` if unknown.
    wavelength_coeffs
        Factory pixel -> wavelength polynomial (lowest order first) when the file has one.
    header
        Raw header ``key -> value`` strings.
    saturated
        Boolean mask of points where the detector was saturated (raw counts at the ADC ceiling),
        or ``None`` when the file carries no raw counts.
    """

    source: str
    x: np.ndarray
    x_kind: str
    counts: np.ndarray
    laser_nm: float | None
    wavelength_coeffs: list[float] | None = None
    header: dict[str, str] = field(default_factory=dict)
    saturated: np.ndarray | None = None

    def nominal_wavelength(self) -> np.ndarray:
        """The instrument's own wavelength for each point (factory polynomial or nominal axis)."""
        if self.x_kind == "nominal_nm":
            return self.x.copy()
        if self.wavelength_coeffs is None:
            raise CalibrationError("the file holds no wavelength calibration to start from",
                                   source=self.source,
                                   hint="give the factory coefficients with --coeffs")
        return np.polynomial.polynomial.polyval(self.x, self.wavelength_coeffs)


def _num(text: str) -> float:
    return float(text.strip().replace(",", "."))


def _read_bwtek(path: Path) -> RawMeasurement:
    from ramanid.errors import InputError
    from ramanid.io.bwtek import read_columns

    try:
        header, cols = read_columns(path)
    except InputError as exc:
        raise CalibrationError(exc.message, source=path, hint=exc.hint) from exc
    header = {str(k).strip(): str(v).strip() for k, v in header.items()}
    if "Pixel" not in cols or "Dark Subtracted #1" not in cols:
        raise CalibrationError("the B&W Tek table lacks a Pixel or 'Dark Subtracted #1' column",
                               source=path)
    x = np.asarray(cols["Pixel"], dtype=np.float64)
    counts = np.asarray(cols["Dark Subtracted #1"], dtype=np.float64)
    raw = np.asarray(cols.get("Raw data #1", counts), dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(counts)
    if ok.sum() < 16:
        raise CalibrationError("too few data rows in the B&W Tek file", source=path)
    x, counts, raw = x[ok], counts[ok], raw[ok]
    coeffs = None
    if all(f"coefs_a{k}" in header for k in range(4)):
        coeffs = [_num(header[f"coefs_a{k}"]) for k in range(4)]
    laser = _num(header["laser_wavelength"]) if header.get("laser_wavelength") else None
    order = np.argsort(x)
    # 16-bit detectors: raw counts at (or within 0.5 % of) 65535 are clipped.
    saturated = raw[order] >= 0.995 * 65535.0
    return RawMeasurement(str(path), x[order], "pixel", counts[order], laser, coeffs, header,
                          saturated)


def _read_spectrum(path: Path, laser_nm: float | None) -> RawMeasurement:
    """Any other format :mod:`ramanid.io` reads (Horiba two-column, ENLIGHTEN, JCAMP, SPC,
    CSV): the instrument's own Raman-shift axis becomes its nominal wavelength."""
    from ramanid.errors import InputError
    from ramanid.io import read

    try:
        batch = read(path, laser_nm=laser_nm)
    except InputError as exc:
        raise CalibrationError(exc.message, source=path, hint=exc.hint) from exc
    laser = laser_nm or batch.meta[0].get("laser_nm")
    if laser is None:
        raise CalibrationError("the laser wavelength of this file is unknown", source=path,
                               hint="give it with --laser NM")
    x = 1e7 / (1e7 / float(laser) - batch.axis)
    if np.any(np.diff(x) <= 0) or not np.all(np.isfinite(x)):
        raise CalibrationError("the axis does not convert to increasing wavelengths",
                               source=path, hint="check --laser")
    return RawMeasurement(str(path), x, "nominal_nm", np.asarray(batch.intensity[0], float),
                          float(laser), None, {k: str(v) for k, v in batch.meta[0].items()})


def read_raw(path: str | Path, *, laser_nm: float | None = None) -> RawMeasurement:
    """Read a raw calibration measurement with its detector coordinate.

    Parameters
    ----------
    path
        B&W Tek ``.txt`` export or a two-column (Raman shift or wavelength, counts) text file.
    laser_nm
        Nominal laser wavelength; required for two-column files, overrides the B&W Tek header.

    Returns
    -------
    RawMeasurement

    Raises
    ------
    CalibrationError
        When the file cannot be read or lacks what calibration needs.
    """
    from ramanid.errors import InputError
    from ramanid.io import detect_format

    path = Path(path)
    try:
        fmt = detect_format(path)
    except InputError as exc:
        raise CalibrationError(exc.message, source=path, hint=exc.hint) from exc
    if fmt == "bwtek":
        meas = _read_bwtek(path)
        if laser_nm is not None:
            meas.laser_nm = float(laser_nm)
        return meas
    return _read_spectrum(path, laser_nm)
