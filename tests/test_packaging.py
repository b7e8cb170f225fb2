"""The package layout: folders map into the ramanid namespace and every sub-package ships."""

from __future__ import annotations

import configparser
import subprocess
import sys

from conftest import REPO

ROOTS = {"ramanid": "ramanid", "drivers": "ramanid.drivers", "calibration": "ramanid.calibration",
         "spectra_library": "ramanid.spectra_library"}


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def test_every_subpackage_is_listed_in_setup_cfg() -> None:
    listed = set(_setup_cfg()["options"]["packages"].split())
    found = set()
    for folder, dotted in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([dotted, *rel.parts]))
    missing = sorted(found - listed)
    assert not missing, f"add these to [options] packages in setup.cfg: {missing}"


def test_no_generic_top_level_names_are_installed() -> None:
    mapping = _setup_cfg()["options"]["package_dir"]
    names = [line.split("=")[0].strip() for line in mapping.strip().splitlines()]
    assert all(n == "ramanid" or n.startswith("ramanid.") for n in names), names


def test_namespace_imports_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-c",
         "import ramanid, ramanid.drivers, ramanid.calibration, ramanid.spectra_library;"
         "print(ramanid.__version__)"],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("ramanid").__version__


def test_console_entry_points_agree() -> None:
    a = subprocess.run([sys.executable, "-m", "ramanid", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert a.returncode == 0
    assert a.stdout.strip().startswith("ramanid ")
