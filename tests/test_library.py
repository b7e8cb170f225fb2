"""Library file: build, load, integrity (tampering), signatures, changes, diff, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from ramanid import signing
from ramanid.errors import LibraryError, UsageError
from ramanid.io import read
from ramanid.library import (
    Library,
    LibrarySource,
    build_library,
    diff_libraries,
    library_from_batch,
    load_library,
)

pytestmark = pytest.mark.timeout(120)  # every test here does real file I/O

REPO = Path(__file__).resolve().parent.parent
ENL = REPO / "spectra_library" / "sources" / "enlighten" / "library"
CREATED = "2026-01-01T00:00:00Z"


def _src(name: str, **meta) -> LibrarySource:
    batch = read(ENL / f"{name}.csv")
    meta.setdefault("substance_class", "cutting agent")
    return LibrarySource(batch.axis, batch.intensity[0], name=name, **meta)


@pytest.fixture(scope="module")
def small_sources() -> list[LibrarySource]:
    return [_src("caffeine"), _src("lactose"), _src("polystyrene", substance_class="polymer"),
            _src("acetaminophen"), _src("sucrose")]


@pytest.fixture()
def env_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RAMANID_HOME", str(home))
    monkeypatch.delenv("RAMANID_LIBRARY", raising=False)
    return home


@pytest.fixture()
def lib_file(tmp_path, small_sources, env_home) -> Path:
    lib = build_library(small_sources, created=CREATED, name="test")
    return lib.save(tmp_path / "lib.h5")


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


def _offset_of(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    i = data.find(needle)
    assert i >= 0, needle
    return i


# -- in-memory construction -----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_build_in_memory_matrix_rows_follow_entries(small_sources):
    lib = build_library(small_sources, created=CREATED)
    assert [e.name for e in lib.entries] == sorted(e.name for e in lib.entries)
    assert lib.matrix.dtype == np.float32 and lib.matrix.shape == (5, lib.axis.size)
    assert lib.axis.dtype == np.float64
    # row i is the recipe's processing of entries[i]'s raw spectrum
    from ramanid.library import recipe_from_dict
    from ramanid.spectrum import SpectrumBatch

    recipe = recipe_from_dict(lib.recipe)
    for i, e in enumerate(lib.entries):
        X = recipe.process(SpectrumBatch.single(*lib.raw(e.id))).X[0]
        np.testing.assert_allclose(lib.matrix[i], X, atol=1e-6)
    # ids are content hashes: same input, same id; the order of sources does not matter
    again = build_library(list(reversed(small_sources)), created=CREATED)
    assert [e.id for e in again.entries] == [e.id for e in lib.entries]
    assert again.sha256 == lib.sha256


@pytest.mark.timeout(60)
def test_only_approved_entries_are_usable(small_sources):
    lib = build_library(small_sources[:2], created=CREATED, status="pending")
    assert lib.entries == [] and lib.matrix.shape[0] == 0 and len(lib.all_entries) == 2
    lib.approve("caffeine", by="Dr A")
    assert [e.name for e in lib.entries] == ["caffeine"]
    assert lib.entries[0].approved_by == "Dr A" and lib.entries[0].approved_at
    assert lib.matrix.shape[0] == 1


@pytest.mark.timeout(60)
def test_library_from_batch_and_select(small_sources):
    from ramanid.spectrum import SpectrumBatch

    ax = np.linspace(200, 2000, 1801)
    Y = np.stack([np.exp(-0.5 * ((ax - c) / 4) ** 2) + 0.01 for c in (600, 1000, 1400)])
    lib = library_from_batch(SpectrumBatch(ax, Y), ["a", "b", "c"], hazard_level="high",
                             substance_class="test", handling="careful")
    assert len(lib) == 3 and all(e.hazardous for e in lib.entries)
    sub = lib.select(lambda e: e.name != "b")
    assert [e.name for e in sub.entries] == ["a", "c"] and sub.matrix.shape[0] == 2
    np.testing.assert_array_equal(sub.matrix[1], lib.matrix[2])
    assert Library.from_batch is not None


def test_bad_metadata_is_refused(small_sources):
    s = small_sources[0]
    with pytest.raises(UsageError, match="hazard level"):
        build_library([LibrarySource(s.axis, s.values, name="x", hazard_level="deadly")])
    with pytest.raises(UsageError, match="provenance"):
        build_library([LibrarySource(s.axis, s.values, name="x", provenance_kind="guessed")])
    with pytest.raises(UsageError, match="unknown entry field"):
        build_library([LibrarySource(s.axis, s.values, name="x", colour="red")])


# -- file round trip and integrity ------------------------------------------------------------
@pytest.mark.timeout(60)
def test_save_load_round_trip(lib_file, small_sources):
    lib = load_library(lib_file)
    fresh = build_library(small_sources, created=CREATED, name="test")
    assert lib.sha256 == fresh.sha256
    assert lib.integrity_problems == [] and lib.signature_status == "unsigned"
    np.testing.assert_array_equal(lib.matrix, fresh.matrix)
    e = lib.entry("caffeine")
    _ax, v = lib.raw(e.id)
    np.testing.assert_array_equal(v, small_sources[0].values)
    assert lib.version == "0.1.0" and lib.created == CREATED
    assert lib.changelog[0]["action"] == "build"


@pytest.mark.timeout(60)
def test_one_byte_in_a_spectrum_is_refused(lib_file):
    lib = load_library(lib_file)
    eid = lib.entry("lactose").id
    with h5py.File(lib_file, "r") as f:
        offset = f[f"entries/{eid}/raw_values"].id.get_offset()
        n = f[f"entries/{eid}/raw_values"].size
    # h5py reports the offset from the file start (user block included): check it
    stored = np.frombuffer(lib_file.read_bytes()[offset:offset + 8 * n], "<f8")
    np.testing.assert_array_equal(stored, lib.raw(eid)[1])
    _flip(lib_file, offset + 8 * 700 + 3)
    with pytest.raises(LibraryError, match="altered"):
        load_library(lib_file)
    forensic = load_library(lib_file, allow_tampered=True)
    assert any("lactose" in p for p in forensic.integrity_problems)
    assert any("file hash" in p for p in forensic.integrity_problems)


@pytest.mark.timeout(60)
def test_one_byte_in_metadata_is_refused(lib_file):
    lib = load_library(lib_file)
    assert lib.entry("sucrose").hazard_level == "none"
    off = _offset_of(lib_file, b'"hazard_level":"none","id":"' + lib.entry("sucrose").id.encode())
    _flip(lib_file, off + len('"hazard_level":"n'))  # "none" -> "nnne"-like change
    with pytest.raises(LibraryError, match="altered"):
        load_library(lib_file)
    forensic = load_library(lib_file, allow_tampered=True)
    assert forensic.entry("sucrose").hazard_level != "none"
    assert any("sucrose" in p for p in forensic.integrity_problems)


@pytest.mark.timeout(60)
def test_any_byte_of_the_file_is_covered(lib_file):
    """Bytes outside any dataset or attribute (HDF5 structure, padding, header) are covered too."""
    size = lib_file.stat().st_size
    original = lib_file.read_bytes()
    for offset in (3, 200, 520, 1000, size // 3, size - 5):
        lib_file.write_bytes(original)
        _flip(lib_file, offset)
        with pytest.raises(LibraryError):
            load_library(lib_file)
    lib_file.write_bytes(original)
    assert load_library(lib_file).integrity_problems == []


def test_not_a_library_and_missing_file(tmp_path):
    with pytest.raises(LibraryError, match="not found"):
        load_library(tmp_path / "nope.h5")
    p = tmp_path / "scan.h5"
    with h5py.File(p, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(LibraryError, match="not a ramanid library"):
        load_library(p)


def test_directory_is_not_a_library(tmp_path):
    with pytest.raises(LibraryError, match="is a directory"):
        load_library(tmp_path)


# -- signatures -------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_required_signature_needs_a_trusted_key(lib_file, tmp_path, env_home):
    """A valid signature by a key nobody trusts proves nothing: refused when required."""
    priv, pub, _ = signing.generate_keypair(tmp_path / "any.pem")
    lib = load_library(lib_file)
    lib.sign(priv, by="someone")
    lib.save(lib_file)
    with pytest.raises(LibraryError, match="no trusted key is configured"):
        load_library(lib_file, require_signature=True)
    assert load_library(lib_file, trusted_keys=[pub],
                        require_signature=True).signature_status == "valid-trusted"
    assert load_library(lib_file).signature_status == "valid-untrusted"  # not required: loads


@pytest.mark.timeout(60)
def test_sign_and_verify_with_generated_key(lib_file, tmp_path, env_home):
    priv, pub, kid = signing.generate_keypair(tmp_path / "lab.pem", comment="lab")
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    lib = load_library(lib_file)
    lib.sign(priv, by="Central lab")
    lib.save(lib_file)
    ok = load_library(lib_file, trusted_keys=[pub])
    assert ok.signature_status == "valid-trusted" and ok.signature["key_id"] == kid
    # without configured trust the signature is still checked (valid, but not trusted)
    assert load_library(lib_file).signature_status == "valid-untrusted"
    # a different trusted key: refused
    _, other_pub, _ = signing.generate_keypair(tmp_path / "other.pem")
    with pytest.raises(LibraryError, match="not a trusted key"):
        load_library(lib_file, trusted_keys=[other_pub])
    # trust configured in RAMANID_HOME: an unsigned library is refused
    (env_home / "trusted_keys").mkdir(parents=True)
    (env_home / "trusted_keys" / "lab.pub").write_text(pub.read_text())
    assert load_library(lib_file).signature_status == "valid-trusted"
    unsigned = build_library([_src("caffeine")], created=CREATED).save(tmp_path / "u.h5")
    with pytest.raises(LibraryError, match="not signed"):
        load_library(unsigned)


@pytest.mark.timeout(60)
def test_one_byte_in_the_signature_is_refused(lib_file, tmp_path):
    priv, pub, _ = signing.generate_keypair(tmp_path / "lab.pem")
    lib = load_library(lib_file)
    sig_hex = lib.sign(priv)["signature"]
    lib.save(lib_file)
    off = _offset_of(lib_file, sig_hex.encode())
    with open(lib_file, "r+b") as fh:  # change one hex digit of the signature
        fh.seek(off + 10)
        c = fh.read(1)
        fh.seek(off + 10)
        fh.write(b"0" if c != b"0" else b"1")
    with pytest.raises(LibraryError, match="refused"):
        load_library(lib_file, trusted_keys=[pub])
    forensic = load_library(lib_file, trusted_keys=[pub], allow_tampered=True)
    assert forensic.signature_status == "invalid"
    assert any("signature is not valid" in p for p in forensic.integrity_problems)


def test_signature_does_not_survive_a_change(lib_file, tmp_path):
    priv, pub, _ = signing.generate_keypair(tmp_path / "lab.pem")
    lib = load_library(lib_file)
    sig = lib.sign(priv)
    # forge: change content, keep the old signature block
    lib.retire("caffeine", by="x")
    lib.signature = sig
    lib.save(lib_file)
    with pytest.raises(LibraryError, match="signature is not valid"):
        load_library(lib_file, trusted_keys=[pub])


# -- changes and diff ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_add_approve_retire_changelog_and_diff(lib_file, tmp_path):
    old = load_library(lib_file)
    lib = load_library(lib_file)
    e = lib.add(_src("glucose"), by="Analyst A")
    assert e.status == "pending" and e not in lib.entries
    assert lib.version == "0.2.0" and lib.parent_version == "0.1.0"
    with pytest.raises(LibraryError, match="already"):
        lib.add(_src("glucose"), by="Analyst A")
    lib.approve(e.id[:6], by="Reviewer B")
    lib.retire("lactose", by="Reviewer B", reason="replaced")
    new_path = lib.save(tmp_path / "new.h5")
    new = load_library(new_path)
    assert [c["action"] for c in new.changelog] == ["build", "add", "approve", "retire"]
    assert all(c["version"] == "0.2.0" for c in new.changelog[1:])
    assert "glucose" in [x.name for x in new.entries]
    assert "lactose" not in [x.name for x in new.entries]
    assert new.entry("lactose").status == "retired"
    d = diff_libraries(old, new)
    assert [x["name"] for x in d["added"]] == ["glucose"]
    assert [x["name"] for x in d["retired"]] == ["lactose"]
    assert d["usable_added"] == [e.id] and d["usable_removed"] == [old.entry("lactose").id]
    assert not d["recipe_changed"] and d["removed"] == []
    changed = {x["name"]: x["fields"] for x in d["changed"]}
    assert "status" in changed["lactose"]


# -- atomic writes ---------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time, h5py
    from ramanid.library import load_library
    lib = load_library(sys.argv[1])
    lib.retire(lib.all_entries[0].id, by="writer")
    real = h5py.Group.create_dataset
    count = [0]
    def slow(self, *a, **k):
        count[0] += 1
        if count[0] == 6:
            print("WRITING", flush=True)
            time.sleep(60)
        return real(self, *a, **k)
    h5py.Group.create_dataset = slow
    lib.save(sys.argv[1])
""")


@pytest.mark.timeout(90)
def test_killed_writer_leaves_old_file_intact(lib_file):
    before = lib_file.read_bytes()
    sha = load_library(lib_file).sha256
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(lib_file)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        # the temporary file beside the target exists and is being written
        temps = [p for p in lib_file.parent.iterdir() if p.name.startswith(".lib.h5.")]
        assert temps, "writer should be writing a temporary file"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert lib_file.read_bytes() == before
    lib = load_library(lib_file)
    assert lib.sha256 == sha and all(e.status == "approved" for e in lib.all_entries)


@pytest.mark.timeout(60)
def test_rehashed_file_is_still_caught_by_entry_hashes_and_signature(lib_file, tmp_path):
    """An editor that rewrites a value AND recomputes the file hash is caught one layer down."""
    from ramanid.library import USERBLOCK_SIZE, _file_sha, _userblock

    priv, pub, _ = signing.generate_keypair(tmp_path / "lab.pem")
    lib = load_library(lib_file)
    lib.sign(priv)
    lib.save(lib_file)
    eid = lib.entry("caffeine").id
    with h5py.File(lib_file, "r+") as f:
        f[f"entries/{eid}/raw_values"][100] += 1.0
        stored_lib_sha = str(f.attrs["library_sha256"])
    with open(lib_file, "r+b") as fh:
        fh.write(_userblock(_file_sha(lib_file), stored_lib_sha))
    assert len(_userblock("a", "b")) == USERBLOCK_SIZE
    with pytest.raises(LibraryError, match=r"caffeine.*altered"):
        load_library(lib_file, trusted_keys=[pub])
    forensic = load_library(lib_file, trusted_keys=[pub], allow_tampered=True)
    assert forensic.signature_status == "invalid"


@pytest.mark.timeout(60)
def test_validate_flags_weak_partial_scan(lib_file):
    """A real spectrum cut to a narrow range and buried in noise is flagged, with numbers."""
    from ramanid.spectra_library.checks import validate_entries

    lib = load_library(lib_file)
    b = read(ENL / "glucose.csv")
    keep = (b.axis >= 1000) & (b.axis <= 1300)
    rng = np.random.default_rng(1)
    noisy = b.intensity[0][keep] + rng.normal(0, b.intensity[0].max(), keep.sum())
    e = lib.add(LibrarySource(b.axis[keep], noisy, name="weak glucose",
                              substance_class="cutting agent"), by="t")
    good = lib.add(_src("glucose"), by="t")
    reports = {r["id"]: r for r in validate_entries(lib)}
    weak, fine = reports[e.id], reports[good.id]
    assert weak["coverage"] < 0.3 and "covers only" in " ".join(weak["flags"])
    assert weak["snr"] < fine["snr"] / 10
    assert not weak["ok"] and fine["ok"]
    assert fine["nearest"] and all(n["substance"] != "glucose" for n in fine["nearest"])
