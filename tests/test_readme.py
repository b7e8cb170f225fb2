"""README.md is assembled from docs/readme/ (tools/build_readme.py): it must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_built_from_its_sources() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_readme.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_command_of_the_cli_is_documented_in_the_readme() -> None:
    from ramanid.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in subs.choices if f"ramanid {name}" not in readme]
    assert not missing, missing
