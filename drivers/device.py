"""The user-facing device API, one for every protocol.

>>> from ramanid.drivers import open_device
>>> with open_device("sim://wasatch?pace=0", integration_ms=20) as dev:   # doctest: +SKIP
...     dev.set_laser(True)
...     scan = dev.acquire()
...     batch = scan.to_batch()

``open_device(url, protocol=None, **options)`` opens any pyserial URL (device path, pty path,
``socket://host:port``, ``sim://PROFILE?...``) and returns a :class:`Device`; with
``protocol=None`` the protocol is taken from a ``sim://`` profile or probed (Wasatch ping at
921600 baud, then OBP at 9600 baud).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
from ramanid.calibration.units import pixel_to_wavelength, wavelength_to_shift
from ramanid.drivers.errors import DeviceError, DeviceUnsupported, PortUnavailable
from ramanid.drivers.transport import Transport, wire_time

from ramanid.errors import UsageError

PROTOCOLS = ("obp", "wasatch")


@dataclass(frozen=True)
class Identity:
    """Who the device is."""

    protocol: str
    model: str
    serial: str
    firmware: str
    n_pixels: int
    url: str


@dataclass
class Acquisition:
    """One raw readout: counts per pixel with the device's axes and acquisition settings.

    Attributes
    ----------
    counts
        Counts per pixel (float64; averaged when ``averages > 1``; dark-subtracted when
        ``dark_subtracted``).
    pixels
        Pixel indices.
    wavelength_nm
        Wavelength of each pixel from the device's coefficients.
    """

    counts: np.ndarray
    pixels: np.ndarray
    wavelength_nm: np.ndarray
    identity: Identity
    wavelength_coeffs: tuple[float, ...]
    laser_nm: float | None
    integration_ms: float
    averages: int
    laser_on: bool | None
    timestamp: str
    dark_subtracted: bool = False
    saturated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def subtract_dark(self, dark: Acquisition) -> Acquisition:
        """Return this acquisition minus ``dark`` (same pixels and integration required)."""
        if dark.counts.shape != self.counts.shape:
            raise UsageError("dark and sample have different pixel counts")
        if abs(dark.integration_ms - self.integration_ms) > 1e-9:
            raise UsageError(f"dark integration {dark.integration_ms} ms differs from sample "
                             f"{self.integration_ms} ms", hint="take the dark with the same "
                                                               "settings")
        return replace(self, counts=self.counts - dark.counts, dark_subtracted=True,
                       extra={**self.extra, "dark_timestamp": dark.timestamp})

    def raman_shift(self, laser_nm: float | None = None,
                    wavelength_coeffs: tuple[float, ...] | None = None) -> np.ndarray:
        """Raman shift (cm-1) of each pixel.

        Parameters
        ----------
        laser_nm
            Excitation wavelength (default: the device's).
        wavelength_coeffs
            Pixel -> nm polynomial (default: the device's).
        """
        laser = laser_nm if laser_nm is not None else self.laser_nm
        if not laser:
            raise UsageError("the excitation wavelength is unknown", source=self.identity.url,
                             hint="pass --laser-nm (OBP devices do not report it)")
        wl = self.wavelength_nm if wavelength_coeffs is None else pixel_to_wavelength(
            wavelength_coeffs, self.pixels)
        return wavelength_to_shift(wl, laser)

    def metadata(self) -> dict[str, Any]:
        """Scan metadata in :data:`ramanid.spectrum.META_KEYS` terms (plus device extras)."""
        ident = self.identity
        simulated = ident.url.startswith("sim://") or ident.model.startswith("SIM") or \
            ident.serial.startswith("SIM-")
        return {
            "source": self.identity.url,
            "device_serial": self.identity.serial,
            "device_model": self.identity.model,
            "laser_nm": self.laser_nm,
            "integration_ms": self.integration_ms,
            "averages": self.averages,
            "timestamp": self.timestamp,
            "units": "counts",
            "firmware": self.identity.firmware,
            "protocol": self.identity.protocol,
            "wavecal_coeffs": list(self.wavelength_coeffs),
            "dark_subtracted": self.dark_subtracted,
            "laser_on": self.laser_on,
            "saturated_pixels": self.saturated,
            "simulated": simulated,
            **self.extra,
        }

    def to_batch(self, laser_nm: float | None = None,
                 wavelength_coeffs: tuple[float, ...] | None = None, **meta: Any):
        """A one-row :class:`~ramanid.spectrum.SpectrumBatch` on an increasing Raman-shift axis.

        Pixels whose shift does not increase with wavelength order are sorted; ``meta`` entries
        override the defaults of :meth:`metadata`.
        """
        from ramanid.spectrum import SpectrumBatch

        shift = self.raman_shift(laser_nm, wavelength_coeffs)
        order = np.argsort(shift, kind="stable")
        md = {**self.metadata(), **meta}
        if laser_nm is not None:
            md["laser_nm"] = laser_nm
        return SpectrumBatch.single(shift[order], self.counts[order], **md)


class Device(ABC):
    """A spectrometer on a serial line. Use :func:`open_device` to make one.

    Subclasses implement the protocol; the public methods below are the same for all of them.
    """

    protocol: str = ""

    def __init__(self, transport: Transport, url: str, margin_s: float = 0.5,
                 retries: int = 2) -> None:
        self.transport = transport
        self.url = url
        self.margin_s = float(margin_s)
        self.retries = int(retries)
        self._identity: Identity | None = None
        self.wavelength_coeffs: tuple[float, ...] = ()
        self.excitation_nm: float | None = None
        self._integration_ms = 0.0
        self._averages = 1
        self.stats: dict[str, int] = {"retries": 0, "resyncs": 0}

    # -- identity and settings -------------------------------------------------------------
    @property
    def identity(self) -> Identity:
        """Model, serial, firmware and pixel count."""
        assert self._identity is not None
        return self._identity

    @property
    def integration_ms(self) -> float:
        """Current integration time in ms."""
        return self._integration_ms

    @property
    def averages(self) -> int:
        """Scans averaged per acquisition."""
        return self._averages

    @abstractmethod
    def set_integration_ms(self, ms: float) -> None:
        """Set the integration time (ms)."""

    @abstractmethod
    def set_averages(self, n: int) -> None:
        """Set the number of scans averaged per acquisition."""

    # -- timing -------------------------------------------------------------------------------
    def wire_time(self, n_bytes: int) -> float:
        """Seconds ``n_bytes`` take at the current baud rate (``socket://``: the nominal rate)."""
        return wire_time(n_bytes, self.transport.baudrate)

    def acquisition_timeout(self, reply_bytes: int, frames: int | None = None) -> float:
        """Integration x averages + wire time + margin, in seconds."""
        n = self._averages if frames is None else frames
        return (self._integration_ms / 1000.0) * n + 1.1 * self.wire_time(reply_bytes) \
            + self.margin_s

    # -- acquisition ----------------------------------------------------------------------------
    @abstractmethod
    def _read_counts(self) -> tuple[np.ndarray, int]:
        """One (averaged) readout: counts and number of saturated pixels."""

    def acquire(self, dark: Acquisition | None = None) -> Acquisition:
        """Acquire one spectrum (``averages`` scans averaged) and optionally subtract ``dark``."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        counts, saturated = self._read_counts()
        ident = self.identity
        pixels = np.arange(ident.n_pixels)
        acq = Acquisition(counts, pixels, pixel_to_wavelength(self.wavelength_coeffs, pixels),
                          ident, self.wavelength_coeffs, self.excitation_nm,
                          self._integration_ms, self._averages, self.laser_enabled, stamp,
                          saturated=saturated)
        return acq.subtract_dark(dark) if dark is not None else acq

    def acquire_dark(self) -> Acquisition:
        """Acquire a dark spectrum with the laser off, then restore the laser state."""
        was_on = self.laser_enabled
        if was_on is None:
            raise DeviceUnsupported("this device cannot switch its laser off for a dark scan",
                                    source=self.url,
                                    hint="scan without --dark, or (OBP with the laser on the "
                                         "lamp output) pass --option laser_line=lamp")
        if was_on:
            self.set_laser(False)
        try:
            dark = self.acquire()
        finally:
            if was_on:
                self.set_laser(True)
        dark.extra["dark"] = True
        return dark

    # -- laser ----------------------------------------------------------------------------------
    @property
    def laser_enabled(self) -> bool | None:
        """Laser state as last verified, ``None`` when the device has no laser control."""
        return None

    def set_laser(self, on: bool) -> None:
        """Switch the excitation laser (verified by read-back where the protocol allows)."""
        raise DeviceUnsupported("this device has no laser control", source=self.url)

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Switch the laser off (if on) and close the port."""
        try:
            if self.laser_enabled:
                self.set_laser(False)
        except DeviceError:
            pass
        finally:
            self.transport.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self._identity
        return f"<{type(self).__name__} {self.url} {i.model if i else '?'} {i.serial if i else ''}>"


def options_from_kwargs(cls: type[Any], protocol_label: str, kw: dict[str, Any]) -> Any:
    """Build the options dataclass ``cls`` from keyword options (``None`` values ignored).

    Unknown names are a :class:`UsageError` that lists the known ones.
    """
    kw = {k: v for k, v in kw.items() if v is not None}
    names = {f.name for f in fields(cls)}
    unknown = set(kw) - names
    if unknown:
        raise UsageError(f"unknown {protocol_label} option(s): {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(sorted(names))}")
    return cls(**kw)


def _sim_protocol(url: str) -> str | None:
    if not url.startswith("sim://"):
        return None
    from ramanid.drivers.simulator import PROTOCOL_OF_PROFILE, parse_sim_url

    profile, _ = parse_sim_url(url)
    return PROTOCOL_OF_PROFILE.get(profile, "obp" if profile == "obp" else profile)


def probe(url: str, timeout_s: float = 0.4) -> str | None:
    """Return which protocol answers on ``url`` (``"wasatch"``, ``"obp"``) or ``None``."""
    try:
        return _probe(url, timeout_s)
    except PortUnavailable:
        return None


def _probe(url: str, timeout_s: float) -> str | None:
    """:func:`probe`, but a port that cannot be opened at all raises ``PortUnavailable``."""
    from ramanid.drivers.obp_device import ObpDevice
    from ramanid.drivers.wasatch_device import WasatchDevice

    for cls in (WasatchDevice, ObpDevice):
        try:
            if cls.probe(url, timeout_s):
                return cls.protocol
        except PortUnavailable:
            raise  # no point trying the next protocol: report the real cause
        except DeviceError:
            continue
    return None


def open_device(url: str, protocol: str | None = None, **options: Any) -> Device:
    """Open a spectrometer.

    Parameters
    ----------
    url
        Device path, pty path, ``socket://host:port`` or ``sim://PROFILE?...``.
    protocol
        ``"obp"``, ``"wasatch"`` or ``None`` (from the ``sim://`` profile, else probed).
    **options
        Protocol options (see :class:`~ramanid.drivers.obp_device.ObpOptions` and
        :class:`~ramanid.drivers.wasatch_device.WasatchOptions`), e.g. ``integration_ms``,
        ``averages``, ``laser_nm``, ``margin_s``, ``retries``.

    Returns
    -------
    Device
        Opened, identified, with integration time and averages set.
    """
    proto = protocol or _sim_protocol(url)
    if proto is None:
        proto = _probe(url, 0.4)  # a port that cannot be opened raises its real cause
        if proto is None:
            raise DeviceError("no known protocol answered", source=url,
                              hint="check power and cable, or name the protocol with "
                                   "--protocol obp|wasatch")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise UsageError(f"unknown protocol {proto!r}", hint="use obp or wasatch")
    if proto == "obp":
        from ramanid.drivers.obp_device import ObpDevice as cls
    else:
        from ramanid.drivers.wasatch_device import WasatchDevice as cls
    return cls.open(url, **options)
