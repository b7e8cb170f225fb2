"""``ramanid scan`` / ``ramanid devices`` end to end: sim://, socket:// (127.0.0.1, ephemeral
port), calibration records, --save, JSON and exit statuses identical to ``ramanid identify``."""

from __future__ import annotations

import json

import pytest

from ramanid.cli import main

pytestmark = [pytest.mark.timeout(60), pytest.mark.shared]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("RAMANID_HOME", str(tmp_path / "home"))


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_scan_sim_wasatch_text(capsys) -> None:
    rc = main(["scan", "--device", "sim://wasatch?pace=0&sample=Caffeine",
               "--integration-ms", "50", "--dark"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Caffeine" in out and "SIMULATED" in out.upper()


def test_scan_json_save_and_metadata(tmp_path, capsys) -> None:
    save = tmp_path / "scan.csv"
    rc = main(["scan", "--device", "sim://sts?pace=0&sample=lactose", "--laser-nm", "785",
               "--integration-ms", "30", "--averages", "2", "--json", "--save", str(save),
               "--option", "target_baud=115200"])
    records = _json_lines(capsys.readouterr().out)
    assert rc == 0 and len(records) == 1
    r = records[0]
    for key in ("source", "verdict", "reason", "hazard", "candidates", "qc", "library",
                "recipe", "engine_version"):
        assert key in r
    assert r["candidates"][0]["name"].lower() == "lactose"
    text = json.dumps(r)
    assert "SIM-STS-0001" in text and "sim://sts" in text
    from ramanid.io import read

    saved = read(save)
    assert saved.meta[0]["device_serial"] == "SIM-STS-0001"
    assert saved.meta[0]["integration_ms"] == pytest.approx(30)
    assert saved.meta[0]["averages"] == 2
    assert saved.intensity.shape[1] == 1024


def test_scan_hazard_exit_status_3(capsys) -> None:
    rc = main(["scan", "--device", "sim://wasatch?pace=0&sample=ammonium nitrate",
               "--integration-ms", "50", "--json"])
    r = _json_lines(capsys.readouterr().out)[0]
    assert r["hazard"]["level"] in ("high", "extreme")
    assert rc == 3


def test_scan_over_socket(capsys) -> None:
    from ramanid.drivers.simulator import make_engine
    from ramanid.drivers.simulator.servers import TcpServer

    with TcpServer(make_engine("wasatch", sample="Caffeine", pace=True)) as srv:
        rc = main(["scan", "--device", srv.url, "--integration-ms", "20", "--json"])
    r = _json_lines(capsys.readouterr().out)[0]
    assert rc == 0 and r["candidates"][0]["name"] == "Caffeine"


def test_scan_applies_stored_calibration_record(capsys) -> None:
    from ramanid.calibration import CalibrationRecord, save_record

    rec = CalibrationRecord(serial="SIM-WP-0001", kind="excitation", standard="silicon",
                            laser_nm=784.9, passed=True)
    save_record(rec)
    rc = main(["scan", "--device", "sim://wasatch?pace=0&sample=Caffeine",
               "--integration-ms", "50", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    assert rec.id in out


def test_scan_does_not_apply_a_failed_record_and_says_so(capsys) -> None:
    from datetime import datetime, timedelta, timezone

    from ramanid.calibration import CalibrationRecord, save_record

    good = CalibrationRecord(serial="SIM-WP-0001", kind="excitation", standard="silicon",
                             laser_nm=784.9, passed=True)
    save_record(good)
    bad = CalibrationRecord(serial="SIM-WP-0001", kind="shift", standard="polystyrene",
                            laser_nm=784.9, passed=False, created=(
                                datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat())
    save_record(bad)
    argv = ["scan", "--device", "sim://wasatch?pace=0&sample=Caffeine", "--integration-ms", "50"]
    rc = main([*argv, "--json"])
    captured = capsys.readouterr()
    (r,) = _json_lines(captured.out)
    assert rc == 0 and r["candidates"][0]["name"] == "Caffeine"
    assert r["scan"].get("calibration_id") is None  # neither the failed nor the older record
    cal = r["calibration"]
    assert cal["id"] == bad.id and cal["state"] == "failed" and cal["applied"] is False
    warned = [w for w in r["warnings"] if w["code"] == "calibration"]
    assert [w["state"] for w in warned] == ["failed"]
    assert "FAILED" in warned[0]["message"] and "re-calibrate" in warned[0]["message"]
    assert "FAILED" in captured.err and bad.id in captured.err
    main(argv)  # the text verdict shows it too
    assert "FAILED" in capsys.readouterr().out


def test_scan_obp_without_laser_is_usage_error(capsys) -> None:
    rc = main(["scan", "--device", "sim://sts?pace=0", "--integration-ms", "10",
               "--option", "target_baud=115200"])
    err = capsys.readouterr().err
    assert rc == 2 and "--laser-nm" in err and "Traceback" not in err


def test_scan_unreachable_device_is_one_line(tmp_path, capsys) -> None:
    rc = main(["scan", "--device", str(tmp_path / "ttyNONE"), "--protocol", "wasatch"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "cannot open the port" in err


def test_scan_device_fault_reported_not_misidentified(capsys) -> None:
    rc = main(["scan", "--device", "sim://wasatch?pace=0&faults=disconnect=1",
               "--integration-ms", "10", "--json"])
    captured = capsys.readouterr()
    assert rc == 1 and captured.out == ""
    assert "disconnected" in captured.err


def test_devices_probe_given_urls(capsys) -> None:
    rc = main(["devices", "--probe", "--json", "--port", "sim://wasatch?pace=0",
               "--port", "sim://sts?pace=0"])
    rows = {r["port"]: r for r in _json_lines(capsys.readouterr().out)}
    assert rc == 0
    assert rows["sim://wasatch?pace=0"]["protocol"] == "wasatch"
    assert rows["sim://sts?pace=0"]["protocol"] == "obp"
