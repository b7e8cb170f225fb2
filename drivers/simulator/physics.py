"""Physical model of a Raman detector, used by the simulator to make counts.

Expected counts per pixel for one frame of integration ``t`` seconds::

    mu = T(shift) * laser * (raman_rate * ref(pixel) + fluor_rate * F(wavelength)) * t
         + dark_current * t

``ref`` is the measured reference spectrum averaged over each pixel's Raman-shift bin (placed
through the wavelength calibration and excitation wavelength), ``F`` a broad fluorescence band,
``T`` a long-pass edge filter. Shot noise is Poisson in photo-electrons (``mu / gain``); read noise
is Gaussian; ``averages`` frames are averaged (their sum of Poisson draws is one Poisson draw); the
electronic offset is added and the result clipped to the ADC range (saturation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ramanid.calibration.units import pixel_to_wavelength, wavelength_to_shift
from ramanid.drivers.simulator.samples import Sample


@dataclass
class DetectorModel:
    """A simulated detector looking at one sample.

    Parameters
    ----------
    sample
        Measured reference spectrum.
    wavelength_coeffs
        Pixel -> nm polynomial, lowest order first.
    laser_nm
        Excitation wavelength.
    n_pixels
        Detector pixels.
    adc_bits
        ADC depth; counts saturate at ``2**adc_bits - 1``.
    raman_rate
        Counts/s at the strongest reference band.
    fluorescence_rate
        Counts/s at the top of the fluorescence band (0 for none).
    dark_offset
        Electronic offset in counts.
    dark_current
        Counts/s of thermal signal.
    read_noise
        Read noise, counts rms per frame.
    gain
        Counts per photo-electron.
    edge_cm1
        Long-pass edge-filter position (Raman shift).
    seed
        Random seed (reproducible noise).
    """

    sample: Sample
    wavelength_coeffs: tuple[float, ...]
    laser_nm: float
    n_pixels: int
    adc_bits: int = 16
    raman_rate: float = 40_000.0
    fluorescence_rate: float = 4_000.0
    dark_offset: float = 800.0
    dark_current: float = 30.0
    read_noise: float = 8.0
    gain: float = 1.0
    edge_cm1: float = 120.0
    seed: int = 0
    _signal: np.ndarray = field(init=False, repr=False)
    _fluor: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        edges_px = np.arange(self.n_pixels + 1, dtype=float) - 0.5
        wl_edges = pixel_to_wavelength(self.wavelength_coeffs, edges_px)
        shift_edges = wavelength_to_shift(wl_edges, self.laser_nm)
        ref = self.sample.intensity / max(float(self.sample.intensity.max()), 1e-12)
        x = self.sample.shift
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (ref[1:] + ref[:-1]) * np.diff(x))])
        c_edges = np.interp(shift_edges, x, cum, left=0.0, right=cum[-1])
        width = np.diff(shift_edges)
        binned = np.divide(np.diff(c_edges), width, out=np.zeros(self.n_pixels),
                           where=np.abs(width) > 0)
        centre_shift = 0.5 * (shift_edges[1:] + shift_edges[:-1])
        centre_wl = 0.5 * (wl_edges[1:] + wl_edges[:-1])
        edge = 1.0 / (1.0 + np.exp(-(centre_shift - self.edge_cm1) / 15.0))
        self._signal = edge * np.clip(binned, 0, None)
        fl_centre = self.laser_nm + 0.35 * (centre_wl.max() - self.laser_nm)
        self._fluor = edge * np.exp(-0.5 * ((centre_wl - fl_centre) / 80.0) ** 2)

    @property
    def max_count(self) -> int:
        """Largest ADC value (saturation level)."""
        return (1 << self.adc_bits) - 1

    def expected(self, integration_s: float, laser_on: bool) -> np.ndarray:
        """Mean counts per frame above the electronic offset (no noise)."""
        mu = np.full(self.n_pixels, self.dark_current * integration_s)
        if laser_on:
            mu += (self.raman_rate * self._signal
                   + self.fluorescence_rate * self._fluor) * integration_s
        return mu

    def acquire(self, integration_s: float, averages: int, laser_on: bool) -> np.ndarray:
        """Counts of one (averaged) readout as ``uint16``-range integers (int64 array)."""
        averages = max(1, int(averages))
        electrons = self.expected(integration_s, laser_on) / self.gain
        total = self.rng.poisson(electrons * averages).astype(float)
        counts = total * self.gain / averages
        counts += self.rng.normal(0.0, self.read_noise / np.sqrt(averages), self.n_pixels)
        counts += self.dark_offset
        return np.clip(np.rint(counts), 0, self.max_count).astype(np.int64)
