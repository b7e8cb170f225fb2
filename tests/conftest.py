"""Shared pytest fixtures: where the real data of ../shared lives, temporary libraries, etc."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Per-user state (calibration records, keys, caches) never touches the real home directory in
# tests: every run, and every subprocess it starts, uses a fresh RAMANID_HOME.
os.environ["RAMANID_HOME"] = tempfile.mkdtemp(prefix="ramanid-test-home-")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test with a clear message when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}: clone the project beside ../shared")
    return SHARED_DATA
