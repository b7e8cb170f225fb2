"""Atomic writes leave either the old file or the new one, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from ramanid.atomic import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_uses_umask_permissions(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_inside_block_keeps_old_file_and_no_temp(tmp_path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
