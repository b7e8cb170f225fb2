"""Modelled spectra: Lorentzian bands at published positions (the procedure of modelled entries).

A modelled spectrum is ``sum_k a_k L(x; x_k, w)`` with the Lorentzian
``L = 1 / (1 + (2 (x - x_k) / w)^2)`` (height 1 at the band centre, full width at half maximum
``w``), scaled so that the strongest point equals ``peak_height``. Band positions and relative
intensities come from the definitions in ``modelled.json`` (with their citations); the width
comes from the physical state (solid or liquid) as measured on the reference instrument class.

The same function renders the validation spectra of ``validate_modelled.py``, so the validation
table measures exactly the procedure used for the shipped entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def render_bands(axis: np.ndarray, bands: Sequence[Sequence[float]], fwhm: float,
                 peak_height: float = 1000.0) -> np.ndarray:
    """Render Lorentzian bands on ``axis``.

    Parameters
    ----------
    axis
        Raman shift grid (cm-1).
    bands
        ``(position cm-1, relative intensity, ...)`` per band (extra items are ignored).
    fwhm
        Full width at half maximum of every band (cm-1).
    peak_height
        Height of the highest point of the result.

    Returns
    -------
    numpy.ndarray
        Float64 spectrum on ``axis``.
    """
    axis = np.asarray(axis, dtype=np.float64)
    pos = np.array([float(b[0]) for b in bands])
    amp = np.array([float(b[1]) for b in bands])
    y = (amp[:, None] / (1.0 + (2.0 * (axis[None, :] - pos[:, None]) / fwhm) ** 2)).sum(axis=0)
    top = y.max() if y.size else 0.0
    return y * (peak_height / top) if top > 0 else y


def procedure_axis(procedure: Mapping[str, Any]) -> np.ndarray:
    """The grid of the procedure (``axis`` start/stop/step)."""
    a = procedure["axis"]
    n = round((a["stop"] - a["start"]) / a["step"]) + 1
    return a["start"] + a["step"] * np.arange(n, dtype=np.float64)


def render_entry(definition: Mapping[str, Any], procedure: Mapping[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Axis and values of one modelled entry definition under ``procedure``."""
    axis = procedure_axis(procedure)
    fwhm = float(procedure["fwhm_cm1"][definition.get("state", "solid")])
    return axis, render_bands(axis, definition["bands"], fwhm,
                              float(procedure.get("peak_height", 1000.0)))
