"""The simulator's output scheduler: replies released byte by byte at the device's baud rate.

A protocol model (:class:`~ramanid.drivers.simulator.obp_sim.ObpSimDevice` or
:class:`~ramanid.drivers.simulator.wasatch_sim.WasatchSimDevice`) turns received bytes into
replies, each ready at a time (e.g. after the integration time). The engine applies faults, lays
the replies out one after another on the line at 10 bits per byte (when ``pace`` is on), and hands
out whatever bytes are due. It is clock-driven and has no threads: the ``sim://`` handler calls it
from the reading thread, the pty and TCP servers from their serving loop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ramanid.drivers.simulator.faults import FaultPlan


@dataclass
class Reply:
    """Bytes a device model wants to send, not before ``ready_at``."""

    data: bytes
    ready_at: float
    kind: str = "frame"  # "frame" or "spectrum"
    after_send: object = None  # callable run once the bytes are on the line (e.g. baud switch)


class SimDevice(Protocol):
    """What a protocol model offers to the engine."""

    baud: int

    def handle(self, data: bytes, now: float) -> list[Reply]:
        """Consume received bytes and return the replies they cause."""


@dataclass
class _Segment:
    data: bytes
    start: float
    byte_time: float
    baud: int
    disconnect: bool
    after_send: object
    sent: int = 0

    def due(self, now: float) -> int:
        if now < self.start:
            return 0
        if self.byte_time <= 0:
            return len(self.data)
        return min(len(self.data), int((now - self.start) / self.byte_time) + 1)

    def end(self) -> float:
        return self.start + len(self.data) * self.byte_time


class SimEngine:
    """Paced, fault-injecting byte pipe in front of a device model.

    Parameters
    ----------
    device
        The protocol model.
    faults
        Fault plan (``None`` for none).
    pace
        Release bytes at the device's baud rate (``False``: as soon as a reply is ready).
    clock
        Monotonic clock in seconds.
    """

    def __init__(self, device: SimDevice, faults: FaultPlan | None = None, pace: bool = True,
                 clock=time.monotonic) -> None:
        self.device = device
        self.faults = faults or FaultPlan()
        self.pace = pace
        self.clock = clock
        self.lock = threading.RLock()
        self._queue: deque[_Segment] = deque()
        self._line_free = 0.0
        self.disconnected = False
        self.host_baud: int | None = None  # known for sim:// only; None = do not check
        self.bytes_in = 0
        self.bytes_out = 0

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan (engine byte faults and the device's refusals)."""
        with self.lock:
            self.faults = plan
            if hasattr(self.device, "faults"):
                self.device.faults = plan

    # -- host -> device ------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the host."""
        with self.lock:
            if self.disconnected or not data:
                return
            self.bytes_in += len(data)
            if self.host_baud is not None and self.host_baud != self.device.baud:
                return  # framing errors at the wrong rate: the device sees noise and ignores it
            now = self.clock()
            for reply in self.device.handle(bytes(data), now):
                self._schedule(reply, now)

    def _schedule(self, reply: Reply, now: float) -> None:
        data, delay, disconnect = self.faults.apply(reply.data, reply.kind)
        baud = self.device.baud
        byte_time = 10.0 / baud if self.pace else 0.0
        start = max(reply.ready_at + delay, self._line_free, now)
        seg = _Segment(data, start, byte_time, baud, disconnect, reply.after_send)
        self._line_free = seg.end()
        self._queue.append(seg)
        if not data:
            self._finish(seg)

    def _finish(self, seg: _Segment) -> None:
        if seg in self._queue:
            self._queue.remove(seg)
        if callable(seg.after_send):
            seg.after_send()
        if seg.disconnect:
            self.disconnected = True
            self._queue.clear()

    # -- device -> host ------------------------------------------------------------------------
    def read(self, max_bytes: int = 1 << 30) -> bytes:
        """Bytes due now (at most ``max_bytes``)."""
        with self.lock:
            now = self.clock()
            out = bytearray()
            while self._queue and len(out) < max_bytes:
                seg = self._queue[0]
                due = seg.due(now)
                take = min(due - seg.sent, max_bytes - len(out))
                if take <= 0:
                    break
                chunk = seg.data[seg.sent:seg.sent + take]
                if self.host_baud is not None and self.host_baud != seg.baud:
                    chunk = bytes((b * 7 + 0x5A) & 0xFF for b in chunk)  # wrong rate: garbage
                out += chunk
                seg.sent += take
                if seg.sent >= len(seg.data):
                    self._finish(seg)
                else:
                    break
            self.bytes_out += len(out)
            return bytes(out)

    def pending(self) -> int:
        """Bytes due now but not yet read."""
        with self.lock:
            now = self.clock()
            return sum(max(0, s.due(now) - s.sent) for s in self._queue)

    def next_due(self) -> float | None:
        """Time at which the next byte becomes due, or ``None`` when nothing is queued."""
        with self.lock:
            if not self._queue:
                return None
            seg = self._queue[0]
            if seg.byte_time <= 0:
                return seg.start
            return seg.start + seg.sent * seg.byte_time

    def reset_output(self) -> None:
        """Drop output that is already due (the host flushed its input buffer)."""
        with self.lock:
            now = self.clock()
            for seg in list(self._queue):
                seg.sent = max(seg.sent, seg.due(now))
                if seg.sent >= len(seg.data):
                    self._finish(seg)
                else:
                    break
