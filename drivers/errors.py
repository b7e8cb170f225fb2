"""Typed device errors. All derive from :class:`ramanid.errors.DeviceError`, so the CLI prints them
as one line (device URL, what went wrong, what to do) and exits with status 1."""

from __future__ import annotations

from ramanid.errors import DeviceError

#: OBP error numbers (shared/docs/protocols.md §1.4: pyseabreeze and Ocean's sample agree).
OBP_ERRORS: dict[int, str] = {
    0: "success",
    1: "invalid or unsupported protocol",
    2: "unknown message type",
    3: "bad checksum",
    4: "message too large",
    5: "payload length does not match message type",
    6: "payload data invalid",
    7: "device not ready for message",
    8: "unknown checksum type",
    9: "device reset unexpectedly",
    10: "too many buses",
    11: "out of memory",
    12: "information does not exist",
    13: "internal device error",
    14: "message did not end properly",
    15: "current scan interrupted",
    100: "could not decrypt",
    101: "firmware layout invalid",
    102: "data packet wrong size",
    103: "hardware revision incompatible with firmware",
    104: "flash map incompatible",
    255: "operation deferred",
}

#: Wasatch OEM UART status codes (WPF client enum; negative values as two's complement bytes).
WASATCH_STATUS: dict[int, str] = {
    0: "success",
    1: "length error",
    2: "CRC error",
    3: "unrecognized command",
    4: "port not available",
    -1: "internal data error",
    -2: "internal communication failure",
    -3: "internal address invalid",
    -4: "busy",
}


class PortUnavailable(DeviceError):
    """The port could not be opened at all (no such device, connection refused, busy, ...)."""


class DeviceTimeout(DeviceError):
    """No (complete) reply arrived before the deadline."""


class DeviceDisconnected(DeviceError):
    """The port or connection went away."""


class DeviceProtocolError(DeviceError):
    """The device replied with bytes that do not form a valid reply (after retries)."""


class DeviceNack(DeviceError):
    """The device refused a command (OBP NACK or Wasatch non-zero status).

    Attributes
    ----------
    code
        The device's error number / status code.
    text
        The device's meaning of that code.
    """

    def __init__(self, message: str, *, code: int, text: str, source: str | None = None,
                 hint: str | None = None) -> None:
        self.code = code
        self.text = text
        super().__init__(message, source=source, hint=hint)


class LaserInterlockError(DeviceError):
    """The laser did not reach the requested state (interlock open, key off, or refused)."""


class DeviceUnsupported(DeviceError):
    """The device (profile) cannot do what was asked."""
