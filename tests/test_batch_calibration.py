"""``ramanid batch`` applies device calibration records exactly as ``ramanid identify`` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

DEVICE_DIR = ("charisma", "ICV_BW785")
SCAN = "PST02_iRPlus785_Z020_100_1300ms.txt"


def _ramanid(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAMANID_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "ramanid", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def calibrated_home(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A RAMANID_HOME holding real wavelength + excitation records of device RUW."""
    home = tmp_path_factory.mktemp("home")
    d = shared_data.joinpath(*DEVICE_DIR)
    for kind, f in (("wavelength", "Ne_785nm_x20_50ms.txt"),
                    ("excitation", "S0N02_iRPlus785_Z050_100_3200ms.txt")):
        done = _ramanid("calibrate", kind, "--device", "RUW", str(d / f), home=home)
        assert done.returncode == 0, done.stderr
    return home


def test_batch_rows_equal_identify_json_for_a_calibrated_device(
        calibrated_home: Path, shared_data: Path, tmp_path: Path) -> None:
    scan = shared_data.joinpath(*DEVICE_DIR, SCAN)
    ident = _ramanid("identify", str(scan), "--json", home=calibrated_home)
    rec = json.loads(ident.stdout.splitlines()[0])
    assert rec["calibration"]["applied"] is True          # identify applied the record
    out = tmp_path / "r.jsonl"
    done = _ramanid("batch", str(scan), "--out", str(out), "--no-progress", home=calibrated_home)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["calibration"]["id"] == rec["calibration"]["id"]
    assert row["calibration"]["applied"] is True
    assert row["verdict"] == rec["verdict"]
    assert row["scan_id"] == rec["scan_id"]
    assert row["candidates"] == rec["candidates"]
    assert row["shift_cm1"] == rec["shift_cm1"]


def test_rows_of_several_devices_keep_their_order(calibrated_home: Path, shared_data: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of a calibrated device, of an uncalibrated one and already calibrated rows, mixed."""
    from ramanid.batch_engine import _calibrated_columns, columns_from_resultset
    from ramanid.cli.identify import apply_device_calibrations
    from ramanid.identify import Identifier
    from ramanid.io import read_batches
    from ramanid.library import load_library
    from ramanid.spectrum import SpectrumBatch

    monkeypatch.setenv("RAMANID_HOME", str(calibrated_home))
    d = shared_data.joinpath(*DEVICE_DIR)
    base = SpectrumBatch.concat(b for f in (SCAN, "PST02_iRPlus785_Z050_100_3200ms.txt")
                                for b in read_batches(d / f))
    rows = [0, 1, 0, 1, 0]
    batch = base[rows]
    batch.meta[:] = [dict(m) for m in batch.meta]
    batch.meta[1]["device_serial"] = "OTHER-1"              # no record: factory axis
    batch.meta[3]["calibration_id"] = "given-elsewhere"     # already calibrated: left alone
    ident = Identifier(load_library())
    got = _calibrated_columns(ident, batch)
    for i in range(len(batch)):
        one = batch[[i]]
        one.meta[:] = [dict(m) for m in one.meta]
        want = columns_from_resultset(ident.run(SpectrumBatch.concat(
            apply_device_calibrations([one]))))
        for key, col in want.items():
            assert got[key][i:i + 1].tolist() == col.tolist(), (i, key)
    cal = [json.loads(c) for c in got["calibration"].tolist()]
    assert [cal[i]["applied"] for i in (0, 1, 2, 4)] == [True, False, True, True]
    assert cal[0]["id"] == cal[2]["id"] == cal[4]["id"] != cal[3]["id"]
