"""Byte transport over any pyserial URL, with absolute deadlines on every read and write.

``open_transport(url)`` accepts a device path (``/dev/ttyUSB0``, ``COM3``), a pseudo-terminal path,
``socket://host:port`` and ``sim://PROFILE?...`` (the in-process simulator, registered here through
pyserial's ``serial.protocol_handler_packages``). Deadlines are ``time.monotonic()`` values: a call
never waits past its deadline, so nothing blocks forever.
"""

from __future__ import annotations

import errno
import re
import time

from ramanid.drivers.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceTimeout,
    PortUnavailable,
)

from ramanid.errors import RamanidError

SIM_HANDLER_PACKAGE = "ramanid.drivers.simulator"


def register_sim_scheme() -> None:
    """Make ``sim://`` URLs known to ``serial.serial_for_url`` (idempotent)."""
    import serial

    if SIM_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(SIM_HANDLER_PACKAGE)


def wire_time(n_bytes: int, baudrate: int, bits_per_byte: int = 10) -> float:
    """Seconds that ``n_bytes`` take on an asynchronous line (8N1 = 10 bits per byte)."""
    return n_bytes * bits_per_byte / float(baudrate)


def port_error(url: str, exc: BaseException) -> DeviceError:
    """One clear error for a port that cannot be opened: the real cause and one hint.

    A ``sim://`` URL the simulator refused carries the simulator's own error (e.g. an unknown
    sample) as the exception's cause; it is passed on with the URL without its options.
    """
    cause = exc.__cause__
    if isinstance(cause, RamanidError):
        return type(cause)(cause.message, source=url.split("?", 1)[0], hint=cause.hint)
    text = " ".join(str(exc).split())
    # pyserial nests the OS error: "could not open port X: [Errno 2] No such file ...: 'X'"
    found = re.findall(r"\[Errno (\d+)\] ([^:\]\[]+)", text)
    reason = found[-1][1].strip() if found else (text or type(exc).__name__)
    if url.startswith(("socket://", "rfc2217://")):
        hint = "check the host and port, and that the device (or ramanid simulate) is serving"
    elif found and int(found[-1][0]) in (errno.EACCES, errno.EPERM):
        hint = "you need read/write access to the port (e.g. the dialout group)"
    elif found and int(found[-1][0]) == errno.EBUSY:
        hint = "another program is using the port; close it"
    else:
        hint = "check the port name (`ramanid devices` lists the ports)"
    return PortUnavailable(f"cannot open the port: {reason}", source=url, hint=hint)


class Transport:
    """A serial-like byte pipe with deadline-bounded reads and writes.

    Parameters
    ----------
    url
        Device path or pyserial URL (``socket://``, ``sim://``, ``loop://``, ...).
    baudrate
        Initial line rate (ignored by ``socket://``).
    """

    def __init__(self, url: str, baudrate: int = 9600) -> None:
        import serial

        register_sim_scheme()
        self.url = url
        try:
            self._ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0,
                                              write_timeout=1.0, do_not_open=False)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise port_error(url, exc) from exc
        self._serial_exc = serial.SerialException

    # -- settings ---------------------------------------------------------------------------
    @property
    def baudrate(self) -> int:
        """Current host line rate."""
        return int(self._ser.baudrate)

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        try:
            self._ser.baudrate = int(value)
        except (self._serial_exc, OSError, ValueError) as exc:
            raise DeviceError(f"cannot set {value} baud: {exc}", source=self.url) from exc

    @property
    def raw(self):
        """The underlying pyserial object."""
        return self._ser

    # -- I/O ----------------------------------------------------------------------------------
    def write(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` before ``deadline`` or raise :class:`DeviceTimeout`."""
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout("write timed out", source=self.url,
                                    hint="is the device connected and powered?")
            self._ser.write_timeout = remaining
            try:
                n = self._ser.write(view)
            except self._serial_exc as exc:
                if "timeout" in str(exc).lower():
                    continue
                raise DeviceDisconnected(f"write failed: {exc}", source=self.url,
                                         hint="check the cable / connection") from exc
            except OSError as exc:
                raise DeviceDisconnected(f"write failed: {exc}", source=self.url,
                                         hint="check the cable / connection") from exc
            view = view[n or 0:]

    def read_some(self, max_bytes: int, deadline: float) -> bytes:
        """Return between 1 and ``max_bytes`` bytes, or ``b""`` if none came before ``deadline``."""
        ser = self._ser
        try:
            waiting = ser.in_waiting
            if waiting:
                return ser.read(min(max_bytes, waiting))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            ser.timeout = remaining
            first = ser.read(1)
            if not first:
                return b""
            waiting = ser.in_waiting
            if waiting and max_bytes > 1:
                ser.timeout = 0
                return first + ser.read(min(max_bytes - 1, waiting))
            return first
        except (self._serial_exc, OSError) as exc:
            raise DeviceDisconnected(f"read failed: {exc}", source=self.url,
                                     hint="the device went away; reconnect and retry") from exc

    def read_exact(self, n: int, deadline: float) -> bytes:
        """Read exactly ``n`` bytes before ``deadline`` or raise :class:`DeviceTimeout`."""
        out = bytearray()
        while len(out) < n:
            chunk = self.read_some(n - len(out), deadline)
            if not chunk:
                raise DeviceTimeout(f"timed out after {len(out)} of {n} bytes", source=self.url)
            out += chunk
        return bytes(out)

    def drain(self, quiet_s: float, limit_s: float = 1.0) -> int:
        """Discard input until the line has been quiet for ``quiet_s`` (at most ``limit_s``).

        Returns the number of bytes discarded.
        """
        end = time.monotonic() + limit_s
        dropped = 0
        while True:
            now = time.monotonic()
            if now >= end:
                return dropped
            chunk = self.read_some(4096, min(end, now + quiet_s))
            if not chunk:
                return dropped
            dropped += len(chunk)

    def flush_input(self) -> None:
        """Discard bytes already received and not yet read."""
        try:
            self._ser.reset_input_buffer()
        except (self._serial_exc, OSError) as exc:
            raise DeviceDisconnected(f"port failed: {exc}", source=self.url) from exc

    def close(self) -> None:
        """Close the port (idempotent)."""
        try:
            self._ser.close()
        except Exception:
            pass

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
