"""Simulated Ocean STS speaking OBP over RS-232 (shared/docs/protocols.md §1.7-1.8).

Reproduces: header validation with NACK + error number (bad frame, unknown type 2, bad payload
length 5, bad checksum 3, bad data 6), ACK when requested, echo of ``regarding``, immediate vs
payload data, STS constants (1024 px, 14-bit, 10 us - 85 s), "device not ready" (7) for a spectrum
before the integration time was set, acquisition time = integration x averages, 9600 baud at power
up and the baud change on 0x00000810. The checksum of replies mirrors the request (MD5 when the host
used MD5) [inferred], and the ACK of a baud change goes out at the old rate [unverified: profile
option ``baud_ack``].
"""

from __future__ import annotations

import struct

import numpy as np
from ramanid.drivers import obp
from ramanid.drivers.simulator.engine import Reply
from ramanid.drivers.simulator.faults import FaultPlan
from ramanid.drivers.simulator.physics import DetectorModel

STS_BAUDS = (9600, 19200, 38400, 57600, 115200)
STS_MIN_US = 10
STS_MAX_US = 85_000_000


class ObpSimDevice:
    """State machine of a simulated STS.

    Parameters
    ----------
    detector
        Physics model (its ``n_pixels`` and ``wavelength_coeffs`` are reported).
    serial
        Serial number (ASCII).
    firmware
        Firmware revision (uint16).
    baud
        Power-up rate (9600 on the STS).
    baud_ack
        ``"old"``: ACK a baud change at the old rate then switch; ``"none"``: switch silently.
    lamp_drives_laser
        The lamp-enable line (0x00110410) switches the excitation laser, as in STS-based Raman
        builds that wire the laser to it [inferred]; otherwise the laser is always on.
    faults
        Fault plan (for NACK faults; byte faults are applied by the engine).
    echo_regarding
        Echo the request's ``regarding`` tag (SeaBreeze says devices do); ``False`` answers 0.
    """

    def __init__(self, detector: DetectorModel, serial: str = "SIM-STS-0001",
                 firmware: int = 0x0123, baud: int = 9600, baud_ack: str = "old",
                 lamp_drives_laser: bool = True, faults: FaultPlan | None = None,
                 echo_regarding: bool = True) -> None:
        self.detector = detector
        self.echo_regarding = echo_regarding
        self.serial = serial
        self.firmware = firmware
        self.power_on_baud = baud
        self.baud = baud
        self.baud_ack = baud_ack
        self.lamp_drives_laser = lamp_drives_laser
        self.faults = faults or FaultPlan()
        self.parser = obp.StreamParser(known_versions=None)
        self._power_on()

    def _power_on(self) -> None:
        self.baud = self.power_on_baud
        self.integration_us: int | None = None
        self.averages = 1
        self.boxcar = 0
        self.trigger_mode = 0
        self.lamp = not self.lamp_drives_laser
        self.busy_until = 0.0

    @property
    def laser_on(self) -> bool:
        """Whether the excitation laser is on."""
        return self.lamp

    # -- framing -------------------------------------------------------------------------------
    def _reply(self, req: obp.Message, now: float, data: bytes = b"", errno: int = 0,
               kind: str = "frame", ready_at: float | None = None,
               after_send: object = None) -> Reply:
        flags = obp.FLAG_RESPONSE
        if errno:
            flags |= obp.FLAG_NACK
        elif req.flags & obp.FLAG_ACK_REQUESTED:
            flags |= obp.FLAG_ACK
        regarding = req.regarding if self.echo_regarding else 0
        msg = obp.Message(req.msg_type, data, flags, errno, regarding, req.version,
                          obp.CHECKSUM_MD5 if req.checksum_type == obp.CHECKSUM_MD5 else 0)
        return Reply(obp.encode(msg), max(now, self.busy_until) if ready_at is None else ready_at,
                     kind, after_send)

    def handle(self, data: bytes, now: float) -> list[Reply]:
        """Consume host bytes; return the replies."""
        out: list[Reply] = []
        for ev in self.parser.feed(data):
            if isinstance(ev, obp.BadFrame):
                if ev.reason.startswith("garbage"):
                    continue
                errno = 3 if "MD5" in ev.reason else 1 if "version" in ev.reason else 5
                if "checksum type" in ev.reason:
                    errno = 8
                bad = obp.Message(0, flags=0)
                out.append(self._reply(bad, now, errno=errno))
                continue
            reply = self._dispatch(ev, now)
            if reply is not None:
                out.append(reply)
        return out

    # -- commands --------------------------------------------------------------------------------
    def _dispatch(self, m: obp.Message, now: float) -> Reply | None:
        if self.faults.take_nack():
            return self._reply(m, now, errno=self.faults.nack_code or 6)
        wants_ack = bool(m.flags & obp.FLAG_ACK_REQUESTED)
        t = m.msg_type
        d = m.data
        det = self.detector

        def need(n: int) -> bool:
            return len(d) == n

        def ack() -> Reply | None:
            return self._reply(m, now) if wants_ack else None

        if t == obp.MSG_GET_SERIAL:
            return self._reply(m, now, self.serial.encode("ascii"))
        if t == obp.MSG_GET_SERIAL_LENGTH:
            return self._reply(m, now, bytes([len(self.serial)]))
        if t == obp.MSG_GET_FW_REVISION:
            return self._reply(m, now, struct.pack("<H", self.firmware))
        if t == obp.MSG_GET_HW_REVISION:
            return self._reply(m, now, b"\x02")
        if t == obp.MSG_GET_BAUD:
            return self._reply(m, now, struct.pack("<I", self.baud))
        if t == obp.MSG_SET_BAUD:
            if not need(4):
                return self._reply(m, now, errno=5)
            new = struct.unpack("<I", d)[0]
            if new not in STS_BAUDS:
                return self._reply(m, now, errno=6)

            def switch(new: int = new) -> None:
                self.baud = new

            if self.baud_ack == "old" and wants_ack:
                return self._reply(m, now, after_send=switch)
            switch()
            return None
        if t == obp.MSG_RESET:
            self._power_on()
            return None
        if t == obp.MSG_ABORT:
            self.busy_until = now
            return ack()
        if t == obp.MSG_GET_INTEGRATION:
            if self.integration_us is None:
                return self._reply(m, now, errno=12)
            return self._reply(m, now, struct.pack("<I", self.integration_us))
        if t == obp.MSG_SET_INTEGRATION:
            if not need(4):
                return self._reply(m, now, errno=5)
            us = struct.unpack("<I", d)[0]
            if not STS_MIN_US <= us <= STS_MAX_US:
                return self._reply(m, now, errno=6)
            self.integration_us = us
            return ack()
        if t == obp.MSG_GET_AVERAGES:
            return self._reply(m, now, struct.pack("<H", self.averages))
        if t == obp.MSG_SET_AVERAGES:
            if not need(2):
                return self._reply(m, now, errno=5)
            n = struct.unpack("<H", d)[0]
            if n < 1:
                return self._reply(m, now, errno=6)
            self.averages = n
            return ack()
        if t == obp.MSG_GET_BOXCAR:
            return self._reply(m, now, bytes([self.boxcar]))
        if t == obp.MSG_SET_BOXCAR:
            if not need(1):
                return self._reply(m, now, errno=5)
            if d[0] > 15:
                return self._reply(m, now, errno=6)
            self.boxcar = d[0]
            return ack()
        if t == obp.MSG_SET_TRIGGER_MODE:
            if not need(1):
                return self._reply(m, now, errno=5)
            if d[0] > 2:
                return self._reply(m, now, errno=6)
            self.trigger_mode = d[0]
            return ack()
        if t == obp.MSG_SET_LAMP_ENABLE:
            if not need(1):
                return self._reply(m, now, errno=5)
            self.lamp = bool(d[0]) if self.lamp_drives_laser else True
            return ack()
        if t == obp.MSG_GET_WL_COEFF_COUNT:
            return self._reply(m, now, bytes([len(det.wavelength_coeffs)]))
        if t == obp.MSG_GET_WL_COEFF:
            if not need(1):
                return self._reply(m, now, errno=5)
            if d[0] >= len(det.wavelength_coeffs):
                return self._reply(m, now, errno=6)
            return self._reply(m, now, struct.pack("<f", det.wavelength_coeffs[d[0]]))
        if t == obp.MSG_GET_NL_COEFF_COUNT:
            return self._reply(m, now, b"\x00")
        if t == obp.MSG_GET_TEMPERATURES:
            return self._reply(m, now, struct.pack("<3f", 21.5, 0.0, 24.0))
        if t == obp.MSG_GET_RAW_SPECTRUM:
            if self.integration_us is None:
                return self._reply(m, now, errno=7)
            t_int = self.integration_us * 1e-6
            start = max(now, self.busy_until)
            ready = start + t_int * self.averages
            self.busy_until = ready
            counts = det.acquire(t_int, self.averages, self.laser_on)
            if self.boxcar:
                k = 2 * self.boxcar + 1
                counts = np.rint(np.convolve(counts, np.ones(k) / k, mode="same")).astype(
                    np.int64)
            return self._reply(m, now, counts.astype("<u2").tobytes(), kind="spectrum",
                               ready_at=ready)
        return self._reply(m, now, errno=2)
