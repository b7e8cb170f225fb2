"""Hazard levels: the one definition every part of ramanid uses.

``none`` < ``low`` < ``high`` < ``extreme``. Levels ``high`` and ``extreme`` raise the alarm
(banner, exit status 3, counted as hazard alarms in batch summaries); ``low`` (e.g. a flammable
solvent) is shown as a caution only.
"""

from __future__ import annotations

HAZARD_LEVELS = ("none", "low", "high", "extreme")
ALARM_LEVELS = ("high", "extreme")
HAZARD_RANK = {level: rank for rank, level in enumerate(HAZARD_LEVELS)}


def is_alarm(level: str | None) -> bool:
    """Whether a hazard level raises the alarm (``high`` or ``extreme``)."""
    return level in ALARM_LEVELS
