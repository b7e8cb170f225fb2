"""Where ramanid keeps its per-user state (calibration records, keys, caches).

``RAMANID_HOME`` overrides the default ``$XDG_DATA_HOME/ramanid`` (``~/.local/share/ramanid``).
Tests set ``RAMANID_HOME`` to a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """Return the ramanid state directory (not created here)."""
    env = os.environ.get("RAMANID_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ramanid"
