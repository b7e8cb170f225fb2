"""``ramanid batch``: directory and archive inputs, failures, kill -9 + resume, Dask, changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ramanid import batch_io
from ramanid.batch import BatchOptions, run_batch
from ramanid.cli import main as cli_main
from ramanid.errors import UsageError
from ramanid.io import read_batches
from ramanid.io.archive import scan_ids, write_archive
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(120)

# Columns that describe the run rather than the scan (none at present; kept explicit).
COMPARE = [c for c in batch_io.COLUMN_NAMES]


def _rows(path: Path) -> list[dict]:
    return list(batch_io.iter_results(path))


def _older(shared_data: Path) -> Path:
    return shared_data / "enlighten" / "library-older"


def _synthetic_archive(path: Path, shared_data: Path, n: int, seed: int = 0) -> None:
    """Scans made from the real measured spectra of library-older (noise, scale, offset)."""
    rng = np.random.default_rng(seed)
    files = sorted(_older(shared_data).glob("*.csv"))
    axis = np.linspace(420.0, 2300.0, 900)
    real = np.array([np.interp(axis, b.axis, b.intensity[0])
                     for f in files for b in read_batches(f)])
    pick = rng.integers(0, len(real), n)
    values = real[pick] * rng.uniform(0.5, 2.0, (n, 1)) + rng.uniform(100, 500, (n, 1))
    values += rng.normal(0.0, 0.01, values.shape) * values.max(axis=1, keepdims=True)
    meta = [{"source": f"synthetic/{files[p].stem}/{i}", "device_serial": "SIM-1",
             "laser_nm": 785.0, "timestamp": f"2025-03-01T10:00:{i % 60:02d}Z",
             "name": files[p].stem} for i, p in enumerate(pick)]
    write_archive(path, [SpectrumBatch(axis, values, meta)], dtype="float32")


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Real files, a corrupt file in the middle, a non-scan file, and an archive in a subfolder."""
    d = tmp_path_factory.mktemp("scans")
    files = sorted(_older(shared_data).glob("*.csv"))
    for f in files[:4]:
        shutil.copy(f, d / f.name)
    (d / "c_corrupt.csv").write_bytes(bytes(range(256)) * 4)   # sorts among the real files
    (d / "README.md").write_text("not a scan")
    sub = d / "zz_more"
    sub.mkdir()
    for f in files[4:]:
        shutil.copy(f, sub / f.name)
    _synthetic_archive(sub / "older.h5", shared_data, 40, seed=3)
    return d


def test_directory_with_archive_and_corrupt_file(scan_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "res.jsonl"
    status = cli_main(["batch", str(scan_dir), "--out", str(out), "--workers", "1",
                       "--chunk-size", "3"])
    printed = capsys.readouterr().out
    rows = _rows(out)
    real_files = sorted(p for p in scan_dir.rglob("*.csv") if p.name != "c_corrupt.csv")
    assert len(rows) == len(real_files) + 1 + 40
    bad = [r for r in rows if r["status"] == "error"]
    assert [Path(r["source"]).name for r in bad] == ["c_corrupt.csv"]
    assert bad[0]["error"] and bad[0]["verdict"] is None
    # file order is kept: the corrupt file sits between the files that sort around it
    names = [Path(r["source"].split("#")[0]).name for r in rows]
    assert names.index("c_corrupt.csv") == 3 and names[0] == sorted(
        p.name for p in scan_dir.glob("*.csv"))[0]
    assert sum(1 for r in rows if "#" in r["source"]) == 40
    # each file row carries its content id; archive rows carry their stored ids
    direct = read_batches(scan_dir / names[0])[0]
    assert rows[0]["scan_id"] == scan_ids(direct)[0]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["verdict"] in ("match", "mixture", "no_match", "inconclusive") for r in ok)
    assert all(r["library_sha256"] and r["recipe"] and r["candidates"] for r in ok)
    ammonium = [r for r in ok if "ammonium" in r["source"].lower()]
    assert ammonium and ammonium[0]["hazard_level"] != "none"
    # summary counts and exit status 3 (hazard)
    hazards = sum(1 for r in ok if r["hazard_level"] != "none")
    assert status == 3 and hazards > 0
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["scans"] == len(rows) and summary["errors"] == 1
    assert summary["hazards"] == hazards
    assert sum(summary["verdicts"].values()) == len(ok)
    assert f"scans: {len(rows)}" in printed and "HAZARD" in printed
    assert not Path(str(out) + ".parts").exists()


def test_formats_hold_the_same_rows(scan_dir: Path, tmp_path: Path) -> None:
    tables = {}
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"res.{fmt}"
        run_batch([scan_dir], BatchOptions(out=str(out), workers=1, chunk_size=5))
        tables[fmt] = _rows(out)
    assert tables["parquet"] == tables["jsonl"]
    for a, b in zip(tables["csv"], tables["jsonl"], strict=True):
        for k in COMPARE:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-12)
            else:
                assert a[k] == b[k], k


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_kill_9_then_resume_gives_every_scan_once(tmp_path: Path, shared_data: Path,
                                                  fmt: str) -> None:
    """Parquet jobs checkpoint Arrow IPC parts and assemble the result while they run: after
    kill -9 the half-assembled file goes with the checkpoints, and the resumed job's result
    equals an uninterrupted run's."""
    archive = tmp_path / "scans.h5"
    n, chunk = 5000, 25
    _synthetic_archive(archive, shared_data, n, seed=5)
    out = tmp_path / f"res.{fmt}"
    cmd = [sys.executable, "-m", "ramanid", "batch", str(archive), "--out", str(out),
           "--chunk-size", str(chunk), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    parts = Path(str(out) + ".parts")
    part_glob = f"part-*.{batch_io.part_format(fmt)}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(parts.glob(part_glob))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)       # the job and its worker processes
    proc.wait(timeout=30)
    done_before = len(list(parts.glob(part_glob)))
    assert 0 < done_before < n // chunk and not out.exists()
    assert list(tmp_path.glob(".*")) == []     # nothing half-written beside the result
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=150)
    assert resumed.returncode in (0, 3), resumed.stderr
    rows = _rows(out)
    assert [r["source"] for r in rows] == [f"{archive}#{i}" for i in range(n)]
    assert len({r["scan_id"] for r in rows}) == n
    # identical to an uninterrupted run
    clean = tmp_path / f"clean.{fmt}"
    run_batch([archive], BatchOptions(out=str(clean), workers=1, chunk_size=chunk))
    assert _rows(clean) == rows
    assert not parts.exists()


@pytest.mark.timeout(180)
def test_dask_local_cluster_gives_identical_results(tmp_path: Path, shared_data: Path) -> None:
    distributed = pytest.importorskip("distributed")
    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 300, seed=7)
    local, dask, remote, threads = (tmp_path / f"{k}.parquet"
                                    for k in ("local", "dask", "tcp", "threads"))
    s1 = run_batch([archive], BatchOptions(out=str(local), workers=2, chunk_size=64))
    run_batch([archive], BatchOptions(out=str(threads), workers=2, chunk_size=64,
                                      executor="threads"))
    assert _rows(threads) == _rows(local)
    s2 = run_batch([archive], BatchOptions(out=str(dask), workers=2, chunk_size=64,
                                           scheduler="local", dask_processes=False))
    assert _rows(local) == _rows(dask)
    assert s1.to_dict() == s2.to_dict() and s1.scans == 300
    # an existing cluster reached by its tcp:// address
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        s3 = run_batch([archive], BatchOptions(out=str(remote), chunk_size=64,
                                               scheduler=cluster.scheduler_address))
    assert _rows(remote) == _rows(local) and s3.to_dict() == s1.to_dict()


def test_scheduler_without_dask_is_a_clear_error(tmp_path: Path, shared_data: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 10)
    monkeypatch.setitem(sys.modules, "distributed", None)   # import fails as if not installed
    with pytest.raises(UsageError, match=r"ramanid\[dask\]"):
        run_batch([archive], BatchOptions(out=str(tmp_path / "r.csv"), scheduler="local"))


@pytest.mark.timeout(150)
def test_progress_bar_only_on_a_terminal(tmp_path: Path, shared_data: Path) -> None:
    import pty

    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 200)
    cmd = [sys.executable, "-m", "ramanid", "batch", str(archive), "--chunk-size", "50",
           "--workers", "1"]
    quiet = subprocess.run([*cmd, "--out", str(tmp_path / "a.csv")], capture_output=True,
                           text=True, timeout=120)
    assert quiet.returncode in (0, 3) and quiet.stderr == ""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "b.csv")], stdout=subprocess.DEVNULL,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:          # the terminal closes when the job exits
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode in (0, 3)
    assert "200/200" in shown and "scan/s" in shown


def test_jobs_that_cannot_run_stop_with_a_clear_status(tmp_path: Path, shared_data: Path) -> None:
    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 20)
    out = tmp_path / "res.jsonl"
    parts = Path(str(out) + ".parts")
    parts.mkdir()
    (parts / "job.json").write_text(json.dumps({"fingerprint": {"chunk_size": 7}}))
    with pytest.raises(UsageError, match="other inputs or options"):
        run_batch([archive], BatchOptions(out=str(out), workers=1, chunk_size=5, resume=True))
    assert cli_main(["batch", str(tmp_path / "missing"), "--out", str(out)]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("no scans here")
    assert cli_main(["batch", str(empty), "--out", str(tmp_path / "e.csv")]) == 1
    assert not (tmp_path / "e.csv").exists() and not (tmp_path / "e.csv.parts").exists()
    bad_library = tmp_path / "bad.h5"
    bad_library.write_bytes(b"not a library")
    for option in ("--library", "--since-library"):
        assert cli_main(["batch", str(archive), "--out", str(tmp_path / "l.csv"), option,
                         str(bad_library), "--workers", "2"]) == 1
    assert not (tmp_path / "l.csv").exists()


@pytest.mark.timeout(150)
def test_since_library_reports_scans_a_new_entry_matches(scan_dir: Path, tmp_path: Path) -> None:
    from ramanid.library import load_library

    new = load_library()
    old = new.select(lambda e: "ammonium nitrate" not in e.name.lower())
    assert len(old.entries) < len(new.entries)
    old_path, new_path = tmp_path / "old.h5", tmp_path / "new.h5"
    old.save(old_path)
    new.save(new_path)
    out = tmp_path / "res.csv"
    status = cli_main(["batch", str(scan_dir), "--out", str(out), "--workers", "2",
                       "--library", str(new_path), "--since-library", str(old_path)])
    assert status == 3
    changes = _rows(tmp_path / "res.changes.csv")
    results = {r["scan_id"]: r for r in _rows(out)}
    ammonium = [c for c in changes if "ammonium" in c["source"].lower()]
    assert ammonium and ammonium[0]["change"] == "new_hazard"
    assert ammonium[0]["new_top_name"].lower().startswith("ammonium nitrate")
    # new hazard hits come first; every reported scan really changed
    kinds = [c["change"] for c in changes]
    assert kinds == sorted(kinds, key=["new_hazard", "hazard_changed", "hazard_cleared",
                                       "verdict_changed", "identity_changed"].index)
    for c in changes:
        assert (c["old_verdict"], c["old_top_name"], c["old_hazard_level"]) != (
            c["new_verdict"], c["new_top_name"], c["new_hazard_level"])
        assert results[c["scan_id"]]["top_name"] == c["new_top_name"]
    untouched = [r for r in results.values() if r["status"] == "ok"
                 and "ammonium" not in (r["top_name"] or "").lower()
                 and r["hazard_level"] == "none" and r["verdict"] == "match"]
    assert untouched and not {r["scan_id"] for r in untouched} & {c["scan_id"] for c in changes}


def test_damaged_part_of_an_archive_is_recorded_and_the_job_goes_on(
        tmp_path: Path, shared_data: Path) -> None:
    import h5py

    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 1000, seed=9)
    with h5py.File(archive, "r") as f:
        ds = f["scans/g000000/intensity"]
        rows_per_chunk = ds.chunks[0]
        info = ds.id.get_chunk_info(1)               # the second stored chunk of intensities
    raw = bytearray(archive.read_bytes())
    mid = info.byte_offset + info.size // 3
    raw[mid:mid + 64] = bytes(64)                    # zeroed bytes inside compressed data
    archive.write_bytes(bytes(raw))
    out = tmp_path / "res.jsonl"
    summary = run_batch([archive], BatchOptions(out=str(out), workers=1, chunk_size=100))
    rows = _rows(out)
    assert [r["source"] for r in rows] == [f"{archive}#{i}" for i in range(1000)]
    bad = [i for i, r in enumerate(rows) if r["status"] == "error"]
    assert bad and summary.errors == len(bad)
    # only the tasks touching the damaged chunk failed
    lo, hi = rows_per_chunk, 2 * rows_per_chunk
    assert min(bad) >= lo // 100 * 100 and max(bad) < (hi + 99) // 100 * 100
    assert all(r["verdict"] for i, r in enumerate(rows) if i not in set(bad))
    assert "damaged" in rows[bad[0]]["error"]


def _job_file(config: object, columns: object = None) -> str:
    cols = list(batch_io.COLUMN_NAMES) if columns is None else columns
    return json.dumps({"fingerprint": config.fingerprint(), "columns": cols})


def test_resume_refuses_checkpoints_with_other_columns(tmp_path: Path,
                                                       shared_data: Path) -> None:
    """Parts written by a ramanid with other result columns are never mixed into one file."""
    from ramanid.batch_job import JobConfig

    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 10)
    out = tmp_path / "res.jsonl"
    config = JobConfig(out=str(out.resolve()), fmt="jsonl", library=None, old_library=None,
                       chunk_size=20, inputs=(str(archive.resolve()),))
    config.parts_dir.mkdir()
    (config.parts_dir / "job.json").write_text(_job_file(config, list(batch_io.COLUMN_NAMES[:-2])))
    options = BatchOptions(out=str(out), workers=1, chunk_size=20, resume=True)
    with pytest.raises(UsageError, match="another version"):
        run_batch([archive], options)
    assert not out.exists()
    summary = run_batch([archive], BatchOptions(out=str(out), workers=1, chunk_size=20))
    assert summary.scans == 10 and len(_rows(out)) == 10


def test_resume_refuses_when_the_inputs_changed(tmp_path: Path, shared_data: Path) -> None:
    from ramanid.batch_job import JobConfig, Task
    from ramanid.batch_task import run_task

    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 30)
    out = tmp_path / "res.jsonl"
    options = BatchOptions(out=str(out), workers=1, chunk_size=20, resume=True)
    # the first chunk of an interrupted run, checkpointed as the job itself would
    config = JobConfig(out=str(out.resolve()), fmt="jsonl", library=None, old_library=None,
                       chunk_size=20, inputs=(str(archive.resolve()),))
    config.parts_dir.mkdir()
    (config.parts_dir / "job.json").write_text(_job_file(config))
    run_task(Task(0, "archive", str(archive.resolve()), 0, 20), config)
    # meanwhile more scans were appended: the last chunk boundary moves
    from ramanid.io.archive import ArchiveWriter, read_archive

    more = read_archive(archive)[0]
    late = [{**m, "scan_id": None, "name": f"late {i}"} for i, m in enumerate(more.meta[:15])]
    with ArchiveWriter(archive, "a", dtype="float32") as w:
        w.append(SpectrumBatch(more.axis, more.intensity[:15], late))
    from ramanid.io.archive import ArchiveReader

    with ArchiveReader(archive) as reader:
        assert reader.group_sizes == [45]           # the late scans joined the last group
    summary = run_batch([archive], options)     # chunk 0 (0..20) is unchanged: reused
    assert summary.scans == 45 and len(_rows(out)) == 45
    # a checkpoint whose chunk now covers other scans is refused
    config.parts_dir.mkdir()
    (config.parts_dir / "job.json").write_text(_job_file(config))
    run_task(Task(1, "archive", str(archive.resolve()), 20, 30), config)   # planned 20..40 now
    with pytest.raises(UsageError, match="inputs changed"):
        run_batch([archive], options)


def test_directory_symlink_loop_is_walked_once(tmp_path: Path, shared_data: Path) -> None:
    from ramanid.batch import walk_files

    d = tmp_path / "scans"
    (d / "sub").mkdir(parents=True)
    src = sorted(_older(shared_data).glob("*.csv"))[:2]
    shutil.copy(src[0], d / src[0].name)
    shutil.copy(src[1], d / "sub" / src[1].name)
    (d / "sub" / "loop").symlink_to(d, target_is_directory=True)
    files = [p.name for p in walk_files(d)]
    assert sorted(files) == sorted(p.name for p in src)


def test_rows_carry_the_fields_of_identify_json(tmp_path: Path, shared_data: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    files = sorted(_older(shared_data).glob("*.csv"))
    assert cli_main(["identify", "--json", *map(str, files)]) in (0, 3)
    ident = {}
    for line in capsys.readouterr().out.splitlines():
        rec = json.loads(line)
        ident[Path(rec["source"]).name] = rec
    out = tmp_path / "res.jsonl"
    run_batch([_older(shared_data)], BatchOptions(out=str(out), workers=1))
    rows = {Path(r["source"]).name: r for r in _rows(out)}
    assert set(rows) == set(ident) == {f.name for f in files}
    for name, rec in ident.items():
        row = rows[name]
        assert row["verdict"] == rec["verdict"] and row["reason"] == rec["reason"], name
        assert row["hazard_level"] == rec["hazard"]["level"]
        assert row["hazard_substances"] == rec["hazard"]["substances"]
        assert [c["id"] for c in row["candidates"]] == [c["id"] for c in rec["candidates"]]
        assert row["top_score"] == pytest.approx(rec["candidates"][0]["score"], abs=2e-4)
        assert [c["id"] for c in row["components"]] == [c["id"] for c in rec["components"]]
        assert row["warnings"] == rec["warnings"] and row["calibration"] == rec["calibration"]
        assert row["library_sha256"] == rec["library"]["sha256"]
        assert row["recipe"] == rec["recipe"] and row["engine_version"] == rec["engine_version"]
        assert row["device_serial"] == rec["device_serial"]


def test_result_path_is_checked_before_any_work(tmp_path: Path, shared_data: Path) -> None:
    from ramanid.errors import InputError

    scan = sorted(_older(shared_data).glob("*.csv"))[0]
    with pytest.raises(UsageError, match="contradicts"):
        run_batch([scan], BatchOptions(out=str(tmp_path / "x.csv"), fmt="parquet", workers=1))
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        run_batch([scan], BatchOptions(out=str(tmp_path / "d"), fmt="csv", workers=1))
    with pytest.raises(InputError, match="folder does not exist"):
        run_batch([scan], BatchOptions(out=str(tmp_path / "no" / "r.csv"), workers=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]     # nothing written
    ok = run_batch([scan], BatchOptions(out=str(tmp_path / "r.out"), fmt="jsonl", workers=1))
    assert ok.scans == 1 and len(list(batch_io.iter_results(tmp_path / "r.out", "jsonl"))) == 1


@pytest.mark.timeout(150)
def test_simulated_scans_are_flagged_in_every_format(tmp_path: Path, shared_data: Path) -> None:
    """A scan saved from the simulator says so in a top-level boolean column (QA 10:38)."""
    env = {**os.environ, "RAMANID_HOME": str(tmp_path / "home")}
    sim = tmp_path / "sim.h5"
    done = subprocess.run([sys.executable, "-m", "ramanid", "scan", "--device",
                           "sim://wasatch?sample=lactose", "--save", str(sim)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    real = sorted(_older(shared_data).glob("*.csv"))[0]
    seen = {}
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"r.{fmt}"
        run_batch([sim, real], BatchOptions(out=str(out), workers=1))
        rows = _rows(out)
        seen[fmt] = [(Path(r["source"].split("#")[0]).name, r["simulated"]) for r in rows]
        assert all("simulated" not in (r["meta_extra"] or {}) for r in rows)
        assert [type(r["simulated"]) for r in rows if r["source"].startswith(str(sim))] == [bool]
    assert seen["parquet"] == seen["csv"] == seen["jsonl"]
    assert sorted(seen["jsonl"], key=str) == sorted([("sim.h5", True), (real.name, None)], key=str)


@pytest.mark.timeout(120)
def test_non_raman_file_in_a_folder_is_an_error_row(tmp_path, shared_data) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(shared_data / "enlighten" / "library-older" / "lactose.csv", folder / "a.csv")
    shutil.copy(shared_data / "formats" / "spc" / "test_data" / "NMR_FID.SPC", folder / "b.spc")
    out = tmp_path / "r.jsonl"
    run_batch([str(folder)], BatchOptions(out=str(out), workers=1))
    rows = {Path(r["source"]).name: r for r in batch_io.iter_results(out)}
    assert rows["a.csv"]["status"] == "ok"
    assert rows["b.spc"]["status"] == "error"
    assert "not a Raman spectrum" in rows["b.spc"]["error"]


def test_archive_of_a_calibrated_device_gives_the_rows_of_its_files(tmp_path: Path,
                                                                    shared_data: Path) -> None:
    """Archive blocks carry their metadata as columns; rows of a device with a calibration
    record still get it applied, as the same scans read from their files do."""
    d = shared_data / "charisma" / "ICV_BW785"
    home = tmp_path / "home"
    env = {**os.environ, "RAMANID_HOME": str(home)}

    def ramanid(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ramanid", *args], capture_output=True,
                              text=True, timeout=120, env=env)

    for kind, f in (("wavelength", "Ne_785nm_x20_50ms.txt"),
                    ("excitation", "S0N02_iRPlus785_Z050_100_3200ms.txt")):
        assert ramanid("calibrate", kind, "--device", "RUW", str(d / f)).returncode == 0
    scans = tmp_path / "scans"
    scans.mkdir()
    for f in ("PST02_iRPlus785_Z020_100_1300ms.txt", "PST02_iRPlus785_Z050_100_3200ms.txt"):
        shutil.copy(d / f, scans / f)
    archive = tmp_path / "scans.h5"
    assert ramanid("archive", "pack", str(scans), "--out", str(archive)).returncode == 0
    for src, out in ((archive, tmp_path / "a.jsonl"), (scans, tmp_path / "f.jsonl")):
        done = ramanid("batch", str(src), "--out", str(out), "--no-progress")
        assert done.returncode in (0, 3), done.stderr
    from_archive, from_files = _rows(tmp_path / "a.jsonl"), _rows(tmp_path / "f.jsonl")
    assert [r["calibration"]["applied"] for r in from_archive] == [True, True]
    skip = {"source", "origin", "format"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in from_archive] == \
        [{k: v for k, v in r.items() if k not in skip} for r in from_files]


def test_checkpoints_cut_short_are_redone_on_resume(tmp_path: Path, shared_data: Path) -> None:
    """Checkpoints are not fsync'd: after a power failure a part may be there but empty or
    short, or its summary unreadable. --resume must redo exactly those tasks."""
    from ramanid.batch_job import JobConfig, Task
    from ramanid.batch_task import checkpoint, part_paths, run_task

    archive = tmp_path / "scans.h5"
    _synthetic_archive(archive, shared_data, 60)
    clean = tmp_path / "clean.jsonl"
    want = run_batch([archive], BatchOptions(out=str(clean), workers=1, chunk_size=20))
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"res.{fmt}"
        config = JobConfig(out=str(out.resolve()), fmt=fmt, library=None, old_library=None,
                           chunk_size=20, inputs=(str(archive.resolve()),))
        config.parts_dir.mkdir()
        (config.parts_dir / "job.json").write_text(_job_file(config))
        for i in range(3):
            run_task(Task(i, "archive", str(archive.resolve()), 20 * i, 20 * i + 20), config)
        assert all(checkpoint(config, i) is not None for i in range(3))
        part0, _, _ = part_paths(config, 0)
        part0.write_bytes(part0.read_bytes()[:-7])           # cut short
        part_paths(config, 1)[1].write_text("")              # summary lost
        assert checkpoint(config, 0) is None and not part0.exists()
        assert checkpoint(config, 1) is None and checkpoint(config, 2) is not None
        summary = run_batch([archive], BatchOptions(out=str(out), workers=1, chunk_size=20,
                                                    resume=True))
        assert summary.to_dict() == want.to_dict()
        assert _rows(out) == _rows(clean)
