"""Ocean STS (and OBP-over-RS-232 relatives) as a :class:`~ramanid.drivers.device.Device`.

Transactions follow SeaBreeze's ``OBPTransaction`` (shared/docs/protocols.md §1.5): a query is
answered by one message of the same type; a command sent with ACK requested is answered by a
header-only ACK or NACK. Every request carries a sequence number in ``regarding`` (echoed by the
device), so a late reply to an earlier attempt is never taken for the current one (a device that
answers ``regarding = 0`` is accepted too, without that protection). Replies are
checked by the stream parser (start, header, length, footer, MD5 when present); a spectrum must
have exactly ``n_pixels`` values, none above the ADC maximum. Bad or missing replies are retried
(``retries``); NACKs carry the device's error text.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import numpy as np
from ramanid.drivers import obp
from ramanid.drivers.device import Device, Identity, options_from_kwargs
from ramanid.drivers.errors import (
    OBP_ERRORS,
    DeviceNack,
    DeviceProtocolError,
    DeviceTimeout,
    DeviceUnsupported,
)
from ramanid.drivers.transport import Transport

from ramanid.errors import UsageError

#: NACK error numbers worth one more try (transmission damage or a busy device).
TRANSIENT_ERRNOS = frozenset({1, 3, 5, 7, 9, 14, 15})


@dataclass
class ObpOptions:
    """Profile of an OBP device on a serial line (defaults: Ocean STS).

    Attributes
    ----------
    baud
        Line rate to open at (STS powers up at 9600).
    target_baud
        Switch to this rate after opening (``None``: stay), with the documented choreography.
    baud_ack
        ``"old"``: the device ACKs a baud change at the old rate, then switches; ``"none"``: it
        switches without a reply (speclib's assumption). [unverified: protocols.md §1.7]
    baud_settle_s
        Pause after switching the host rate before verifying with 0x00000800.
    version
        Protocol version written in requests (0x1100 SeaBreeze, 0x1000 Ocean's STS sample).
    checksum
        ``"auto"`` (ask for MD5, drop to none if the device NACKs with error 8), ``"md5"``,
        ``"none"``.
    n_pixels, adc_max, model
        STS: 1024 pixels, 14-bit (16383), "STS" (the pixel-count query is unverified).
    laser_nm
        Excitation wavelength (OBP does not report it).
    laser_line
        ``"lamp"``: the laser is switched by the lamp-enable output 0x00110410, as in STS Raman
        builds [inferred]; ``"none"``: no laser control (darks need the user to block it).
    integration_ms, averages
        Settings applied at open.
    margin_s, retries
        Timeout margin and retry count.
    """

    baud: int = 9600
    target_baud: int | None = None
    baud_ack: str = "old"
    baud_settle_s: float = 0.05
    version: int = obp.VERSION_SEABREEZE
    checksum: str = "auto"
    n_pixels: int = 1024
    adc_max: int = 16383
    model: str = "STS"
    laser_nm: float | None = None
    laser_line: str = "lamp"
    integration_ms: float = 100.0
    averages: int = 1
    margin_s: float = 0.5
    retries: int = 2

    @classmethod
    def from_kwargs(cls, **kw: object) -> ObpOptions:
        """Build from keyword options; unknown names are a :class:`UsageError`."""
        return options_from_kwargs(cls, "OBP", kw)


class ObpDevice(Device):
    """An OBP spectrometer (Ocean STS profile by default)."""

    protocol = "obp"

    def __init__(self, transport: Transport, url: str, opts: ObpOptions) -> None:
        super().__init__(transport, url, opts.margin_s, opts.retries)
        self.opts = opts
        self.parser = obp.StreamParser()
        self._seq = 0
        self._md5 = opts.checksum in ("auto", "md5")
        self._lamp: bool | None = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, **options: object) -> ObpDevice:
        """Open, identify and configure (see :class:`ObpOptions`)."""
        opts = ObpOptions.from_kwargs(**options)
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
        """True when an OBP device answers a serial-number query at 9600 baud."""
        with Transport(url, baudrate=9600) as t:
            dev = cls(t, url, ObpOptions(retries=0, margin_s=timeout_s, checksum="none"))
            try:
                dev.query(obp.MSG_GET_SERIAL)
            except (DeviceTimeout, DeviceProtocolError):
                return False
            return True

    def _setup(self) -> None:
        o = self.opts
        if o.target_baud and o.target_baud != self.transport.baudrate:
            try:
                self.query(obp.MSG_GET_SERIAL)
            except (DeviceTimeout, DeviceProtocolError):
                # the STS keeps a changed rate until power is removed: maybe already switched
                self.transport.baudrate = o.target_baud
                self.parser.reset()
                self.transport.drain(quiet_s=0.01, limit_s=0.2)
            if self.transport.baudrate != o.target_baud:
                self.set_baudrate(o.target_baud)
        serial = self.query(obp.MSG_GET_SERIAL).data.split(b"\0", 1)[0].decode("ascii",
                                                                                "replace")
        fw = self.query(obp.MSG_GET_FW_REVISION).data
        firmware = f"{int.from_bytes(fw[:2], 'little'):#06x}" if fw else "?"
        n = self.query(obp.MSG_GET_WL_COEFF_COUNT).data
        count = n[0] if n else 0
        coeffs = []
        for i in range(count):
            d = self.query(obp.MSG_GET_WL_COEFF, bytes([i])).data
            coeffs.append(float(struct.unpack("<f", d[:4])[0]))
        if len(coeffs) < 2:
            raise DeviceProtocolError(f"device reports {count} wavelength coefficients",
                                      source=self.url, hint="the device needs a wavelength "
                                                            "calibration")
        self.wavelength_coeffs = tuple(coeffs)
        self.excitation_nm = o.laser_nm
        self._identity = Identity("obp", o.model, serial, firmware, o.n_pixels, self.url)
        self.set_integration_ms(o.integration_ms)
        self.set_averages(o.averages)

    # -- transactions ---------------------------------------------------------------------------
    def _send(self, msg_type: int, data: bytes, ack: bool) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1  # 1 .. 2**32-1, never 0
        msg = obp.Message(msg_type, data, obp.FLAG_ACK_REQUESTED if ack else 0, 0, self._seq,
                          self.opts.version, obp.CHECKSUM_MD5 if self._md5 else 0)
        raw = obp.encode(msg)
        self.transport.write(raw, time.monotonic() + self.wire_time(len(raw)) + self.margin_s)
        return self._seq

    def _await(self, msg_type: int, seq: int, deadline: float) -> obp.Message:
        """Wait for the reply tagged ``seq``; raise DeviceTimeout/DeviceProtocolError."""
        bad: str | None = None
        settle = 2 * self.wire_time(obp.MIN_FRAME) + 0.02
        while True:
            chunk = self.transport.read_some(max(self.parser.needed(), 64), deadline)
            if not chunk:
                if bad:
                    raise DeviceProtocolError(f"corrupted reply ({bad})", source=self.url)
                raise DeviceTimeout(f"no reply to OBP message 0x{msg_type:08x}",
                                    source=self.url, hint="check cable, power and baud rate")
            for ev in self.parser.feed(chunk):
                if isinstance(ev, obp.BadFrame):
                    if not ev.reason.startswith("garbage"):
                        bad = ev.reason
                        self.stats["resyncs"] += 1
                        deadline = min(deadline, time.monotonic() + settle)
                    continue
                # a device that does not echo ``regarding`` answers 0 (seq is never 0)
                tagged = ev.regarding in (seq, 0)
                if not tagged or ev.msg_type != msg_type:
                    if tagged and ev.is_nack:
                        return ev  # NACK of a damaged request may carry another type
                    continue  # a stale reply to an earlier attempt
                return ev

    def transact(self, msg_type: int, data: bytes = b"", *, command: bool = False,
                 reply_bytes: int = obp.MIN_FRAME + 16, timeout_s: float | None = None,
                 validate=None) -> obp.Message:
        """Send one request and return the device's reply, retrying damaged exchanges.

        Parameters
        ----------
        msg_type, data
            The request.
        command
            Ask for an ACK (commands) instead of a data reply (queries).
        reply_bytes
            Expected reply size (for the wire-time part of the timeout).
        timeout_s
            Reply timeout; default wire time of request and reply + margin.
        validate
            Optional callable raising :class:`DeviceProtocolError` when the reply data is bad.

        Raises
        ------
        DeviceNack
            The device refused (after retries for transient error numbers).
        DeviceTimeout, DeviceProtocolError
            No valid reply after all retries.
        """
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                self.parser.reset()
                self.transport.drain(quiet_s=2 * self.wire_time(8) + 0.01, limit_s=0.5)
            timeout = timeout_s if timeout_s is not None else (
                self.wire_time(reply_bytes + obp.MIN_FRAME + len(data)) + self.margin_s)
            seq = self._send(msg_type, data, ack=command)
            try:
                reply = self._await(msg_type, seq, time.monotonic() + timeout)
            except (DeviceTimeout, DeviceProtocolError) as exc:
                last = exc
                continue
            if reply.is_nack:
                text = OBP_ERRORS.get(reply.errno, "unknown error")
                if reply.errno == 8 and self._md5 and self.opts.checksum == "auto":
                    self._md5 = False  # device does not take MD5: continue without
                    continue
                nack = DeviceNack(f"device refused OBP message 0x{msg_type:08x}: error "
                                  f"{reply.errno} ({text})", code=reply.errno, text=text,
                                  source=self.url)
                if reply.errno in TRANSIENT_ERRNOS and attempt < self.retries:
                    last = nack
                    continue
                raise nack
            if command and not (reply.is_ack or reply.is_response):
                last = DeviceProtocolError("reply is neither ACK nor NACK", source=self.url)
                continue
            if validate is not None:
                try:
                    validate(reply)
                except DeviceProtocolError as exc:
                    last = exc
                    continue
            return reply
        assert last is not None
        raise last

    def query(self, msg_type: int, data: bytes = b"", **kw: object) -> obp.Message:
        """Query (no ACK requested) and return the reply."""
        return self.transact(msg_type, data, command=False, **kw)

    def command(self, msg_type: int, data: bytes = b"", **kw: object) -> obp.Message:
        """Command with ACK requested; return the ACK."""
        return self.transact(msg_type, data, command=True, **kw)

    # -- settings -------------------------------------------------------------------------------
    def set_integration_ms(self, ms: float) -> None:
        """Set the integration time (STS: 0.01 ms .. 85 000 ms)."""
        us = round(float(ms) * 1000)
        if not 10 <= us <= 85_000_000:
            raise UsageError(f"integration time {ms} ms outside 0.01..85000 ms",
                             source=self.url)
        self.command(obp.MSG_SET_INTEGRATION, struct.pack("<I", us))
        self._integration_ms = us / 1000.0

    def set_averages(self, n: int) -> None:
        """Set scans to average on the device (uint16)."""
        n = int(n)
        if not 1 <= n <= 0xFFFF:
            raise UsageError(f"averages {n} outside 1..65535", source=self.url)
        self.command(obp.MSG_SET_AVERAGES, struct.pack("<H", n))
        self._averages = n

    def set_baudrate(self, baud: int) -> None:
        """Change the line rate: request, switch the host, settle, verify with 0x00000800.

        On failure the host returns to the old rate and :class:`DeviceError` is raised.
        """
        old = self.transport.baudrate
        payload = struct.pack("<I", int(baud))
        if self.opts.baud_ack == "old":
            self.command(obp.MSG_SET_BAUD, payload)
        else:
            self._send(obp.MSG_SET_BAUD, payload, ack=False)
            time.sleep(self.wire_time(obp.MIN_FRAME) + self.opts.baud_settle_s)
        self.transport.baudrate = int(baud)
        time.sleep(self.opts.baud_settle_s)
        self.parser.reset()
        self.transport.drain(quiet_s=0.01, limit_s=0.2)
        try:
            got = struct.unpack("<I", self.query(obp.MSG_GET_BAUD).data[:4])[0]
        except (DeviceTimeout, DeviceProtocolError) as exc:
            self.transport.baudrate = old
            raise DeviceProtocolError(f"no answer at {baud} baud after the change",
                                      source=self.url, hint="power-cycle the device (it "
                                      "returns to 9600 baud)") from exc
        if got != int(baud):
            raise DeviceProtocolError(f"device reports {got} baud after asking for {baud}",
                                      source=self.url)

    # -- laser (lamp line) ------------------------------------------------------------------------
    @property
    def laser_enabled(self) -> bool | None:
        """Last commanded laser state via the lamp line (``None`` without laser control)."""
        if self.opts.laser_line != "lamp":
            return None
        return bool(self._lamp)

    def set_laser(self, on: bool) -> None:
        """Switch the laser through the lamp-enable line (ACK-verified; no read-back exists)."""
        if self.opts.laser_line != "lamp":
            raise DeviceUnsupported("no laser control on this OBP profile", source=self.url,
                                    hint="if the laser is wired to the lamp output, pass "
                                         "--option laser_line=lamp")
        self.command(obp.MSG_SET_LAMP_ENABLE, bytes([1 if on else 0]))
        self._lamp = bool(on)

    # -- spectrum ---------------------------------------------------------------------------------
    def _read_counts(self) -> tuple[np.ndarray, int]:
        n = self.identity.n_pixels
        adc_max = self.opts.adc_max

        def check(reply: obp.Message) -> None:
            if len(reply.data) != 2 * n:
                raise DeviceProtocolError(f"spectrum of {len(reply.data)} bytes, expected "
                                          f"{2 * n}", source=self.url)
            if reply.checksum_type != obp.CHECKSUM_MD5 and int(
                    np.frombuffer(reply.data, "<u2").max()) > adc_max:
                raise DeviceProtocolError("spectrum values above the ADC range (damaged)",
                                          source=self.url)

        reply_bytes = obp.MIN_FRAME + 2 * n
        reply = self.query(obp.MSG_GET_RAW_SPECTRUM, reply_bytes=reply_bytes,
                           timeout_s=self.acquisition_timeout(reply_bytes + obp.MIN_FRAME),
                           validate=check)
        raw = np.frombuffer(reply.data, "<u2")
        return raw.astype(np.float64), int(np.count_nonzero(raw >= adc_max))
