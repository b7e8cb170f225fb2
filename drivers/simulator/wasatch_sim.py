"""Simulated Wasatch OEM "WP Raman" UART device (shared/docs/protocols.md §2.2, §2.5).

Reproduces: CRC-8/Maxim and length checks with status replies (1 length, 2 CRC, 3 unrecognised),
the write bit, 24-bit integration time in ms, ``AcquireImage`` that waits for the integration time
and then streams raw pixels without framing (byte order a profile option [unverified]), EEPROM
pages as state, and a laser that fires only when enabled *and* the interlock is closed, with a
watchdog that switches it off after ``laser_watchdog_s`` seconds without host traffic.
Replies to a SET carry one status byte at offset 4 (WPF client) [inferred for errors on GETs].
"""

from __future__ import annotations

import struct

from ramanid.drivers import wasatch as w
from ramanid.drivers import wasatch_eeprom
from ramanid.drivers.simulator.engine import Reply
from ramanid.drivers.simulator.faults import FaultPlan
from ramanid.drivers.simulator.physics import DetectorModel


class WasatchSimDevice:
    """State machine of a simulated Wasatch OEM Raman board.

    Parameters
    ----------
    detector
        Physics model.
    eeprom
        EEPROM contents (model, serial, wavecal, excitation, ...).
    byte_order
        ``"little"`` or ``"big"`` for the raw pixel stream.
    interlock_closed
        Hardware interlock state; the laser cannot fire while it is open.
    faults
        Fault plan (for refusal faults).
    """

    baud = w.BAUD

    def __init__(self, detector: DetectorModel, eeprom: wasatch_eeprom.Eeprom,
                 byte_order: str = "little", interlock_closed: bool = True,
                 faults: FaultPlan | None = None) -> None:
        self.detector = detector
        self.pages = wasatch_eeprom.encode(eeprom)
        self.eeprom = eeprom
        self.byte_order = byte_order
        self.interlock_closed = interlock_closed
        self.faults = faults or FaultPlan()
        self.parser = w.StreamParser()
        self.integration_ms = 100
        self.laser_enabled = False
        self.eeprom_page = 0
        self.busy_until = 0.0
        self.last_traffic = 0.0

    @property
    def laser_firing(self) -> bool:
        """True when the laser emits: enabled and interlock closed."""
        return self.laser_enabled and self.interlock_closed

    def _frame(self, cmd: int, data: bytes, now: float, kind: str = "frame",
               ready_at: float | None = None) -> Reply:
        return Reply(w.encode(cmd, data), max(now, self.busy_until) if ready_at is None
                     else ready_at, kind)

    def _status(self, cmd: int, code: int, now: float) -> Reply:
        return self._frame(cmd, bytes([w.status_byte(code)]), now)

    def _watchdog(self, now: float) -> None:
        wd = self.eeprom.laser_watchdog_s
        if wd and self.laser_enabled and self.last_traffic and now - self.last_traffic > wd:
            self.laser_enabled = False
        self.last_traffic = now

    def handle(self, data: bytes, now: float) -> list[Reply]:
        """Consume host bytes; return the replies."""
        self._watchdog(now)
        out: list[Reply] = []
        for ev in self.parser.feed(data):
            if isinstance(ev, w.BadFrame):
                if ev.reason.startswith("garbage"):
                    continue
                code = w.STATUS_CRC if ev.reason == "CRC mismatch" else w.STATUS_LENGTH
                out.append(self._status(ev.command or 0, code, now))
                continue
            out.append(self._dispatch(ev, now))
        return out

    def _dispatch(self, f: w.Frame, now: float) -> Reply:
        if self.faults.take_nack():
            return self._status(f.command, self.faults.nack_code or w.STATUS_CRC, now)
        cmd, d = f.base_command, f.data
        det = self.detector
        if f.is_write:
            if cmd == w.CMD_INTEGRATION:
                if len(d) != 3:
                    return self._status(f.command, w.STATUS_LENGTH, now)
                ms = int.from_bytes(d, "little")
                if ms < max(1, self.eeprom.min_integration_ms):
                    return self._status(f.command, -1, now)
                self.integration_ms = ms
                return self._status(f.command, w.STATUS_SUCCESS, now)
            if cmd == w.CMD_LASER:
                if len(d) != 1:
                    return self._status(f.command, w.STATUS_LENGTH, now)
                self.laser_enabled = bool(d[0]) and self.eeprom.has_laser
                return self._status(f.command, w.STATUS_SUCCESS, now)
            if cmd == w.CMD_EEPROM_SELECT:
                if len(d) != 1:
                    return self._status(f.command, w.STATUS_LENGTH, now)
                page = d[0] - 0x40
                if not 0 <= page < len(self.pages):
                    return self._status(f.command, -3, now)
                self.eeprom_page = page
                return self._status(f.command, w.STATUS_SUCCESS, now)
            return self._status(f.command, w.STATUS_UNRECOGNIZED, now)
        if d:
            return self._status(f.command, w.STATUS_LENGTH, now)
        if cmd == w.CMD_ACQUIRE:
            t = self.integration_ms / 1000.0
            ready = max(now, self.busy_until) + t
            self.busy_until = ready
            counts = det.acquire(t, 1, self.laser_firing)
            dtype = "<u2" if self.byte_order == "little" else ">u2"
            return Reply(counts.astype(dtype).tobytes(), ready, "spectrum")
        if cmd == w.CMD_FIRMWARE_REV:
            return self._frame(f.command, bytes([1, 0, 53, 9]), now)
        if cmd == w.CMD_FPGA_REV:
            return self._frame(f.command, b"01.4.31", now)
        if cmd == w.CMD_INTEGRATION:
            return self._frame(f.command, self.integration_ms.to_bytes(3, "little"), now)
        if cmd == w.CMD_PIXEL_COUNT:
            return self._frame(f.command, struct.pack("<H", det.n_pixels), now)
        if cmd == w.CMD_LASER:
            return self._frame(f.command, bytes([int(self.laser_firing)]), now)
        if cmd == w.CMD_CCD_TEMPERATURE:
            return self._frame(f.command, struct.pack("<H", 0x0800), now)
        if cmd == w.CMD_PING:
            return self._frame(f.command, b"", now)
        if cmd == w.CMD_EEPROM_READ:
            return self._frame(f.command, self.pages[self.eeprom_page], now)
        return self._status(f.command, w.STATUS_UNRECOGNIZED, now)
