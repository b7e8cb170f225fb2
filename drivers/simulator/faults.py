"""Fault injection for the simulator: a small plan parsed from ``--faults SPEC``.

SPEC is a comma-separated list of ``kind=value`` items:

``garbage=N``     random bytes (1..32) before each of the next N replies
``drop=N``        one byte removed from each of the next N replies
``corrupt=N``     one byte changed in each of the next N replies
``truncate=N``    only the first half of each of the next N replies is sent
``delay=S``       the next reply is held back S seconds
``nack=N``        the next N commands are refused (OBP NACK / Wasatch status)
``nack_code=C``   error number / status code used for those refusals (default 6 / 2)
``disconnect=1``  the line drops half-way through the next spectrum
``on=KIND``       which replies the byte faults hit: ``spectrum`` (default), ``frame``, ``any``
``after=N``       skip the first N replies of that kind before faulting
``seed=N``        random seed
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ramanid.errors import UsageError

_COUNT_KINDS = ("garbage", "drop", "corrupt", "truncate", "nack", "disconnect")


@dataclass
class FaultPlan:
    """Pending faults; each byte fault is consumed by the reply it damages."""

    garbage: int = 0
    drop: int = 0
    corrupt: int = 0
    truncate: int = 0
    delay: float = 0.0
    nack: int = 0
    nack_code: int | None = None
    disconnect: int = 0
    on: str = "spectrum"
    after: int = 0
    seed: int = 0
    applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._seen = 0

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        """Parse a SPEC string (see the module docstring); raise UsageError when malformed."""
        plan = cls()
        if not spec:
            return plan
        for item in spec.replace(";", ",").split(","):
            item = item.strip()
            if not item:
                continue
            key, _, value = item.partition("=")
            key = key.strip().lower()
            value = value.strip() or "1"
            try:
                if key in _COUNT_KINDS or key in ("after", "seed"):
                    setattr(plan, key, int(value))
                elif key == "nack_code":
                    plan.nack_code = int(value)
                elif key == "delay":
                    plan.delay = float(value)
                elif key == "on":
                    if value not in ("spectrum", "frame", "any"):
                        raise ValueError(value)
                    plan.on = value
                else:
                    raise KeyError(key)
            except (ValueError, KeyError) as exc:
                raise UsageError(f"bad fault item {item!r}", source="--faults",
                                 hint="use e.g. 'garbage=1,corrupt=1,on=spectrum' "
                                      "(kinds: garbage drop corrupt truncate delay nack "
                                      "disconnect)") from exc
        plan.rng = random.Random(plan.seed)
        return plan

    def take_nack(self) -> bool:
        """True (and consume one) when the next command must be refused."""
        if self.nack > 0:
            self.nack -= 1
            self.applied.append("nack")
            return True
        return False

    def apply(self, data: bytes, kind: str) -> tuple[bytes, float, bool]:
        """Damage one reply.

        Parameters
        ----------
        data
            The reply bytes.
        kind
            ``"spectrum"`` or ``"frame"``.

        Returns
        -------
        (bytes, float, bool)
            The bytes to send, extra delay in seconds, and whether the line drops after them.
        """
        if self.on != "any" and kind != self.on:
            return data, 0.0, False
        if self._seen < self.after:
            self._seen += 1
            return data, 0.0, False
        rng = self.rng
        out = bytearray(data)
        delay = 0.0
        disconnect = False
        if self.delay > 0:
            delay, self.delay = self.delay, 0.0
            self.applied.append("delay")
        if self.corrupt > 0 and out:
            self.corrupt -= 1
            # damage the second half: the data region for both protocols
            i = rng.randrange(len(out) // 2, len(out))
            out[i] ^= rng.randrange(1, 256)
            self.applied.append("corrupt")
        if self.drop > 0 and out:
            self.drop -= 1
            del out[rng.randrange(len(out))]
            self.applied.append("drop")
        if self.truncate > 0 and out:
            self.truncate -= 1
            del out[len(out) // 2:]
            self.applied.append("truncate")
        if self.disconnect > 0 and kind == "spectrum":
            self.disconnect -= 1
            del out[len(out) // 2:]
            disconnect = True
            self.applied.append("disconnect")
        if self.garbage > 0:
            self.garbage -= 1
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 33)))
            out[:0] = junk
            self.applied.append("garbage")
        return bytes(out), delay, disconnect
