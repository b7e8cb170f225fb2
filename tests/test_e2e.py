"""End-to-end journeys across areas, through the real ``ramanid`` command line (subprocesses).

Each test follows what a user does with several commands in a row and checks that the parts agree
with each other: a scan acquired over a real pseudo-terminal identifies the same way after it is
saved and read back; a substance a laboratory adds is found by the field unit only once approved,
and an altered library is refused; packing, batch re-identification and ``identify`` give the same
verdicts for the same scans. The spectra are the measured ENLIGHTEN files shipped with the library
sources (no ../shared needed).
"""

from __future__ import annotations

import csv
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "spectra_library" / "sources" / "enlighten"
OLDER = SOURCES / "library-older"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    """Environment of a fresh field unit: own state directory, bundled library, English."""
    e = dict(os.environ)
    e.pop("RAMANID_LIBRARY", None)
    e.update(RAMANID_HOME=str(tmp_path / "home"), RAMANID_LANG="en", PYTHONWARNINGS="default")
    return e


def ramanid(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ramanid ARGS``; fail on any traceback (never acceptable)."""
    r = subprocess.run([sys.executable, "-m", "ramanid", *args], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_scan_over_a_real_pty_then_identify_the_saved_file(tmp_path, env):
    """simulate --pty -> scan --save -> identify: same verdict, hazard, top hit, device, label."""
    sim = subprocess.Popen([sys.executable, "-m", "ramanid", "simulate", "--protocol", "wasatch",
                            "--sample", "ammonium nitrate", "--pty", "--no-pace", "--seed", "7"],
                           env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port, seen, deadline = None, "", time.monotonic() + 60
        while port is None and time.monotonic() < deadline and sim.poll() is None:
            ready, _, _ = select.select([sim.stdout], [], [], 1.0)
            if ready:
                line = sim.stdout.readline()
                seen += line
                port = next((w for w in line.split() if w.startswith("/dev/")), None)
        assert port, f"simulator did not print its pty path: {seen!r} {sim.poll()}"
        saved = tmp_path / "parcel-17.h5"
        scan = ramanid("scan", "--device", port, "--integration-ms", "50", "--dark", "--json",
                       "--save", str(saved), "--operator", "QA", env=env, cwd=tmp_path)
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(timeout=30)
    assert scan.returncode == 3, scan.stderr  # ammonium nitrate: hazard level high
    (live,) = json_lines(scan.stdout)
    assert saved.is_file()

    ident = ramanid("identify", str(saved), "--json", env=env, cwd=tmp_path)
    assert ident.returncode == scan.returncode, ident.stderr
    (again,) = json_lines(ident.stdout)
    for r in (live, again):
        assert r["hazard"]["level"] == "high"
        assert r["candidates"][0]["name"] == "Ammonium nitrate"
        assert r["device_serial"] == live["device_serial"] and r["device_serial"]
        assert r["scan"].get("simulated") is True  # never presented as a measured scan
    assert again["verdict"] == live["verdict"]
    assert [c["id"] for c in again["candidates"][:3]] == [c["id"] for c in live["candidates"][:3]]
    assert again["candidates"][0]["score"] == pytest.approx(live["candidates"][0]["score"],
                                                            abs=1e-3)
    text = ramanid("identify", str(saved), env=env, cwd=tmp_path)
    assert text.returncode == 3 and "DANGER" in text.stdout and "SIMULATED" in text.stdout


def test_lab_adds_a_substance_field_unit_finds_it_once_approved(tmp_path, env):
    """library build -> approve -> add -> validate -> approve -> identify finds it -> batch
    --since-library reports exactly the archived scan that changed; tampering refused."""
    scans = tmp_path / "crm"
    scans.mkdir()
    for name in ("lactose", "glucose"):
        (scans / f"{name}.csv").write_bytes((SOURCES / "library" / f"{name}.csv").read_bytes())
    lab = tmp_path / "lab.h5"
    query = str(SOURCES / "library" / "caffeine.csv")

    r = ramanid("library", "build", str(scans), "--out", str(lab), "--name", "QA lab",
                "--by", "builder", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("lactose", "glucose"):
        assert ramanid("library", "approve", name, "--library", str(lab), "--by", "Dr A",
                       env=env, cwd=tmp_path).returncode == 0

    def verdict() -> dict:
        r = ramanid("identify", query, "--library", str(lab), "--json", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        (rec,) = json_lines(r.stdout)
        return rec

    before = verdict()
    assert before["verdict"] == "no_match"
    old = tmp_path / "lab-before.h5"
    old.write_bytes(lab.read_bytes())  # the version field units had before the update

    r = ramanid("library", "add", query, "--library", str(lab), "--name", "Caffeine",
                "--class", "cutting agent", "--hazard", "none", "--source", "CRM lot 7",
                "--licence", "internal", "--by", "Analyst", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    entry_id = r.stdout.split()[1]
    pending = verdict()  # a pending entry must not be used in the field
    assert pending["verdict"] == "no_match" and pending["library"]["sha256"] != \
        before["library"]["sha256"]

    r = ramanid("library", "validate", "--library", str(lab), "--json", env=env, cwd=tmp_path)
    (report,) = json_lines(r.stdout)
    assert report["id"] == entry_id and report["ok"] and report["duplicates"] == []
    assert {n["name"] for n in report["nearest"]} == {"lactose", "glucose"}
    assert report["nearest"][0]["score"] < 0.5 and report["confusable"] == []
    assert ramanid("library", "approve", entry_id, "--library", str(lab), "--by", "Dr B",
                   env=env, cwd=tmp_path).returncode == 0

    after = verdict()
    assert after["verdict"] == "match" and after["candidates"][0]["id"] == entry_id
    assert after["candidates"][0]["score"] > 0.99

    # the analyst re-identifies the archive of past scans against the new library version
    archive = tmp_path / "past"
    archive.mkdir()
    for name in ("caffeine", "lactose"):
        (archive / f"{name}.csv").write_bytes((SOURCES / "library" / f"{name}.csv").read_bytes())
    r = ramanid("batch", str(archive), "--out", "since.jsonl", "--library", str(lab),
                "--since-library", str(old), "--workers", "1", "--no-progress", env=env,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    changes = json_lines((tmp_path / "since.changes.jsonl").read_text())
    assert [Path(c["source"]).name for c in changes] == ["caffeine.csv"]
    assert changes[0]["old_verdict"] == "no_match" and changes[0]["new_verdict"] == "match"

    # one changed byte in the middle of the file: the field unit refuses the library
    data = bytearray(lab.read_bytes())
    data[len(data) // 2] ^= 0x01
    lab.write_bytes(bytes(data))
    r = ramanid("identify", query, "--library", str(lab), env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "refused" in r.stderr


def test_pack_batch_and_identify_agree_scan_by_scan(tmp_path, env):
    """archive pack (corrupt files skipped) -> batch (archive and directory) == identify --json."""
    scans = tmp_path / "seized"
    (scans / "2026").mkdir(parents=True)
    for f in sorted(OLDER.glob("*.csv")):
        (scans / "2026" / f.name).write_bytes(f.read_bytes())
    (scans / "corrupt.csv").write_bytes(bytes(range(256)) * 8)
    (scans / "empty.txt").write_text("")
    n_good = len(list(OLDER.glob("*.csv")))

    r = ramanid("archive", "pack", str(scans), "--out", str(tmp_path / "a.h5"), env=env,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"packed {n_good} scans" in r.stdout
    assert "corrupt.csv" in r.stdout + r.stderr and "empty.txt" in r.stdout + r.stderr

    r = ramanid("batch", "a.h5", "--out", "arch.jsonl", "--workers", "1", "--no-progress",
                env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr  # ammonium nitrate
    arch = json_lines((tmp_path / "arch.jsonl").read_text())
    assert len(arch) == n_good and len({row["scan_id"] for row in arch}) == n_good

    r = ramanid("batch", str(scans), "--out", "dir.csv", "--workers", "1", "--no-progress",
                env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    with open(tmp_path / "dir.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_good + 2
    failed = {Path(row["source"]).name: row["error"] for row in rows if row["status"] != "ok"}
    assert set(failed) == {"corrupt.csv", "empty.txt"} and all(failed.values())
    summary = json.loads((tmp_path / "dir.csv.summary.json").read_text())
    assert summary["scans"] == n_good + 2 and summary["errors"] == 2

    files = sorted(str(p) for p in (scans / "2026").glob("*.csv"))
    r = ramanid("identify", *files, "--json", env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    single = {Path(rec["source"]).name: rec for rec in json_lines(r.stdout)}
    by_dir = {Path(row["source"]).name: row for row in rows if row["status"] == "ok"}
    by_arch = {Path(row["origin"]).name: row for row in arch}
    assert set(single) == set(by_dir) == set(by_arch) and len(single) == n_good
    for name, rec in single.items():
        for row in (by_dir[name], by_arch[name]):
            assert row["verdict"] == rec["verdict"], name
            assert row["top_id"] == rec["candidates"][0]["id"], name
            assert float(row["top_score"]) == pytest.approx(rec["candidates"][0]["score"],
                                                            abs=1e-3), name
            assert row["hazard_level"] == rec["hazard"]["level"], name
    assert by_arch["ammonium nitrate.csv"]["hazard_level"] == "high"


def test_device_calibration_reaches_every_later_verdict(tmp_path, env):
    """scan a standard -> calibrate shift -> calibration show -> scan: the verdict names the
    record that was applied, with its state, and warns unless that state is ok."""
    sim = "sim://wasatch?pace=0&seed=1&sample="
    r = ramanid("scan", "--device", sim + "Polystyrene", "--integration-ms", "500",
                "--averages", "4", "--dark", "--json", "--save", "ps.csv", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (first,) = json_lines(r.stdout)
    serial = first["device_serial"]
    assert any(w["code"] == "calibration" for w in first["warnings"])  # none on record yet

    r = ramanid("calibrate", "shift", "--device", serial, "ps.csv", env=env, cwd=tmp_path)
    assert r.returncode in (0, 1) and "record" in r.stdout, r.stdout + r.stderr  # 1 = FAIL saved
    r = ramanid("calibration", "show", "--json", env=env, cwd=tmp_path)
    (status,) = json.loads(r.stdout)
    assert status["serial"] == serial and status["state"] in ("ok", "failed")
    assert (status["state"] == "ok") == (status["warning"] is None)

    r = ramanid("scan", "--device", sim + "caffeine", "--json", env=env, cwd=tmp_path)
    (later,) = json_lines(r.stdout)
    assert later["candidates"][0]["name"] == "Caffeine"
    cal = later["calibration"]
    assert isinstance(cal, dict) and cal["id"] == status["id"] and cal["state"] == status["state"]
    warned = [w for w in later["warnings"] if w["code"] == "calibration"]
    if status["state"] == "ok":
        assert warned == []
    else:
        assert [w["state"] for w in warned] == [status["state"]]
