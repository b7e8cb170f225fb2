"""``ramanid identify`` end to end: real files, the real engine and the shipped default library."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ramanid import i18n
from ramanid.cli import main

REPO = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = ("source", "verdict", "reason", "hazard", "candidates", "components", "qc",
                 "library", "recipe", "engine_version", "shift_cm1", "warnings")
META_KEYS = ("device_serial", "laser_nm", "integration_ms", "timestamp")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def older(shared_data: Path) -> Path:
    return shared_data / "enlighten" / "library-older"


@pytest.fixture(scope="module")
def library():
    from ramanid.library import load_library

    return load_library()


def _json_records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _one_line_error(err: str, name: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ramanid: error: ")
    assert name in lines[0]
    assert "Traceback" not in err


# -- the Done-means check: every library-older file -----------------------------------------------
def _expected_substances(library, stem: str) -> set[str]:
    low = stem.lower()
    return {e.substance for e in library.entries
            if e.name.lower() == low or low in (s.lower() for s in e.synonyms)}


@pytest.mark.timeout(120)
def test_identifies_every_library_older_file_that_is_in_the_library(older, library, capsys):
    files = sorted(older.glob("*.csv"))
    assert len(files) == 9
    status = main(["identify", "--json", *map(str, files)])
    records = _json_records(capsys.readouterr().out)
    assert [Path(r["source"]).name for r in records] == [f.name for f in files]
    checked = 0
    for f, rec in zip(files, records, strict=True):
        expected = _expected_substances(library, f.stem)
        if not expected:
            continue
        checked += 1
        assert rec["verdict"] in ("match", "mixture"), (f.name, rec["verdict"], rec["reason"])
        best = library.entry(rec["candidates"][0]["id"])
        assert best.substance in expected, (f.name, best.name)
    assert checked >= 8  # the default library holds these substances
    hazardous = [r for r in records if r["hazard"]["level"] in ("high", "extreme")]
    assert "ammonium nitrate.csv" in {Path(r["source"]).name for r in hazardous}
    assert status == 3


# -- text output ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_hazard_banner_and_exit_3(older, capsys):
    status = main(["identify", str(older / "ammonium nitrate.csv")])
    out = capsys.readouterr().out
    assert status == 3
    assert "DANGER" in out and "║" in out
    assert out.index("DANGER") < out.lower().index("identified: ammonium nitrate")
    assert "Candidates" in out and "Scan quality" in out


@pytest.mark.timeout(60)
def test_cutting_agent_exits_0_without_banner(older, capsys):
    status = main(["identify", str(older / "lactose.csv"), "--top", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "IDENTIFIED: lactose" in out.replace("Lactose", "lactose")
    assert "DANGER" not in out
    assert len(re.findall(r"^\s+\d\. ", out, flags=re.M)) == 3


@pytest.mark.timeout(60)
def test_language_option_and_environment(older, capsys, monkeypatch):
    assert main(["identify", "--lang", "ar", str(older / "ammonium nitrate.csv")]) == 3
    out = capsys.readouterr().out
    assert i18n.t("hazard.title.high", "ar") in out or i18n.t("hazard.title.extreme", "ar") in out
    monkeypatch.setenv("RAMANID_LANG", "fr")
    assert main(["identify", str(older / "glucose.csv")]) == 0
    assert "SUBSTANCE IDENTIFIÉE" in capsys.readouterr().out


# -- JSON contract --------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_json_lines_carry_every_contract_key(older, capsys):
    status = main(["identify", "--json", "--top", "4", "--operator", "J. Diaz", "--case",
                   "MX-2291", str(older / "sucrose.csv"), str(older / "ammonium nitrate.csv")])
    out = capsys.readouterr().out
    records = _json_records(out)
    assert status == 3
    assert len(records) == 2 == len(out.strip().splitlines())
    for rec in records:
        for key in CONTRACT_KEYS + META_KEYS:
            assert key in rec, key
        assert rec["verdict"] in ("match", "mixture", "no_match", "inconclusive")
        assert set(rec["hazard"]) >= {"level", "substances", "message"}
        assert rec["hazard"]["level"] in ("none", "low", "high", "extreme")
        assert 1 <= len(rec["candidates"]) <= 4
        for cand in rec["candidates"]:
            assert set(cand) >= {"id", "name", "score"}
        assert set(rec["qc"]) >= {"snr", "saturation", "fluorescence", "coverage"}
        assert set(rec["library"]) >= {"version", "sha256"} and len(rec["library"]["sha256"]) == 64
        assert rec["operator"] == "J. Diaz" and rec["case_id"] == "MX-2291"
    assert records[1]["hazard"]["substances"]


# -- bad input: one line, exit 1, no traceback ----------------------------------------------------
def _bad_files(tmp: Path) -> dict[str, Path]:
    def rows(bad: dict[int, str]) -> str:
        return "\n".join(f"{400 + i},{bad.get(i, (i * 7) % 13)}" for i in range(50))

    files = {
        "empty.csv": "",
        "words.csv": "hello,world\nfoo,bar\n",
        "nan.csv": rows({10: "nan"}),
        "inf.csv": rows({20: "inf"}),
        "unsorted.csv": "\n".join(f"{x},{i}" for i, x in enumerate(
            [400, 420, 410, *range(430, 480)])),
        "duplicated.csv": "\n".join(f"{x},{i}" for i, x in enumerate(
            [400, 401, 401, *range(402, 450)])),
        "onecolumn.csv": "\n".join(str(i) for i in range(50)),
    }
    out = {}
    for name, text in files.items():
        p = tmp / name
        p.write_text(text)
        out[name] = p
    garbage = tmp / "garbage.spc"
    garbage.write_bytes(bytes(range(256)) * 8 + b"\x00\xff" * 100)
    out["garbage.spc"] = garbage
    (tmp / "adirectory").mkdir()
    out["adirectory"] = tmp / "adirectory"
    out["missing.csv"] = tmp / "missing.csv"
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["empty.csv", "words.csv", "nan.csv", "inf.csv", "unsorted.csv",
                                  "duplicated.csv", "onecolumn.csv", "garbage.spc", "adirectory",
                                  "missing.csv"])
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, name):
    path = _bad_files(tmp_path)[name]
    status = main(["identify", str(path)])
    captured = capsys.readouterr()
    assert status == 1
    _one_line_error(captured.err, name)
    assert captured.out == ""


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_unreadable_file(tmp_path, capsys):
    p = tmp_path / "secret.csv"
    p.write_text("1,2\n2,3\n3,4\n")
    p.chmod(0)
    if os.geteuid() != 0:
        status = main(["identify", str(p)])
        assert status == 1
        _one_line_error(capsys.readouterr().err, "secret.csv")
        return
    # root ignores file modes: run the command in a child that has dropped to user "nobody"
    # (ramanid is imported first, while its files are still readable)
    # (with the stdlib modules they load lazily: the interpreter's own tree may be root-only)
    code = ("import sys, os, locale, gettext, numpy, ramanid.cli, ramanid.cli.identify\n"
            "import ramanid.io, ramanid.io.delimited, ramanid.report\n"
            "ramanid.cli.build_parser()\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"sys.exit(ramanid.cli.main(['identify', {str(p)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 1, proc.stderr
    _one_line_error(proc.stderr, "secret.csv")
    assert "permission denied" in proc.stderr.lower()


@pytest.mark.timeout(60)
def test_other_files_go_on_after_an_error(tmp_path, older, capsys):
    bad = _bad_files(tmp_path)["garbage.spc"]
    assert main(["identify", str(bad), str(older / "lactose.csv")]) == 1
    captured = capsys.readouterr()
    _one_line_error(captured.err, "garbage.spc")
    assert "IDENTIFIED" in captured.out and "unreadable: 1" in captured.out
    # a hazard elsewhere wins over the input error
    assert main(["identify", str(bad), str(older / "ammonium nitrate.csv")]) == 3
    assert "HAZARD: 1" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_bad_library_is_one_line_exit_1(tmp_path, older, capsys):
    lib = tmp_path / "lib.h5"
    lib.write_bytes(b"not a library" * 20)
    assert main(["identify", "--library", str(lib), str(older / "lactose.csv")]) == 1
    _one_line_error(capsys.readouterr().err, "lib.h5")


@pytest.mark.parametrize("argv", [["identify"], ["identify", "--top", "0", "x.csv"],
                                  ["identify", "--lang", "xx", "x.csv"],
                                  ["identify", "--laser-nm", "5", "x.csv"],
                                  ["identify", "--bogus", "x.csv"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["identify", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for code in ("0  done", "1  input error", "2  usage error", "3  at least one scan"):
        assert code in out
    assert "3 wins over 1" in out


# -- plots ----------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_plot_writes_png_files(tmp_path, older, capsys):
    out = tmp_path / "fig.png"
    assert main(["identify", str(older / "ammonium nitrate.csv"), "--plot", str(out)]) == 3
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"Plot written: {out}" in capsys.readouterr().out
    many = tmp_path / "many.png"
    assert main(["identify", "--json", str(older / "toluene.csv"), str(older / "sulfur.csv"),
                 "--plot", str(many)]) == 0
    captured = capsys.readouterr()
    written = sorted(p.name for p in tmp_path.glob("many-*.png"))
    assert written == ["many-01-toluene.png", "many-02-sulfur.png"]
    assert len(_json_records(captured.out)) == 2  # stdout stays pure JSON
    assert "Plot written" in captured.err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["out.txt", "out.jpg", "fig.PNG.bak"])
def test_plot_with_unsupported_format_is_a_usage_error_before_any_work(tmp_path, older, capsys,
                                                                       target):
    status = main(["identify", str(older / "lactose.csv"), "--plot", str(tmp_path / target)])
    captured = capsys.readouterr()
    assert status == 2
    _one_line_error(captured.err, "--plot")
    assert "unsupported figure format" in captured.err and ".png" in captured.err
    assert captured.out == ""  # refused before identifying anything
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_plot_in_an_unwritable_place_fails_before_any_work(tmp_path, older, capsys):
    for target in ("/proc/x.png", str(tmp_path / "no-such-dir" / "x.png"), str(tmp_path)):
        status = main(["identify", str(older / "lactose.csv"), "--plot", target])
        captured = capsys.readouterr()
        assert status == 1, target
        _one_line_error(captured.err, f"cannot write the figure {target}")
        assert "unexpected" not in captured.err
        assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # the probe file is gone again


# -- the shared entry point used by `ramanid scan` ------------------------------------------------
@pytest.mark.timeout(60)
def test_run_identification_prints_like_identify(older, capsys):
    from ramanid.cli.identify import run_identification
    from ramanid.io import read

    path = older / "ammonium nitrate.csv"
    assert main(["identify", str(path)]) == 3
    via_cli = capsys.readouterr().out
    buf = io.StringIO()
    assert run_identification(read(path), {"top": 5}, stdout=buf) == 3
    assert buf.getvalue() == via_cli


# -- real processes -------------------------------------------------------------------------------
def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "ramanid", *args], capture_output=True,
                          text=True, timeout=90, env=env, cwd=REPO)


@pytest.mark.timeout(120)
def test_subprocess_hazard_exit_3(older):
    proc = _run("identify", str(older / "ammonium nitrate.csv"))
    assert proc.returncode == 3, proc.stderr
    assert "DANGER" in proc.stdout and proc.stderr == ""


@pytest.mark.timeout(120)
def test_subprocess_bad_file_exit_1_without_traceback(tmp_path, older):
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\x00\x01garbage\xff" * 40)
    proc = _run("identify", str(bad), str(older / "glucose.csv"))
    assert proc.returncode == 1
    _one_line_error(proc.stderr, "broken.csv")
    assert "IDENTIFIED" in proc.stdout


def _run_on_pty(args: list[str], env_extra: dict) -> tuple[int, str]:
    """Run ``python -m ramanid ARGS`` with stdout on a real pty; return (status, output)."""
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"TERM": "xterm-256color", **env_extra})
    proc = subprocess.Popen([sys.executable, "-m", "ramanid", *args], stdout=slave,
                            stderr=subprocess.PIPE, env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=90), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.timeout(180)
@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_red_banner_on_a_terminal_and_no_color_respected(older):
    path = str(older / "ammonium nitrate.csv")
    status, out = _run_on_pty(["identify", path], {})
    assert status == 3
    assert "\x1b[1;97;41m" in out and "DANGER" in out
    status, out = _run_on_pty(["identify", path], {"NO_COLOR": "1"})
    assert status == 3
    assert "\x1b[" not in out and "DANGER" in out


@pytest.mark.timeout(60)
def test_terminal_that_cannot_show_the_language_gets_plain_english(older):
    from ramanid.cli.identify import run_identification
    from ramanid.io import read

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    status = run_identification(read(older / "ammonium nitrate.csv"), {"lang": "ru"},
                                stdout=stream)
    text = raw.getvalue().decode("ascii")
    assert status == 3
    assert "DANGER: HIGH HAZARD" in text and "!!" in text and "?" * 5 not in text


# -- the device's calibration record applies to its files too (QA 10:28 item 3, 10:42) ----------
@pytest.mark.timeout(180)
def test_identify_applies_the_device_calibration_record(tmp_path, shared_data, capsys,
                                                        monkeypatch):
    from datetime import datetime, timedelta, timezone

    from ramanid.calibration import CalibrationRecord, save_record, steps

    monkeypatch.setenv("RAMANID_HOME", str(tmp_path / "home"))
    d = shared_data / "charisma" / "ICV_BW785"
    scan = str(d / "PST02_iRPlus785_Z020_100_1300ms.txt")  # device serial RUW in the file
    assert main(["identify", scan, "--json"]) == 0
    (before,) = _json_records(capsys.readouterr().out)
    assert before["calibration"]["state"] == "missing" and before["calibration"]["id"] is None

    steps.calibrate_wavelength("RUW", [d / "Ne_785nm_x20_50ms.txt"])
    rec = steps.calibrate_excitation("RUW", [d / "S0N02_iRPlus785_Z050_100_3200ms.txt"])
    assert main(["identify", scan, "--json"]) == 0
    (after,) = _json_records(capsys.readouterr().out)
    assert after["scan_id"] == before["scan_id"] and after["scan_id"]  # id of the file's data
    cal = after["calibration"]
    assert cal["id"] == rec.id and cal["applied"] is True and cal["state"] == "ok"
    assert after["scan"]["calibration_id"] == rec.id  # "valid" is true: it was applied
    assert after["scan"]["laser_nm"] == pytest.approx(rec.laser_nm)
    assert not [w for w in after["warnings"] if w["code"] == "calibration"]
    assert after["candidates"][0]["name"] == before["candidates"][0]["name"] == "Polystyrene"
    main(["identify", scan])
    text = capsys.readouterr().out
    assert rec.id in text and "none on record" not in text

    # a record that FAILED its checks is not applied, and the verdict says so
    bad = CalibrationRecord.from_dict({**rec.to_dict(), "passed": False, "id": "x-failed",
                                       "created": (datetime.now(timezone.utc)
                                                   + timedelta(seconds=1)).isoformat()})
    save_record(bad)
    assert main(["identify", scan, "--json"]) == 0
    (failed,) = _json_records(capsys.readouterr().out)
    assert failed["scan"].get("calibration_id") is None
    assert failed["calibration"]["state"] == "failed" and failed["calibration"]["applied"] is False
    assert [w["state"] for w in failed["warnings"] if w["code"] == "calibration"] == ["failed"]
