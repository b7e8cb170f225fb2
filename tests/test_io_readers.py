"""Readers on real instrument files from ../shared/data and on generic CSV/TXT layouts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ramanid.calibration.units import wavelength_to_shift

from ramanid.errors import InputError
from ramanid.io import FORMATS, detect_format, read, read_batches
from ramanid.io.bwtek import read_columns

pytestmark = pytest.mark.timeout(120)


def _enlighten_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "enlighten").glob("library*/*.csv"))


def _header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:80]:
        key, sep, value = line.partition(",")
        if sep:
            out[key] = value
    return out


# -- ENLIGHTEN -----------------------------------------------------------------------------------
def test_every_enlighten_file_reads(shared_data: Path) -> None:
    files = _enlighten_files(shared_data)
    assert len(files) >= 85
    for f in files:
        b = read(f)
        assert len(b) == 1
        assert np.all(np.diff(b.axis) > 0)
        assert np.all(np.isfinite(b.intensity))
        assert b.meta[0]["source"] == str(f)
        assert detect_format(f) in ("enlighten-csv", "csv")


def test_enlighten_values_and_metadata_match_the_file(shared_data: Path) -> None:
    f = shared_data / "enlighten" / "library" / "caffeine.csv"
    b = read(f)
    assert detect_format(f) == "enlighten-csv"
    h = _header(f)
    m = b.meta[0]
    assert m["device_serial"] == h["Serial Number"]
    assert m["device_model"] == h["Model"]
    assert m["laser_nm"] == pytest.approx(float(h["Laser Wavelength"]))
    assert m["integration_ms"] == pytest.approx(float(h["Integration Time"]))
    assert m["averages"] == int(h["Scan Averaging"])
    assert m["timestamp"].startswith(h["Timestamp"][:10])
    assert m["format"] == "enlighten-csv"
    # the numbers: compare with an independent parse of the rows (Wavenumber, Processed)
    lines = f.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Pixel,")) + 1
    rows = np.array([[float(v) for v in ln.split(",")] for ln in lines[start:] if ln.strip()])
    np.testing.assert_array_equal(b.axis, rows[:, 1])
    np.testing.assert_array_equal(b.intensity[0], rows[:, -1])


def test_enlighten_without_key_value_header(shared_data: Path) -> None:
    f = shared_data / "enlighten" / "library-older" / "sulfur.csv"
    b = read(f)
    assert detect_format(f) == "enlighten-csv"
    assert b.axis[0] == pytest.approx(400.0) and b.axis[-1] == pytest.approx(2400.0)
    # sulfur's strongest band is near 473 cm-1
    assert abs(b.axis[np.argmax(b.intensity[0])] - 473) < 10


def test_enlighten_wavelength_only_export_is_converted(tmp_path: Path) -> None:
    wl = np.linspace(800.0, 900.0, 50)
    body = "\n".join(f"{i},{float(w)!r},{i * 2.0}" for i, w in enumerate(wl))
    f = tmp_path / "wl.csv"
    f.write_text("ENLIGHTEN Version,4.1\nLaser Wavelength,785.0\n\n"
                 f"Pixel,Wavelength,Processed\n{body}\n")
    b = read(f)
    np.testing.assert_allclose(b.axis, wavelength_to_shift(wl, 785.0), rtol=1e-9)
    assert b.meta[0]["axis_converted_from"] == "nm"


# -- B&W Tek ------------------------------------------------------------------------------------
def test_every_bwtek_file_reads(shared_data: Path) -> None:
    files = [f for f in sorted((shared_data / "charisma").glob("*/*.txt"))
             if f.read_bytes().startswith(b"File Version;BW")]
    assert len(files) >= 50
    for f in files:
        assert detect_format(f) == "bwtek"
        b = read(f)
        assert np.all(np.diff(b.axis) > 0)
        assert b.meta[0]["laser_nm"] in (pytest.approx(532, abs=1), pytest.approx(785, abs=1))
        assert b.meta[0]["integration_ms"] > 0


def test_bwtek_columns_and_blank_axis_rows(shared_data: Path) -> None:
    f = shared_data / "charisma" / "ICV_BW785" / "PST02_iRPlus785_Z050_100_3200ms.txt"
    b = read(f)
    header, cols = read_columns(f)
    keep = np.isfinite(cols["Raman Shift"])
    assert 0 < keep.sum() < keep.size  # this file has blank Raman Shift cells
    np.testing.assert_array_equal(b.axis, cols["Raman Shift"][keep])
    np.testing.assert_array_equal(b.intensity[0], cols["Dark Subtracted #1"][keep])
    assert b.axis[0] < 0  # the calibrated range starts on the anti-Stokes side
    laser = float(header["laser_wavelength"].replace(",", "."))
    assert b.meta[0]["laser_nm"] == pytest.approx(laser)
    assert b.meta[0]["integration_ms"] == pytest.approx(3200)
    assert b.meta[0]["device_serial"] == header["c code"] == "RUW"
    assert b.meta[0]["device_model"] == header["model"]
    # polystyrene: the ring-breathing band 1001.4 cm-1 is the strongest in 950-1050
    win = (b.axis > 950) & (b.axis < 1050)
    assert abs(b.axis[win][np.argmax(b.intensity[0][win])] - 1001.4) < 3


# -- Horiba -------------------------------------------------------------------------------------
def test_horiba_two_column_files(shared_data: Path) -> None:
    files = sorted((shared_data / "charisma").glob("*Ho*/*.txt"))
    assert len(files) >= 30
    for f in files:
        assert detect_format(f) == "horiba"
        b = read(f)
        raw = np.loadtxt(f)
        order = np.argsort(raw[:, 0])
        np.testing.assert_array_equal(b.axis, raw[order, 0])
        np.testing.assert_array_equal(b.intensity[0], raw[order, 1])


def test_horiba_silicon_band(shared_data: Path) -> None:
    b = read(shared_data / "charisma" / "TOP_Ho633" / "Si_HLR633_Z010_100_40sx5.txt")
    win = (b.axis > 400) & (b.axis < 650)
    assert abs(b.axis[win][np.argmax(b.intensity[0][win])] - 520.7) < 5


def test_labspec_header_lines(tmp_path: Path) -> None:
    f = tmp_path / "labspec.txt"
    f.write_text("#Acq. time (s)=\t2\n#Accumulations=\t3\n#Laser (nm)=\t632.817\n"
                 "100.5\t10\n101.5\t12\n102.5\t11\n")
    assert detect_format(f) == "horiba"
    m = read(f).meta[0]
    assert m["integration_ms"] == pytest.approx(2000)
    assert m["averages"] == 3
    assert m["laser_nm"] == pytest.approx(632.817)


# -- generic CSV/TXT ----------------------------------------------------------------------------
X = np.array([200.0, 201.5, 203.0, 204.5, 206.0])
Y = np.array([10.25, 11.5, 9.75, 8.0, 12.125])


def _fmt(v: float, comma: bool) -> str:
    s = repr(float(v))
    return s.replace(".", ",") if comma else s


@pytest.mark.parametrize(("sep", "comma", "header"), [
    (",", False, None), (";", True, None), ("\t", False, None), (" ", False, None),
    ("\t", True, None), (" ", True, None), (";", False, "Raman shift (cm-1);Intensity"),
    (",", False, "wavenumber,intensity"), ("  ", False, "# exported by some tool\nshift counts"),
])
def test_generic_layouts(tmp_path: Path, sep: str, comma: bool, header: str | None) -> None:
    rows = [f"{_fmt(a, comma)}{sep}{_fmt(b, comma)}" for a, b in zip(X, Y, strict=True)]
    f = tmp_path / "s.txt"
    f.write_text(((header + "\n") if header else "") + "\n".join(rows) + "\n")
    b = read(f)
    np.testing.assert_array_equal(b.axis, X)
    np.testing.assert_array_equal(b.intensity[0], Y)


def test_descending_axis_is_flipped(tmp_path: Path) -> None:
    f = tmp_path / "desc.csv"
    f.write_text("\n".join(f"{a},{b}" for a, b in zip(X[::-1], Y[::-1], strict=True)))
    b = read(f)
    np.testing.assert_array_equal(b.axis, X)
    np.testing.assert_array_equal(b.intensity[0], Y)


def test_crlf_and_bom(tmp_path: Path) -> None:
    f = tmp_path / "win.csv"
    f.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(f"{a},{b}" for a, b in zip(X, Y, strict=True))
                  .encode())
    np.testing.assert_array_equal(read(f).axis, X)


def test_several_intensity_columns(tmp_path: Path) -> None:
    f = tmp_path / "multi.csv"
    f.write_text("shift,a,b\n" + "\n".join(f"{a},{b},{2 * b}" for a, b in
                                           zip(X, Y, strict=True)))
    b = read(f)
    assert len(b) == 2
    np.testing.assert_array_equal(b.intensity[1], 2 * Y)
    assert [m["name"] for m in b.meta] == ["a", "b"]


# -- nm axes ------------------------------------------------------------------------------------
WL = np.linspace(800.0, 950.0, 40)


def _rows(x: np.ndarray) -> str:
    return "\n".join(f"{float(w)!r},{i}" for i, w in enumerate(x))


def test_nm_header_with_laser_option(tmp_path: Path) -> None:
    f = tmp_path / "nm.csv"
    f.write_text("Wavelength (nm),Intensity\n" + _rows(WL))
    with pytest.raises(InputError, match="--laser-nm"):
        read(f)
    b = read(f, laser_nm=785.0)
    np.testing.assert_allclose(b.axis, wavelength_to_shift(WL, 785.0), rtol=1e-12)
    assert b.meta[0]["laser_nm"] == 785.0


def test_nm_laser_from_header(tmp_path: Path) -> None:
    f = tmp_path / "nm2.csv"
    f.write_text("# laser_nm: 785\n# x_units: nm\nx,y\n"
                 + "\n".join(f"{float(w)!r},{i}" for i, w in enumerate(WL)))
    np.testing.assert_allclose(read(f).axis, wavelength_to_shift(WL, 785.0), rtol=1e-12)


def test_unlabelled_nm_values_with_known_laser(tmp_path: Path) -> None:
    f = tmp_path / "bare.txt"
    f.write_text("\n".join(f"{float(w)!r}\t{i}" for i, w in enumerate(WL)))
    assert read(f).axis[0] == pytest.approx(800.0)  # no laser: taken as cm-1
    np.testing.assert_allclose(read(f, laser_nm=785.0).axis, wavelength_to_shift(WL, 785.0))


def test_shift_labelled_axis_never_converted(tmp_path: Path) -> None:
    f = tmp_path / "shift.csv"
    f.write_text("Raman shift,intensity\n" + _rows(WL))
    np.testing.assert_array_equal(read(f, laser_nm=785.0).axis, WL)


# -- detection ----------------------------------------------------------------------------------
def test_detect_by_content_not_extension(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "enlighten" / "library" / "caffeine.csv"
    f = tmp_path / "misnamed.jdx"
    f.write_bytes(src.read_bytes())
    assert detect_format(f) == "enlighten-csv"
    assert set(FORMATS) >= {"enlighten-csv", "csv", "bwtek", "horiba", "jcamp", "spc",
                            "ramanid-h5"}


def test_forced_format(shared_data: Path) -> None:
    f = shared_data / "charisma" / "TOP_Ho633" / "Si_HLR633_Z010_100_40sx5.txt"
    assert read(f, format="csv").meta[0]["format"] == "csv"
    with pytest.raises(InputError):
        read(f, format="jcamp")


def test_read_batches_returns_list(shared_data: Path) -> None:
    f = shared_data / "enlighten" / "library" / "caffeine.csv"
    out = read_batches(f)
    assert isinstance(out, list) and len(out) == 1 and len(out[0]) == 1


def test_light_import() -> None:
    import subprocess
    import sys

    code = ("import sys, ramanid.io; bad = [m for m in ('h5py', 'matplotlib', 'scipy', 'jcamp')"
            " if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "", f"ramanid.io imported heavy modules: {out}"
    assert re.fullmatch(r"", out)


def test_text_footer_is_ignored(tmp_path: Path) -> None:
    f = tmp_path / "footer.txt"
    f.write_text("\n".join(f"{a}\t{b}" for a, b in zip(X, Y, strict=True)) + "\n[End of data]\n")
    np.testing.assert_array_equal(read(f).intensity[0], Y)


def test_enlighten_processed_column_not_last(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{a},{b},{b + 1000}" for i, (a, b) in enumerate(zip(X, Y, strict=True)))
    f = tmp_path / "e.csv"
    f.write_text(f"ENLIGHTEN Version,4.1\n\nPixel,Wavenumber,Processed,Raw\n{rows}\n")
    np.testing.assert_array_equal(read(f).intensity[0], Y)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 30), sep=st.sampled_from([",", ";", "\t", " ", "  "]),
       comma=st.booleans(), header=st.booleans(), descending=st.booleans(),
       seed=st.integers(0, 2**31))
def test_generic_layout_property(tmp_path_factory: pytest.TempPathFactory, n: int, sep: str,
                                 comma: bool, header: bool, descending: bool, seed: int) -> None:
    if sep == "," and comma:
        comma = False  # "1,5,2,5" is ambiguous; no exporter writes it
    rng = np.random.default_rng(seed)
    x = np.round(np.cumsum(rng.uniform(0.1, 5.0, n)) + rng.uniform(-100, 2000), 3)
    y = np.round(rng.normal(0, 1e4, n), 2)
    order = slice(None, None, -1) if descending else slice(None)
    rows = [f"{_fmt(a, comma)}{sep}{_fmt(b, comma)}" for a, b in zip(x[order], y[order],
                                                                    strict=True)]
    f = tmp_path_factory.mktemp("gen") / "g.txt"
    f.write_text(("Raman Shift" + sep.strip()[:1] + " Intensity\n" if header else "")
                 + "\n".join(rows) + "\n")
    b = read(f)
    np.testing.assert_array_equal(b.axis, x)
    np.testing.assert_array_equal(b.intensity[0], y)
