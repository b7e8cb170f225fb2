"""pyserial URL handler for ``sim://PROFILE?option=value&...`` (the simulator, in-process).

pyserial finds it through ``serial.protocol_handler_packages`` (``ramanid.drivers.transport``
registers this package). The host's baud rate is passed to the simulator, so a host at the wrong
rate sees garbage, as on a real line.
"""

from __future__ import annotations

import time

from ramanid.drivers.simulator import make_engine, parse_sim_url
from serial.serialutil import PortNotOpenError, SerialBase, SerialException, SerialTimeoutException

from ramanid.errors import RamanidError


class Serial(SerialBase):
    """A pyserial port backed by an in-process :class:`~.engine.SimEngine`."""

    engine = None

    def open(self) -> None:
        """Build the simulator from the URL."""
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port already open")
        try:
            profile, options = parse_sim_url(str(self._port))
            self.engine = make_engine(profile, **options)
        except RamanidError as exc:
            raise SerialException(f"sim:// {exc.one_line()}") from exc
        self.is_open = True
        self._reconfigure_port()

    def from_url(self, url: str) -> str:  # pyserial calls this for the port string
        """Return the URL unchanged (options are parsed in :meth:`open`)."""
        return url

    def _reconfigure_port(self) -> None:
        if self.engine is not None:
            self.engine.host_baud = int(self._baudrate)

    def close(self) -> None:
        """Close the port."""
        self.is_open = False
        self.engine = None

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read."""
        if not self.is_open:
            raise PortNotOpenError()
        return self.engine.pending()

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes, waiting at most ``timeout`` seconds."""
        if not self.is_open:
            raise PortNotOpenError()
        eng = self.engine
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        out = bytearray()
        while len(out) < size:
            out += eng.read(size - len(out))
            if len(out) >= size:
                break
            if eng.disconnected and not out:
                raise SerialException("simulated device disconnected")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            nxt = eng.next_due()
            wake = now + 0.05 if nxt is None else max(nxt, now + 0.0002)
            if deadline is not None:
                wake = min(wake, deadline)
            time.sleep(max(0.0, wake - now))
        return bytes(out)

    def write(self, data: bytes) -> int:
        """Send bytes to the simulated device."""
        if not self.is_open:
            raise PortNotOpenError()
        if self.engine.disconnected:
            raise SerialException("simulated device disconnected")
        data = bytes(data)
        self.engine.receive(data)
        return len(data)

    def reset_input_buffer(self) -> None:
        """Discard bytes already received."""
        if self.is_open:
            self.engine.reset_output()

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on the way out."""

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True


__all__ = ["Serial", "SerialTimeoutException"]
