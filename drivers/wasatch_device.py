"""Wasatch OEM "WP Raman" UART board as a :class:`~ramanid.drivers.device.Device`.

Framed exchanges (``<`` len cmd data CRC-8/Maxim ``>``) are matched on the echoed command byte and
retried on CRC/length status codes, damaged frames or timeouts. The spectrum after
``AcquireImage`` is raw pixels with no header and no checksum (protocols.md §2.2), so the driver
guards it by: exact byte count before a deadline (integration + wire time + margin), no stray
bytes right after the last pixel (garbage or a shifted stream), and every value within the ADC
range; anything else is retried, never returned. A flipped bit inside the range cannot be detected
on this protocol (no checksum on the wire).

Laser: enable with read-back verification (up to ``laser_tries`` writes, as Wasatch.PY's
``set_laser_enable`` does); a laser that does not report firing raises
:class:`~ramanid.drivers.errors.LaserInterlockError`. Closing the device switches the laser off.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ramanid.drivers import wasatch as w
from ramanid.drivers import wasatch_eeprom
from ramanid.drivers.device import Device, Identity, options_from_kwargs
from ramanid.drivers.errors import (
    WASATCH_STATUS,
    DeviceNack,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnsupported,
    LaserInterlockError,
)
from ramanid.drivers.transport import Transport

from ramanid.errors import UsageError

#: Status codes worth one more try (damage on the way in, or busy).
TRANSIENT_STATUS = frozenset({w.STATUS_LENGTH, w.STATUS_CRC, -2, -4})


@dataclass
class WasatchOptions:
    """Profile of a Wasatch OEM UART board.

    Attributes
    ----------
    baud
        Line rate (921600, fixed in the device).
    byte_order
        Byte order of the raw pixel stream, ``"little"`` or ``"big"`` [unverified].
    eeprom
        ``"uart"``: read EEPROM pages with the inferred register pair (write 0x30 = page+0x40,
        read 0x31); ``"file"``: from ``eeprom_file`` (JSON of :class:`Eeprom` fields);
        ``"none"``: identity/wavecal from ``serial``/``model``/``wavelength_coeffs``/``laser_nm``.
    adc_max
        Largest legal pixel value.
    laser_tries
        Laser writes before giving up on the read-back.
    integration_ms, averages
        Settings applied at open (averaging is done by the host: the UART table has no
        averaging command).
    margin_s, retries
        Timeout margin and retry count.
    """

    baud: int = w.BAUD
    byte_order: str = "little"
    eeprom: str = "uart"
    eeprom_file: str | None = None
    serial: str | None = None
    model: str | None = None
    wavelength_coeffs: tuple[float, ...] | None = None
    laser_nm: float | None = None
    adc_max: int = 65535
    laser_tries: int = 3
    integration_ms: float = 100.0
    averages: int = 1
    margin_s: float = 0.5
    retries: int = 2

    @classmethod
    def from_kwargs(cls, **kw: object) -> WasatchOptions:
        """Build from keyword options; unknown names are a :class:`UsageError`."""
        return options_from_kwargs(cls, "Wasatch", kw)


class WasatchDevice(Device):
    """A Wasatch OEM Raman board on its UART."""

    protocol = "wasatch"

    def __init__(self, transport: Transport, url: str, opts: WasatchOptions) -> None:
        super().__init__(transport, url, opts.margin_s, opts.retries)
        self.opts = opts
        self.parser = w.StreamParser()
        self._laser: bool = False
        self.eeprom: wasatch_eeprom.Eeprom | None = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, **options: object) -> WasatchDevice:
        """Open, identify and configure (see :class:`WasatchOptions`)."""
        opts = WasatchOptions.from_kwargs(**options)
        transport = Transport(url, baudrate=opts.baud)
        dev = cls(transport, url, opts)
        try:
            dev._setup()
        except BaseException:
            transport.close()
            raise
        return dev

    @classmethod
    def probe(cls, url: str, timeout_s: float = 0.4) -> bool:
        """True when a Wasatch board answers a ping at 921600 baud."""
        with Transport(url, baudrate=w.BAUD) as t:
            dev = cls(t, url, WasatchOptions(retries=0, margin_s=timeout_s))
            try:
                dev.transact(w.CMD_PING)
            except (DeviceTimeout, DeviceProtocolError, DeviceNack):
                return False
            return True

    def _read_eeprom(self) -> wasatch_eeprom.Eeprom:
        o = self.opts
        if o.eeprom == "uart":
            pages = []
            for page in range(4):
                self.write_register(w.CMD_EEPROM_SELECT, bytes([0x40 + page]))
                pages.append(self.read_register(w.CMD_EEPROM_READ, 64))
            return wasatch_eeprom.decode(pages)
        if o.eeprom == "file":
            if not o.eeprom_file:
                raise UsageError("eeprom='file' needs eeprom_file=PATH")
            d = json.loads(Path(o.eeprom_file).read_text())
            d["wavelength_coeffs"] = tuple(d.get("wavelength_coeffs", ()))
            return wasatch_eeprom.Eeprom(**d)
        return wasatch_eeprom.Eeprom()

    def _setup(self) -> None:
        o = self.opts
        ee = self._read_eeprom()
        self.eeprom = ee
        fw = self.read_register(w.CMD_FIRMWARE_REV, 4)
        n_px = struct.unpack("<H", self.read_register(w.CMD_PIXEL_COUNT, 2))[0]
        coeffs = tuple(o.wavelength_coeffs or ee.wavelength_coeffs)
        if len(coeffs) < 2:
            raise DeviceProtocolError("no wavelength calibration available", source=self.url,
                                      hint="pass wavelength_coeffs= or an eeprom_file")
        self.wavelength_coeffs = tuple(float(c) for c in coeffs)
        self.excitation_nm = float(o.laser_nm or ee.excitation_nm) or None
        self._identity = Identity("wasatch", o.model or ee.model or "Wasatch OEM",
                                  o.serial or ee.serial or "unknown",
                                  ".".join(str(b) for b in fw), n_px, self.url)
        self._laser = bool(self.read_register(w.CMD_LASER, 1)[0])
        self.set_integration_ms(o.integration_ms)
        self.set_averages(o.averages)

    # -- transactions ---------------------------------------------------------------------------
    def _await(self, cmd: int, deadline: float) -> w.Frame:
        bad: str | None = None
        settle = 0.02
        while True:
            chunk = self.transport.read_some(256, deadline)
            if not chunk:
                if bad:
                    raise DeviceProtocolError(f"corrupted reply ({bad})", source=self.url)
                raise DeviceTimeout(f"no reply to Wasatch command 0x{cmd:02x}", source=self.url,
                                    hint="check cable, power and 921600 baud")
            for ev in self.parser.feed(chunk):
                if isinstance(ev, w.BadFrame):
                    if not ev.reason.startswith("garbage"):
                        bad = ev.reason
                        self.stats["resyncs"] += 1
                        deadline = min(deadline, time.monotonic() + settle)
                    continue
                if ev.command == cmd:
                    return ev

    def transact(self, cmd: int, data: bytes = b"", *, write: bool = False,
                 expect: int | None = None) -> bytes:
        """One framed exchange; returns the reply data (status byte checked for writes).

        Parameters
        ----------
        cmd
            Command without the write bit.
        data
            Data bytes (writes).
        write
            Set the write bit; the reply must be status 0.
        expect
            Expected reply data length for reads (``None``: any).
        """
        wire_cmd = (cmd | w.WRITE_BIT) if write else cmd
        frame = w.encode(wire_cmd, data)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                self.parser.reset()
                self.transport.drain(quiet_s=0.005, limit_s=0.3)
            now = time.monotonic()
            self.transport.write(frame, now + self.wire_time(len(frame)) + self.margin_s)
            timeout = self.wire_time(len(frame) + (expect or 0) + 8) + self.margin_s
            try:
                reply = self._await(wire_cmd, time.monotonic() + timeout)
            except (DeviceTimeout, DeviceProtocolError) as exc:
                last = exc
                continue
            status = None
            if write:
                if len(reply.data) != 1:
                    last = DeviceProtocolError("SET reply without a status byte",
                                               source=self.url)
                    continue
                status = w.status_code(reply.data[0])
            elif expect is not None and len(reply.data) != expect:
                if len(reply.data) == 1:
                    status = w.status_code(reply.data[0])
                else:
                    last = DeviceProtocolError(f"reply of {len(reply.data)} bytes, expected "
                                               f"{expect}", source=self.url)
                    continue
            if status:
                text = WASATCH_STATUS.get(status, "unknown status")
                nack = DeviceNack(f"device refused command 0x{wire_cmd:02x}: status {status} "
                                  f"({text})", code=status, text=text, source=self.url)
                if status in TRANSIENT_STATUS and attempt < self.retries:
                    last = nack
                    continue
                raise nack
            return reply.data
        assert last is not None
        raise last

    def read_register(self, cmd: int, n: int) -> bytes:
        """GET ``cmd`` expecting ``n`` data bytes."""
        return self.transact(cmd, expect=n)

    def write_register(self, cmd: int, data: bytes) -> None:
        """SET ``cmd`` (write bit added) and check the status byte."""
        self.transact(cmd, data, write=True)

    # -- settings -------------------------------------------------------------------------------
    def set_integration_ms(self, ms: float) -> None:
        """Set the integration time (whole ms, 24-bit: 1 .. 16 777 215)."""
        n = round(float(ms))
        if not 1 <= n <= 0xFFFFFF:
            raise UsageError(f"integration time {ms} ms outside 1..16777215 ms", source=self.url)
        self.write_register(w.CMD_INTEGRATION, n.to_bytes(3, "little"))
        self._integration_ms = float(n)

    def set_averages(self, n: int) -> None:
        """Scans averaged per acquisition (done by the host)."""
        n = int(n)
        if n < 1:
            raise UsageError(f"averages {n} must be >= 1", source=self.url)
        self._averages = n

    # -- laser ------------------------------------------------------------------------------------
    @property
    def laser_enabled(self) -> bool:
        """Laser state as last read back from the device."""
        return self._laser

    def laser_firing(self) -> bool:
        """Read the laser state back from the device."""
        return bool(self.read_register(w.CMD_LASER, 1)[0])

    def set_laser(self, on: bool) -> None:
        """Switch the laser and verify it by read-back.

        Raises
        ------
        LaserInterlockError
            The read-back disagrees after ``laser_tries`` writes (interlock open, key off).
        """
        if on and self.eeprom is not None and not self.eeprom.has_laser:
            raise DeviceUnsupported("this unit has no laser", source=self.url)
        state = False
        for _ in range(max(1, self.opts.laser_tries)):
            self.write_register(w.CMD_LASER, bytes([1 if on else 0]))
            state = self.laser_firing()
            if state == bool(on):
                self._laser = state
                return
        self._laser = state
        if on:
            raise LaserInterlockError("the laser did not turn on (read-back: off)",
                                      source=self.url, hint="close the interlock / turn the "
                                                            "key switch, then retry")
        raise LaserInterlockError("the laser is still firing after being switched off",
                                  source=self.url, hint="remove power from the unit now")

    # -- spectrum ---------------------------------------------------------------------------------
    def _one_frame(self) -> np.ndarray:
        n = self.identity.n_pixels
        nbytes = 2 * n
        dtype = "<u2" if self.opts.byte_order == "little" else ">u2"
        frame = w.encode(w.CMD_ACQUIRE)
        quiet = 64 * self.wire_time(1) + 0.002
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                self.transport.drain(quiet_s=0.01, limit_s=0.5)
            self.parser.reset()
            self.transport.flush_input()
            self.transport.write(frame, time.monotonic() + self.margin_s)
            deadline = time.monotonic() + self.acquisition_timeout(nbytes, frames=1)
            try:
                raw = self.transport.read_exact(nbytes, deadline)
            except DeviceTimeout as exc:
                last = DeviceTimeout(f"spectrum incomplete: {exc.message}", source=self.url)
                continue
            if self.transport.read_some(1, time.monotonic() + quiet):
                self.stats["resyncs"] += 1
                last = DeviceProtocolError("stray bytes around the spectrum stream",
                                           source=self.url)
                continue
            counts = np.frombuffer(raw, dtype)
            if int(counts.max()) > self.opts.adc_max:
                last = DeviceProtocolError("pixel values above the ADC range", source=self.url)
                continue
            return counts
        assert last is not None
        raise last

    def _read_counts(self) -> tuple[np.ndarray, int]:
        frames = [self._one_frame() for _ in range(self._averages)]
        stack = np.vstack(frames)
        saturated = int(np.count_nonzero((stack >= self.opts.adc_max).any(axis=0)))
        return stack.mean(axis=0, dtype=np.float64), saturated
