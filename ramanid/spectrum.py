"""The spectrum batch: the one data type every stage of ramanid takes and returns.

A batch is a shared, strictly increasing Raman-shift axis (cm-1) plus a 2-D intensity array with
one spectrum per row, plus one metadata dict per row. A single field scan is a batch of one.

Standard metadata keys (all optional, ``None`` when unknown):

``source``          file path, ``archive.h5#index`` or device URL the row came from
``scan_id``         stable identifier of the scan (set by readers/batch when known)
``name``            sample name or label
``device_serial``   serial number of the instrument
``device_model``    instrument model
``laser_nm``        excitation wavelength in nm
``integration_ms``  integration time in milliseconds
``averages``        number of scans averaged
``timestamp``       acquisition time, ISO 8601 string
``units``           intensity units (``"counts"``, ``"a.u."``, ...)
``calibration_id``  id of the calibration record applied to the axis/intensity
``operator``        who took the scan
``format``          file format the row was read from
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramanid.errors import InputError

META_KEYS = (
    "source",
    "scan_id",
    "name",
    "device_serial",
    "device_model",
    "laser_nm",
    "integration_ms",
    "averages",
    "timestamp",
    "units",
    "calibration_id",
    "operator",
    "format",
)


def _blank_meta() -> dict[str, Any]:
    return dict.fromkeys(META_KEYS)


@dataclass
class SpectrumBatch:
    """Spectra sharing one Raman-shift axis.

    Parameters
    ----------
    axis
        1-D strictly increasing Raman shift in cm-1, shape ``(n_points,)``.
    intensity
        2-D float array, shape ``(n_spectra, n_points)``. A 1-D array is taken as one spectrum.
    meta
        One dict per row. Missing standard keys (:data:`META_KEYS`) are filled with ``None``.
    """

    axis: np.ndarray
    intensity: np.ndarray
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.axis = np.asarray(self.axis, dtype=np.float64)
        intensity = np.asarray(self.intensity)
        if intensity.ndim == 1:
            intensity = intensity[np.newaxis, :]
        if not np.issubdtype(intensity.dtype, np.floating):
            intensity = intensity.astype(np.float64)
        self.intensity = intensity
        if not self.meta:
            self.meta = [_blank_meta() for _ in range(intensity.shape[0])]
        else:
            self.meta = [{**_blank_meta(), **dict(m)} for m in self.meta]
        self.check()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def single(cls, axis: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
               **meta: Any) -> SpectrumBatch:
        """Make a batch of one spectrum with the given metadata."""
        return cls(np.asarray(axis), np.asarray(values)[np.newaxis, :], [meta])

    @classmethod
    def concat(cls, batches: Iterable[SpectrumBatch]) -> SpectrumBatch:
        """Stack batches that share the same axis (raise :class:`InputError` otherwise)."""
        batches = list(batches)
        if not batches:
            raise InputError("no spectra to combine")
        axis = batches[0].axis
        for b in batches[1:]:
            if b.axis.shape != axis.shape or not np.allclose(b.axis, axis, rtol=0, atol=1e-6):
                raise InputError(
                    "spectra have different axes", source=b.meta[0].get("source"),
                    hint="resample them onto one axis first (ramanid.preprocess.resample)",
                )
        return cls(axis, np.vstack([b.intensity for b in batches]),
                   [m for b in batches for m in b.meta])

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.intensity.shape[0])

    @property
    def n_points(self) -> int:
        """Number of points on the axis."""
        return int(self.axis.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> SpectrumBatch:
        """Select rows; always returns a batch (a single int gives a batch of one)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        rows = np.arange(len(self))[index]
        return SpectrumBatch(self.axis, self.intensity[rows], [self.meta[i] for i in rows])

    def with_intensity(self, intensity: np.ndarray, axis: np.ndarray | None = None,
                       **meta_updates: Any) -> SpectrumBatch:
        """Return a batch with new intensities (and optionally axis), same metadata rows."""
        meta = [{**m, **meta_updates} for m in self.meta]
        return SpectrumBatch(self.axis if axis is None else axis, intensity, meta)

    def sources(self) -> list[str]:
        """The ``source`` of each row (``"<unknown>"`` when not set)."""
        return [str(m.get("source") or "<unknown>") for m in self.meta]

    # -- validation ---------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`InputError` unless axis and intensity are consistent and finite."""
        src = self.meta[0].get("source") if self.meta else None
        if self.axis.ndim != 1:
            raise InputError("spectrum axis must be one-dimensional", source=src)
        if self.intensity.ndim != 2 or self.intensity.shape[1] != self.axis.shape[0]:
            raise InputError(
                f"intensity shape {self.intensity.shape} does not fit an axis of "
                f"{self.axis.shape[0]} points", source=src)
        if len(self.meta) != self.intensity.shape[0]:
            raise InputError(f"{len(self.meta)} metadata rows for {self.intensity.shape[0]} "
                             "spectra", source=src)
        if self.axis.shape[0] < 2:
            raise InputError("a spectrum needs at least two points", source=src)
        if not np.all(np.isfinite(self.axis)):
            raise InputError("the spectral axis contains NaN or infinite values", source=src,
                             hint="remove those rows from the file")
        d = np.diff(self.axis)
        if np.any(d == 0):
            i = int(np.flatnonzero(d == 0)[0])
            raise InputError(f"the spectral axis repeats the value {self.axis[i]:g}", source=src,
                             hint="remove the duplicated points")
        if np.any(d < 0):
            raise InputError("the spectral axis is not monotonic", source=src,
                             hint="sort the file by its axis column")
        if not np.all(np.isfinite(self.intensity)):
            rows = np.flatnonzero(~np.all(np.isfinite(self.intensity), axis=1))
            bad = self.meta[int(rows[0])].get("source") or src
            raise InputError("the intensities contain NaN or infinite values", source=bad,
                             hint="re-export the scan or remove the bad points")

    def to_records(self) -> list[Mapping[str, Any]]:
        """Metadata rows, JSON-ready (numpy scalars converted to Python numbers)."""
        out = []
        for m in self.meta:
            out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items()})
        return out
