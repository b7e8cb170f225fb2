"""Galactic SPC reader against the 30-file conformance set in ../shared (used in place, not copied:
the files come from a GPL-3 repository; only their bytes and the values in txt/ are used here)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from ramanid.errors import InputError
from ramanid.io import detect_format, read, read_batches

pytestmark = pytest.mark.timeout(120)


def _dir(shared_data: Path) -> Path:
    d = shared_data / "formats" / "spc" / "test_data"
    if not d.is_dir():
        pytest.skip(f"SPC test files not found at {d} (they stay in ../shared; clone it beside "
                    "the project)")
    return d


def _expected(txt: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) per spectrum from the reference text: blocks separated by blank lines, each with an
    x column and one column per spectrum (non-numeric title lines skipped)."""
    out = []
    for block in txt.read_text().strip("\n").split("\n\n"):
        rows = []
        for line in block.splitlines():
            cells = [c for c in line.split("\t") if c.strip()]
            if cells and (cells[0][0].isdigit() or cells[0][0] in "-."):
                rows.append([float(c) for c in cells])
        if rows:
            a = np.asarray(rows)
            out += [(a[:, 0], a[:, j]) for j in range(1, a.shape[1])]
    return out


def _spectra(path: Path) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    return [(b.axis, b.intensity[i], b.meta[i]) for b in read_batches(path)
            for i in range(len(b))]


def _subexp(data: bytes, sub: int) -> int:
    """Signed per-subfile exponent of subfile ``sub`` of an evenly spaced new-format multifile."""
    npts = struct.unpack_from("<i", data, 4)[0]
    width = 2 if data[0] & 1 else 4
    return struct.unpack_from("b", data, 512 + sub * (32 + width * npts) + 1)[0]


def test_every_spc_file_matches_reference_values(shared_data: Path) -> None:
    d = _dir(shared_data)
    files = sorted(p for p in d.iterdir() if p.is_file())
    assert len(files) >= 25
    compared = 0
    for f in files:
        assert detect_format(f) == "spc"
        got = _spectra(f)
        txt = d / "txt" / f"{f.name}.txt"
        if not txt.exists():
            continue
        exp = _expected(txt)
        assert len(got) == len(exp), f.name
        data = f.read_bytes()
        xyxy = bool(data[0] & 0x40)
        for i, ((gx, gy, meta), (ex, ey)) in enumerate(zip(got, exp, strict=True)):
            order = np.argsort(ex)  # the reader returns increasing x; the text keeps file order
            ex, ey = ex[order], ey[order]
            scale = max(np.abs(ey).max(), 1e-300)
            if not xyxy and data[0] & 0x04 and data[1] == 0x4B and data[3] != 0x80 \
                    and -128 < _subexp(data, i) < 0:
                # reference text disagrees for negative per-subfile exponents: it scales them as
                # exponent 0 (the main header's); the spec's 2**(subexp-32) is used here
                ey = ey * 2.0 ** _subexp(data, i)
            np.testing.assert_allclose(gy, ey, rtol=0, atol=1e-9 * scale, err_msg=f"{f.name}#{i}")
            if xyxy:
                # the reference's x column for XYXY files is not the stored X array; check the
                # first subfile's X spans the header's ffirst..flast instead
                if i:
                    continue
                first, last = struct.unpack_from("<dd", data, 8)
                assert gx.min() == pytest.approx(min(first, last), abs=1e-3)
                assert gx.max() == pytest.approx(max(first, last), abs=1e-3)
            else:
                np.testing.assert_allclose(gx, ex, rtol=1e-9, err_msg=f.name)
            assert meta["format"] == "spc"
        compared += 1
    assert compared >= 24


def test_raman_spc(shared_data: Path) -> None:
    b = read(_dir(shared_data) / "RAMAN.SPC")
    m = b.meta[0]
    assert m["x_units"] == "cm-1" and b.n_points == 3632
    assert m["comment"] == "FT Raman Spectrum Example"
    assert m["laser_nm"] == pytest.approx(1e7 / 9395)  # log block RAMANFREQ=9395 (cm-1)
    assert m["timestamp"].startswith("1994-08-26")


def test_formats_and_units(shared_data: Path) -> None:
    d = _dir(shared_data)
    assert read(d / "DOERNER.spc").n_points == 1602  # old (0x4D) format
    assert len(read_batches(d / "m_ordz.spc")[0]) == 10  # old-format multifile
    assert read(d / "NMR_SPC.SPC").meta[0]["x_units"] == "ppm"
    assert read(d / "nir.spc").meta[0]["x_units"] == "nm (wavelength)"  # NIR, no laser: kept
    xyxy = read_batches(d / "m_xyxy.spc")
    assert sum(len(b) for b in xyxy) == 512 and len(xyxy) > 1
    with pytest.raises(InputError, match="read_batches"):
        read(d / "m_xyxy.spc")


def test_truncated_spc_is_refused(shared_data: Path, tmp_path: Path) -> None:
    data = (_dir(shared_data) / "RAMAN.SPC").read_bytes()
    f = tmp_path / "cut.spc"
    f.write_bytes(data[:2000])
    with pytest.raises(InputError, match="truncated"):
        read(f)


def test_float_and_integer_y(tmp_path: Path) -> None:
    """Hand-built minimal files from the documented layout: float Y (fexp=0x80) and int32 Y."""
    def header(fexp: int, npts: int) -> bytearray:
        h = bytearray(512)
        h[0], h[1], h[2], h[3] = 0, 0x4B, 11, fexp & 0xFF
        struct.pack_into("<iddi", h, 4, npts, 100.0, 300.0, 1)
        h[28] = 13  # Raman shift
        return h

    y = np.array([1.5, -2.25, 3.0], dtype="<f4")
    f = tmp_path / "float.spc"
    f.write_bytes(bytes(header(0x80, 3)) + bytes(32) + y.tobytes())
    b = read(f)
    np.testing.assert_array_equal(b.intensity[0], y)
    np.testing.assert_array_equal(b.axis, [100.0, 200.0, 300.0])
    ints = np.array([1 << 20, -(1 << 21), 3], dtype="<i4")
    f2 = tmp_path / "int.spc"
    f2.write_bytes(bytes(header(4, 3)) + bytes(32) + ints.tobytes())
    np.testing.assert_array_equal(read(f2).intensity[0], ints * 2.0 ** (4 - 32))
