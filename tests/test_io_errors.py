"""Bad input: every case gives one InputError line naming the file, the problem and a hint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramanid.errors import InputError, UsageError
from ramanid.io import detect_format, read, read_batches, write
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(60)


def _error(path: Path, **kw: object) -> str:
    with pytest.raises(InputError) as info:
        read(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg  # names the file
    assert "; " in msg  # carries a hint after the problem
    return msg


CASES = {
    "empty": (b"", "empty"),
    "blank": (b"  \n\n \t\n", "empty"),
    "words": (b"hello world\nno numbers here\n", "no numbers"),
    "one column": (b"1.0\n2.0\n3.0\n4.0\n", "one column"),
    "nan intensity": (b"100,1\n101,nan\n102,3\n", "NaN"),
    "inf axis": (b"100,1\ninf,2\n102,3\n", "NaN, infinite"),
    "non-monotonic": (b"100,1\n102,2\n101,3\n103,4\n", "not monotonic"),
    "duplicated": (b"100,1\n101,2\n101,3\n102,4\n", "repeats the value 101"),
    "single point": (b"100,1\n", "one data point"),
    "binary": (bytes(range(256)) * 8, "binary"),
    "truncated jcamp": (b"##TITLE=x\n##XUNITS=1/CM\n##FIRSTX=1\n##LASTX=9\n##NPOINTS=9\n"
                        b"##XYDATA=(X++(Y..Y))\n1 1 2 3\n", "decoded 3 points but NPOINTS=9"),
    "garbage spc": (b"\x00\x4b" + b"\x00" * 100, "truncated"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file(tmp_path: Path, case: str) -> None:
    data, expect = CASES[case]
    suffix = ".spc" if "spc" in case else ".jdx" if "jcamp" in case else ".csv"
    f = tmp_path / f"bad{suffix}"
    f.write_bytes(data)
    assert expect in _error(f)


def test_random_bytes_named_spc(tmp_path: Path) -> None:
    f = tmp_path / "noise.spc"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _error(f)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="not found"):
        detect_format(tmp_path / "nope.csv")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in _error(tmp_path)


def test_hdf5_that_is_not_an_archive(tmp_path: Path) -> None:
    import h5py

    f = tmp_path / "other.h5"
    with h5py.File(f, "w") as h:
        h["x"] = np.arange(3)
    assert "not a ramanid scan archive" in _error(f)


def test_nm_without_laser(tmp_path: Path) -> None:
    f = tmp_path / "nm.csv"
    f.write_text("wavelength_nm,counts\n800,1\n801,2\n802,3\n")
    assert "--laser-nm" in _error(f)


def test_unreadable_file(tmp_path: Path) -> None:
    f = tmp_path / "secret.csv"
    f.write_text("100,1\n101,2\n")
    f.chmod(0)
    if os.geteuid() != 0:
        assert "permission denied" in _error(f)
        return
    # root ignores file modes: read it in a child that has dropped to user "nobody"
    code = (f"import os; os.setgid(65534); os.setuid(65534)\n"
            f"from ramanid.io import read\n"
            f"from ramanid.errors import InputError\n"
            f"try:\n    read({str(f)!r})\nexcept InputError as e:\n    print(e)\n")
    # the child imports ramanid before dropping privileges: pass the code via -c after imports
    pre = "import ramanid.io, ramanid.errors, numpy\n"
    out = subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True,
                         timeout=60)
    assert "permission denied" in out.stdout, out.stderr
    assert str(f) in out.stdout


def test_bad_options(tmp_path: Path) -> None:
    f = tmp_path / "ok.csv"
    f.write_text("100,1\n101,2\n")
    with pytest.raises(UsageError):
        read(f, format="pdf")
    with pytest.raises(UsageError):
        read(f, laser_nm=5.0)
    with pytest.raises(UsageError):
        write(SpectrumBatch.single([1.0, 2.0], [3.0, 4.0]), tmp_path / "x.pdf")


def test_cli_style_one_line(tmp_path: Path) -> None:
    """The error's text is one line that the CLI can print as is."""
    f = tmp_path / "x.csv"
    f.write_bytes(b"")
    try:
        read(f)
    except InputError as e:
        assert e.one_line() == str(e) and e.exit_status == 1


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=600),
    st.text(alphabet="0123456789.,;-+eE \t\n#:=abcXYZ@%JjSs?", max_size=400),
), suffix=st.sampled_from([".csv", ".txt", ".jdx", ".spc"]))
def test_fuzz_only_input_errors(tmp_path_factory: pytest.TempPathFactory, data: bytes | str,
                                suffix: str) -> None:
    """Whatever the bytes, reading either succeeds with a valid batch or raises InputError."""
    f = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    if isinstance(data, str):
        f.write_text(data)
    else:
        f.write_bytes(data)
    try:
        b = read(f)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert np.all(np.diff(b.axis) > 0) and np.all(np.isfinite(b.intensity))


@settings(max_examples=100, deadline=None)
@given(body=st.lists(st.sampled_from(["1 A0JJ", "3 C5j", "2 @", "4 A1T", "5 j", "6 U", "7 a9%",
                                      "8 1+2", "9 ?", "x"]), min_size=1, max_size=8))
def test_fuzz_jcamp_tables(tmp_path_factory: pytest.TempPathFactory, body: list[str]) -> None:
    f = tmp_path_factory.mktemp("fz") / "f.jdx"
    f.write_text("##TITLE=t\n##JCAMP-DX=4.24\n##XUNITS=1/CM\n##FIRSTX=1\n##LASTX=20\n"
                 "##NPOINTS=20\n##XYDATA=(X++(Y..Y))\n" + "\n".join(body) + "\n##END=\n")
    try:
        read(f)
    except InputError:
        pass


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), min_size=1,
                      max_size=6), cut=st.integers(100, 16000),
       name=st.sampled_from(["RAMAN.SPC", "DOERNER.spc", "m_xyxy.spc", "m_ordz.spc", "nir.spc"]))
def test_fuzz_spc_header(shared_data: Path, tmp_path_factory: pytest.TempPathFactory,
                         edits: list[tuple[int, int]], cut: int, name: str) -> None:
    """Damaged SPC headers (flags, exponents, point counts, lengths) never crash the reader."""
    src = shared_data / "formats" / "spc" / "test_data" / name
    if not src.exists():
        pytest.skip(f"{src} not found")
    data = bytearray(src.read_bytes()[:cut])
    for pos, val in edits:
        if 1 < pos < len(data):  # keep the version byte so the SPC path is exercised
            data[pos] = val
    f = tmp_path_factory.mktemp("spc") / "d.spc"
    f.write_bytes(bytes(data))
    try:
        b = read_batches(f)
    except InputError:
        return
    for x in b:
        assert np.all(np.diff(x.axis) > 0)


# -- non-Raman axes: readable, not identifiable (QA 10:28) ----------------------------------------
LANCASHIRE = "formats/jcamp/data/Robert_J_Lancashire_test_data"
NON_RAMAN = [("formats/spc/test_data/NMR_FID.SPC", "seconds"),
             ("formats/spc/test_data/s_xy.spc", "minutes"),
             (f"{LANCASHIRE}/pktab2.jdx", "m/z"),
             (f"{LANCASHIRE}/ofid1.jdx", "seconds"),
             (f"{LANCASHIRE}/o01.jdx", "Hz")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,what", NON_RAMAN)
def test_non_raman_axes_are_read_but_refused_for_identification(shared_data: Path, name: str,
                                                                 what: str) -> None:
    from ramanid.io import require_raman

    path = shared_data / name
    for batch in read_batches(path):  # reading (e.g. to convert) keeps working
        assert batch.meta[0]["x_units"] != "cm-1"
        with pytest.raises(InputError) as exc:
            require_raman(batch, path)
        msg = exc.value.one_line()
        assert str(path) in msg and what in msg and "not a Raman spectrum" in msg
    proc = subprocess.run([sys.executable, "-m", "ramanid", "identify", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Raman spectrum" in lines[0] and what in lines[0]


def test_raman_and_converted_nm_axes_pass_require_raman(tmp_path: Path) -> None:
    from ramanid.io import require_raman

    f = tmp_path / "nm.csv"
    f.write_text("wavelength_nm,counts\n800,1\n801,2\n802,3\n")
    batch = read(f, laser_nm=785)
    assert require_raman(batch) is batch
    g = tmp_path / "shift.csv"
    g.write_text("100,1\n101,2\n102,3\n")
    assert require_raman(read(g)).meta[0]["x_units"] == "cm-1"


def test_multi_axis_message_names_no_python_api_alone(shared_data: Path) -> None:
    path = shared_data / LANCASHIRE / "blckpkt1.jdx"
    with pytest.raises(InputError) as exc:
        read(path)
    msg = exc.value.one_line()
    assert "groups of spectra on different axes" in msg
    assert "ramanid commands read each group" in msg
    assert "ramanid.io.read_batches" not in msg
