"""Serial drivers for handheld Raman spectrometers (installed as ``ramanid.drivers``).

Layers: :mod:`.transport` (pyserial URLs incl. ``sim://``, deadlines) -> pure codecs :mod:`.obp`,
:mod:`.wasatch` (+ :mod:`.crc`, :mod:`.wasatch_eeprom`) -> devices :mod:`.obp_device`,
:mod:`.wasatch_device` behind one API in :mod:`.device` -> :mod:`.simulator`.
Importing this package loads neither numpy nor pyserial; :func:`open_device` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ramanid.drivers.device import Device

__all__ = ["open_device", "probe"]


def open_device(url: str, protocol: str | None = None, **options: Any) -> Device:
    """Open a spectrometer by URL; see :func:`ramanid.drivers.device.open_device`."""
    from ramanid.drivers.device import open_device as _open

    return _open(url, protocol, **options)


def probe(url: str, timeout_s: float = 0.4) -> str | None:
    """Which protocol answers on ``url``; see :func:`ramanid.drivers.device.probe`."""
    from ramanid.drivers.device import probe as _probe

    return _probe(url, timeout_s)
