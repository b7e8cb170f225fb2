"""The HDF5 scan archive: round trips, chunked reading, appending, atomicity, damage, packing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ramanid.errors import InputError
from ramanid.io.archive import (
    ArchiveReader,
    ArchiveWriter,
    compression_of,
    is_archive,
    read_archive,
    scan_ids,
    write_archive,
)
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(60)


def _batch(n: int, points: int = 300, seed: int = 0, start: float = 300.0) -> SpectrumBatch:
    rng = np.random.default_rng(seed)
    axis = np.linspace(start, start + 1500.0, points)
    meta = [{"source": f"scan{seed}_{i}.csv", "device_serial": f"WP-{i % 3}",
             "laser_nm": 785.0, "integration_ms": 100.0 + i, "averages": i % 4 + 1,
             "timestamp": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
             "name": None if i % 2 else f"sample {i}", "simulated": i % 3 == 0}
            for i in range(n)]
    return SpectrumBatch(axis, rng.normal(1000.0, 50.0, (n, points)), meta)


def test_round_trip_values_metadata_and_ids(tmp_path: Path) -> None:
    b1, b2 = _batch(7, seed=1), _batch(5, points=200, seed=2, start=250.0)
    path = tmp_path / "a.h5"
    assert write_archive(path, [b1, b2]) == 12
    assert is_archive(path)
    out = read_archive(path)
    assert [len(b) for b in out] == [7, 5]
    np.testing.assert_array_equal(out[0].intensity, b1.intensity)
    np.testing.assert_array_equal(out[1].axis, b2.axis)
    # ids are the content ids of the original scans, sources say archive#index
    assert [m["scan_id"] for m in out[0].meta] == list(scan_ids(b1))
    assert out[1].meta[0]["source"] == f"{path}#7"
    assert out[0].meta[3]["origin"] == "scan1_3.csv"
    assert out[0].meta[3]["averages"] == 4 and out[0].meta[3]["laser_nm"] == 785.0
    assert out[0].meta[1]["name"] is None and out[0].meta[2]["name"] == "sample 2"
    assert out[0].meta[3]["simulated"] is True and out[0].meta[4]["simulated"] is False
    # a scan's id does not depend on where it is read from
    assert list(scan_ids(out[0])) == list(scan_ids(b1))


def test_scan_id_depends_on_content_and_identity_metadata() -> None:
    b = _batch(3)
    ids = scan_ids(b)
    assert len(set(ids)) == 3
    changed = b.with_intensity(b.intensity.copy())
    changed.intensity[1, 10] += 1e-9
    assert scan_ids(changed)[1] != ids[1] and scan_ids(changed)[0] == ids[0]
    other_time = SpectrumBatch(b.axis, b.intensity, [{**m, "timestamp": "x"} for m in b.meta])
    assert scan_ids(other_time)[0] != ids[0]
    renamed = SpectrumBatch(b.axis, b.intensity, [{**m, "source": "elsewhere"} for m in b.meta])
    assert list(scan_ids(renamed)) == list(ids)


def test_iter_chunks_bounded_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    write_archive(path, [_batch(10, seed=1), _batch(6, points=120, seed=2)], dtype="float32")
    with ArchiveReader(path) as r:
        assert len(r) == 16 and r.group_sizes == [10, 6]
        chunks = list(r.iter_chunks(4))
        assert [len(c) for c in chunks] == [4, 4, 2, 4, 2]   # never across an axis group
        sources = [m["source"] for c in chunks for m in c.meta]
        assert sources == [f"{path}#{i}" for i in range(16)]
        tail = list(r.iter_chunks(4, start=9))
        assert [m["source"].split("#")[1] for c in tail for m in c.meta] == \
            [str(i) for i in range(9, 16)]
        assert chunks[0].intensity.dtype == np.float32     # as stored (no float64 copy)
    full = _batch(10, seed=1)
    np.testing.assert_allclose(chunks[0].intensity, full.intensity[:4], rtol=1e-6)


def test_append_keeps_indices_and_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    write_archive(path, [_batch(4, seed=1)])
    before = read_archive(path)[0]
    with ArchiveWriter(path, "a") as w:
        w.append(_batch(3, seed=2))            # same axis: joins the last group
        w.append(_batch(2, points=100, seed=3))
    with ArchiveReader(path) as r:
        assert len(r) == 9 and r.group_sizes == [7, 2]
        first = next(r.iter_chunks(4))
    assert [m["scan_id"] for m in first.meta] == [m["scan_id"] for m in before.meta]
    # an error inside the writer leaves the archive exactly as it was
    data = path.read_bytes()
    with pytest.raises(RuntimeError), ArchiveWriter(path, "a") as w:
        w.append(_batch(50, seed=4))
        raise RuntimeError("crash while writing")
    assert path.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_integer_storage_is_lossless_or_refused(tmp_path: Path) -> None:
    b = _batch(5)
    counts = b.with_intensity(np.rint(b.intensity))
    write_archive(tmp_path / "c.h5", [counts], dtype="uint16")
    np.testing.assert_array_equal(read_archive(tmp_path / "c.h5")[0].intensity, counts.intensity)
    from ramanid.errors import UsageError

    with pytest.raises(UsageError, match="whole counts"):
        write_archive(tmp_path / "d.h5", [b], dtype="uint16")
    assert not (tmp_path / "d.h5").exists()


def test_not_archives_and_damaged_archives(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("1,2\n3,4\n")
    other_h5 = tmp_path / "other.h5"
    with h5py.File(other_h5, "w") as f:
        f["x"] = np.arange(3)
    assert not is_archive(csv) and not is_archive(other_h5)
    assert not is_archive(tmp_path / "missing.h5") and not is_archive(tmp_path)
    with pytest.raises(InputError, match="not a ramanid scan archive"):
        ArchiveReader(other_h5)
    path = tmp_path / "a.h5"
    write_archive(path, [_batch(2000, seed=1)])
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError) as err:
        read_archive(damaged)
    assert "damaged.h5" in str(err.value)


def test_default_library_file_is_not_an_archive() -> None:
    from ramanid.library import default_library_path

    assert not is_archive(default_library_path())


@pytest.mark.timeout(120)
def test_pack_real_files_matches_direct_reads(tmp_path: Path, shared_data: Path) -> None:
    from ramanid.io import read_batches

    src = shared_data / "enlighten" / "library-older"
    out = tmp_path / "older.h5"
    proc = subprocess.run([sys.executable, "-m", "ramanid", "archive", "pack", str(src),
                           "--out", str(out)], capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p for p in src.iterdir() if p.suffix == ".csv")
    direct = [b for f in files for b in read_batches(f)]
    packed = read_archive(out)
    rows = [(m, b.axis, b.intensity[i]) for b in packed for i, m in enumerate(b.meta)]
    assert len(rows) == sum(len(b) for b in direct) == len(files)
    for d, (meta, axis, values) in zip(direct, rows, strict=True):
        assert meta["origin"] == d.meta[0]["source"]
        assert meta["scan_id"] == scan_ids(d)[0]
        np.testing.assert_array_equal(axis, d.axis)
        np.testing.assert_array_equal(values, d.intensity[0])
    info = subprocess.run([sys.executable, "-m", "ramanid", "archive", "info", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert f"{len(files)} scans" in info.stdout


def _pack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ramanid", "archive", "pack", *args],
                          capture_output=True, text=True, timeout=100)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("compression", ["none", "lzf", "lz4"])
def test_pack_compression_choice_reads_back_the_same(tmp_path: Path, shared_data: Path,
                                                    compression: str) -> None:
    import h5py

    src = shared_data / "enlighten" / "library-older"
    gz, other = tmp_path / "gzip.h5", tmp_path / f"{compression}.h5"
    assert _pack(str(src), "--out", str(gz)).returncode == 0
    proc = _pack(str(src), "--out", str(other), "--compression", compression)
    assert proc.returncode == 0, proc.stderr
    filters = []
    with h5py.File(other, "r") as f:
        f.visititems(lambda name, obj: filters.append(compression_of(obj))
                     if isinstance(obj, h5py.Dataset) and name.endswith("intensity") else None)
    assert filters and set(filters) == {compression}
    info = subprocess.run([sys.executable, "-m", "ramanid", "archive", "info", str(other)],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and f"({compression})" in info.stdout
    a, b = read_archive(gz), read_archive(other)
    assert [m["scan_id"] for x in a for m in x.meta] == [m["scan_id"] for x in b for m in x.meta]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.intensity, y.intensity)
    bad = _pack(str(src), "--out", str(tmp_path / "x.h5"), "--compression", "zip")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.timeout(150)
def test_pack_append_adds_only_new_scans(tmp_path: Path, shared_data: Path) -> None:
    import shutil

    files = sorted((shared_data / "enlighten" / "library-older").glob("*.csv"))
    src = tmp_path / "scans"
    src.mkdir()
    for f in files[:3]:
        shutil.copy(f, src / f.name)
    out = tmp_path / "a.h5"
    assert _pack(str(src), "--out", str(out)).returncode == 0
    again = _pack(str(src), "--out", str(out), "--append")      # nothing new this month
    assert again.returncode == 0, again.stderr
    assert "packed 0 new scans" in again.stdout and "3 already in the archive" in again.stdout
    for f in files[3:5]:                                         # two new scans arrive
        shutil.copy(f, src / f.name)
    (src / "copy").mkdir()
    shutil.copy(files[0], src / "copy" / files[0].name)          # and a copy of an old one
    more = _pack(str(src), "--out", str(out), "--append")
    assert more.returncode == 0, more.stderr
    assert "packed 2 new scans" in more.stdout
    ids = [m["scan_id"] for b in read_archive(out) for m in b.meta]
    assert len(ids) == len(set(ids)) == 5
    assert sorted(m["origin"].rsplit("/", 1)[-1] for b in read_archive(out)
                  for m in b.meta) == sorted(f.name for f in files[:5])


@pytest.mark.timeout(120)
def test_pack_refuses_non_raman_files_and_empty_folders(tmp_path: Path,
                                                         shared_data: Path) -> None:
    import shutil

    src = tmp_path / "mixed"
    src.mkdir()
    raman = sorted((shared_data / "enlighten" / "library-older").glob("*.csv"))[0]
    shutil.copy(raman, src / raman.name)
    shutil.copy(shared_data / "formats" / "spc" / "test_data" / "NMR_FID.SPC", src / "nmr.spc")
    out = tmp_path / "m.h5"
    proc = _pack(str(src), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "nmr.spc" in proc.stderr and "not a Raman spectrum" in proc.stderr
    packed = read_archive(out)
    assert sum(len(b) for b in packed) == 1
    assert packed[0].meta[0]["origin"].endswith(raman.name)
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _pack(str(empty), "--out", str(tmp_path / "e.h5"))
    assert none.returncode == 1 and "no scan files" in none.stderr
    assert not (tmp_path / "e.h5").exists()


def test_metadata_types_survive_the_archive(tmp_path: Path) -> None:
    """Booleans, ints, floats, lists and dicts read back as what was written (QA 10:32)."""
    axis = np.linspace(300.0, 1800.0, 50)
    meta = [{"source": f"s{i}", "simulated": i % 2 == 0, "averages": i + 1, "laser_nm": 785.0,
             "wavecal_coeffs": [756.08, 0.1774, -4.1e-05 * i] if i != 1 else None,
             "settings": {"gain": "high", "n": i}} for i in range(3)]
    out = tmp_path / "t.h5"
    with ArchiveWriter(out) as w:
        w.append(SpectrumBatch(axis, np.ones((2, 50)), meta[:2]))
        w.flush()
        w.append(SpectrumBatch(axis, np.ones((1, 50)) * 2, meta[2:]))   # same group, appended
    back = [m for b in read_archive(out) for m in b.meta]
    assert len(read_archive(out)) == 1
    for want, got in zip(meta, back, strict=True):
        for key in ("simulated", "averages", "laser_nm", "wavecal_coeffs", "settings"):
            assert got[key] == want[key], key
            assert type(got[key]) is type(want[key]), key
    with ArchiveReader(out) as r:                     # the column-wise path used by batch
        col = r.read_block(0, 3).meta_arrays()["wavecal_coeffs"]
    assert col.tolist() == [m["wavecal_coeffs"] for m in meta]


def test_text_columns_are_fixed_length_and_longer_text_starts_a_group(tmp_path: Path) -> None:
    """Text metadata is stored as fixed-length UTF-8 (fast to read); text longer than a
    group's column holds goes into a new group, and every value reads back as written."""
    axis = np.linspace(300.0, 1800.0, 40)
    short = [{"source": f"s{i}", "name": f"é {i}", "operator": None} for i in range(3)]
    long = [{"source": f"l{i}", "name": "ü" * 40 + str(i), "operator": "x"} for i in range(2)]
    out = tmp_path / "t.h5"
    with ArchiveWriter(out) as w:
        w.append(SpectrumBatch(axis, np.ones((3, 40)), short))
        w.flush()
        w.append(SpectrumBatch(axis, np.ones((2, 40)), long))
    with ArchiveReader(out) as r:
        assert r.group_sizes == [3, 2]
        names = [m["name"] for b in r.iter_chunks(10) for m in b.meta]
        ops = [m["operator"] for b in r.iter_chunks(10) for m in b.meta]
    assert names == [m["name"] for m in short + long]
    assert ops == [None, None, None, "x", "x"]
    with h5py.File(out, "r") as f:
        ds = f["scans/g000000/meta/name"]
        assert h5py.check_string_dtype(ds.dtype).length == 16
        assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8"


def test_archives_with_variable_length_text_are_still_read(tmp_path: Path) -> None:
    """Archives written before fixed-length text (variable-length UTF-8 columns) read the
    same, and appending to them keeps their group."""
    b = _batch(6)
    out = tmp_path / "old.h5"
    write_archive(out, [b])
    with h5py.File(out, "r+") as f:          # rewrite the text columns as older writers did
        meta = f["scans/g000000/meta"]
        for key in list(meta):
            ds = meta[key]
            if h5py.check_string_dtype(ds.dtype) is None:
                continue
            values = ds.asstr()[()].tolist()
            attrs = dict(ds.attrs)
            del meta[key]
            new = meta.create_dataset(key, data=np.array(values, dtype=object),
                                      dtype=h5py.string_dtype("utf-8"), maxshape=(None,),
                                      chunks=(16384,))
            new.attrs.update(attrs)
    with ArchiveWriter(out, "a") as w:
        w.append(_batch(2, seed=5))
    back = [m for batch in read_archive(out) for m in batch.meta]
    assert len(back) == 8 and len(read_archive(out)) == 1
    assert [m["name"] for m in back[:6]] == [m["name"] for m in b.meta]
    assert back[6]["origin"] == "scan5_0.csv" and back[3]["origin"] == "scan0_3.csv"


_NO_PLUGIN = ("import sys; sys.modules['hdf5plugin'] = None\n"   # as if it were not installed
              "from ramanid.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.timeout(120)
def test_lz4_archive_without_its_plugin_is_a_one_line_error(tmp_path: Path) -> None:
    """An lz4 archive read where hdf5plugin is missing: a clear error naming the fix, for
    reading, appending and packing alike; with the plugin the same archive reads back."""
    path = tmp_path / "lz4.h5"
    b = _batch(20)
    write_archive(path, [b], compression="lz4")
    np.testing.assert_array_equal(read_archive(path)[0].intensity, b.intensity)
    src = tmp_path / "scans"
    src.mkdir()
    (src / "one.csv").write_text("shift,intensity\n" + "\n".join(
        f"{x},{y}" for x, y in zip(b.axis, b.intensity[0], strict=True)))
    for args in (["archive", "info", str(path)],
                 ["archive", "pack", str(src), "--out", str(path), "--append"],
                 ["archive", "pack", str(src), "--out", str(tmp_path / "new.h5"),
                  "--compression", "lz4"],
                 ["batch", str(path), "--out", str(tmp_path / "r.jsonl")]):
        proc = subprocess.run([sys.executable, "-c", _NO_PLUGIN, *args], capture_output=True,
                              text=True, timeout=100)
        err = proc.stderr.strip()
        assert proc.returncode in (1, 2), (args, proc.returncode, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert "hdf5plugin" in err and "ramanid[lz4]" in err, err
    assert not (tmp_path / "new.h5").exists() and not (tmp_path / "r.jsonl").exists()
    assert len(read_archive(path)[0]) == 20          # the failed append left it as it was


def _resident_bytes(path: Path) -> int | None:
    """Bytes of ``path`` in the page cache (util-linux ``fincore``), None where unavailable."""
    import shutil as sh

    if sh.which("fincore") is None:
        return None
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None


@pytest.mark.skipif(not hasattr(__import__("os"), "posix_fadvise"), reason="no posix_fadvise")
def test_prefetch_reads_a_chunk_range_into_memory_ahead(tmp_path: Path) -> None:
    """ArchiveReader.prefetch asks the OS to read the byte ranges of scans start..stop (the
    batch job calls it as it hands out a chunk); reading is unchanged, bad ranges are ignored."""
    import os

    path = tmp_path / "a.h5"
    b = _batch(4000, points=400, seed=4)
    write_archive(path, [b], dtype="float32", compression=None)   # ~6.4 MB of intensities
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # out of the page cache
    finally:
        os.close(fd)
    before = _resident_bytes(path)
    with ArchiveReader(path) as r:
        for bad in ((10, 10), (3990, 9000), (-5, 0)):
            r.prefetch(*bad)                                      # no error
        r.prefetch(1000, 3000)
        if before is not None and before < 1 << 20:
            deadline = time.monotonic() + 10
            while (_resident_bytes(path) or 0) < before + 2_000_000 \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (_resident_bytes(path) or 0) >= before + 2_000_000   # 2000 x 400 x 4 B
        np.testing.assert_array_equal(r.read_block(1000, 3000).intensity,
                                      b.intensity[1000:3000].astype(np.float32))
    r.prefetch(0, 10)                                             # closed: ignored
