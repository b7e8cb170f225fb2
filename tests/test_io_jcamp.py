"""JCAMP-DX: the Lancashire conformance suite (every XYDATA form), a real Raman file, the writer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramanid.errors import InputError
from ramanid.io import detect_format, read, read_batches, write
from ramanid.io.jcamp import decode_xpp, format_jcamp
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(120)

CORRUPT = {"xyinc2.jdx"}  # lines 35-41 hold another file's SQZ data spliced into its AFFN table


def _suite(shared_data: Path) -> Path:
    d = shared_data / "formats" / "jcamp" / "data" / "Robert_J_Lancashire_test_data"
    if not d.is_dir():
        pytest.skip(f"JCAMP-DX test suite not found at {d}")
    return d


def _ldr(text: str, label: str) -> str | None:
    m = re.search(rf"^##{label}\s*=\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else None


def test_every_file_of_the_suite_decodes(shared_data: Path) -> None:
    d = _suite(shared_data)
    files = sorted(d.glob("*.jdx"))
    assert len(files) >= 40
    for f in files:
        if f.name in CORRUPT:
            continue
        assert detect_format(f) == "jcamp"
        batches = read_batches(f)
        assert batches, f
        text = f.read_text(encoding="latin-1")
        if "##XYDATA" in text.upper().replace(" ", "") and "LINK" not in text:
            npoints = _ldr(text, "NPOINTS")
            if npoints:
                assert batches[0].n_points == int(float(npoints)), f


def test_corrupt_suite_file_is_refused_not_misread(shared_data: Path) -> None:
    f = _suite(shared_data) / "xyinc2.jdx"
    with pytest.raises(InputError, match=r"decoded 350 points but NPOINTS=298"):
        read(f)


@pytest.mark.parametrize("group", [
    # the same NMR spectrum written as AFFN, PAC, SQZ, DIF and DIFDUP, plain and as NTUPLES
    ["o01.jdx", "o02.jdx", "o03.jdx", "o04.jdx", "o05.jdx", "o06.jdx", "o07.jdx", "o08.jdx",
     "o09.jdx", "o10.jdx"],
    # the same FID as FIX, PAC, SQZ, DIFDUP NTUPLES
    ["ofid1.jdx", "ofid2.jdx", "ofid3.jdx", "ofid4.jdx"],
])
def test_all_compression_forms_decode_to_the_same_numbers(shared_data: Path,
                                                          group: list[str]) -> None:
    d = _suite(shared_data)
    ref = read_batches(d / group[0])[0]
    for f in group[1:]:
        b = read_batches(d / f)[0]
        assert b.n_points == ref.n_points
        np.testing.assert_array_equal(b.intensity[0], ref.intensity[0], err_msg=f)
        np.testing.assert_allclose(b.axis, ref.axis, atol=1e-4)


def test_first_y_matches_header(shared_data: Path) -> None:
    """FIRSTY (header) equals the decoded ordinate at FIRSTX, for single-block XYDATA files."""
    d = _suite(shared_data)
    checked = 0
    for f in sorted(d.glob("*.jdx")):
        text = f.read_text(encoding="latin-1")
        if f.name in CORRUPT or text.count("##TITLE") != 1 or "(X++(Y..Y))" not in text:
            continue
        fx, fy = _ldr(text, "FIRSTX"), _ldr(text, "FIRSTY")
        if fx is None or fy is None:
            continue
        b = read(f)
        i = int(np.argmin(np.abs(b.axis - float(fx))))
        scale = np.abs(b.intensity[0]).max()
        assert abs(b.intensity[0, i] - float(fy)) <= 2e-3 * scale, f
        checked += 1
    assert checked >= 15


def test_compound_file_blocks(shared_data: Path) -> None:
    d = _suite(shared_data)
    batches = read_batches(d / "compound.jdx")
    assert sum(len(b) for b in batches) >= 3
    with pytest.raises(InputError, match="read_batches"):
        read(d / "compound.jdx")
    link = read_batches(d / "blckpac1.jdx")  # 5 UV/VIS blocks on one axis -> one batch
    assert len(link) == 1 and len(link[0]) == 5
    assert link[0].meta[0]["x_units"] == "nm (wavelength)"  # not Raman: axis kept as it is


def test_non_raman_units_in_metadata(shared_data: Path) -> None:
    d = _suite(shared_data)
    assert read(d / "o01.jdx").meta[0]["x_units"] == "hz"
    assert read(d / "pktab1.jdx").meta[0]["x_units"] == "m/z"
    assert read(d / "dupdec1.jdx").meta[0]["x_units"] == "cm-1"


def test_tannic_acid_raman(shared_data: Path) -> None:
    f = shared_data / "formats" / "jcamp" / "data" / "raman_spectra" / "tannic_acid.jdx"
    if not f.exists():
        pytest.skip(f"{f} not found")
    b = read(f)
    assert b.n_points == 1949
    assert b.axis[0] == pytest.approx(100.595) and b.axis[-1] == pytest.approx(2854.713)
    assert b.intensity[0, 0] == pytest.approx(42.644)
    assert b.intensity.max() == pytest.approx(300.889)
    assert b.meta[0]["device_model"] == "Ocean Optics R2000"
    assert b.meta[0]["x_units"] == "cm-1"


# -- ASDF decoding on hand-made lines (values from the specification's definitions) -----------
def test_asdf_tokens() -> None:
    _, _, y = decode_xpp(["1 1+2-3 4"], "pac")
    np.testing.assert_array_equal(y, [1, 2, -3, 4])
    _, _, y = decode_xpp(["1 1.5E+02 -2.0e-1,7"], "affn exponents")
    np.testing.assert_allclose(y, [150.0, -0.2, 7.0])
    _, _, y = decode_xpp(["1 A2b3@"], "sqz")  # A2 = 12, b3 = -23, @ = 0
    np.testing.assert_array_equal(y, [12, -23, 0])
    _, _, y = decode_xpp(["1 A0J%j"], "dif")  # 10, +1, +0, -1
    np.testing.assert_array_equal(y, [10, 11, 11, 10])
    _, _, y = decode_xpp(["1 A0JU"], "difdup")  # 10, 11, then the +1 repeated twice more
    np.testing.assert_array_equal(y, [10, 11, 12, 13])
    _, _, y = decode_xpp(["1 A0T"], "dup")  # 10 occurs twice
    np.testing.assert_array_equal(y, [10, 10])
    # y-check: the line after a DIF line starts with the last value again (dropped)
    _, _, y = decode_xpp(["1 A0JJ", "4 A2J"], "ycheck")
    np.testing.assert_array_equal(y, [10, 11, 12, 13])


def test_failed_y_check_is_an_error() -> None:
    with pytest.raises(InputError, match="y-check"):
        decode_xpp(["1 A0JJ", "4 A5J"], "bad")


def test_bad_character_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.jdx"
    f.write_text("##TITLE=x\n##JCAMP-DX=4.24\n##XUNITS=1/CM\n##FIRSTX=1\n##LASTX=3\n"
                 "##NPOINTS=3\n##XFACTOR=1\n##YFACTOR=1\n##XYDATA=(X++(Y..Y))\n1 A0J!J\n##END=\n")
    with pytest.raises(InputError, match="unexpected character"):
        read(f)


# -- writer -------------------------------------------------------------------------------------
def test_write_real_spectrum_both_forms(tmp_path: Path, shared_data: Path) -> None:
    src = read(shared_data / "enlighten" / "library" / "caffeine.csv")
    for form in ("affn", "difdup"):
        p = tmp_path / f"c_{form}.jdx"
        p.write_text(format_jcamp(src, form=form), encoding="latin-1")
        b = read(p)
        np.testing.assert_allclose(b.axis, src.axis, rtol=1e-12)
        tol = 0 if form == "affn" else 1e-8 * np.abs(src.intensity).max()
        np.testing.assert_allclose(b.intensity, src.intensity, rtol=0, atol=tol)
        for k in ("device_serial", "laser_nm", "integration_ms", "averages", "timestamp",
                  "wavecal_coeffs"):
            assert b.meta[0][k] == src.meta[0][k], k
    # the compressed file really uses SQZ/DIF characters, not plain numbers
    data = (tmp_path / "c_difdup.jdx").read_text().split("##XYDATA=(X++(Y..Y))")[1]
    assert re.search(r"[J-Rj-r%]", data) and len(data) < 0.7 * len(
        (tmp_path / "c_affn.jdx").read_text().split("##XYDATA=(X++(Y..Y))")[1])


def test_write_via_public_api_uneven_axis(tmp_path: Path, shared_data: Path) -> None:
    src = read(shared_data / "enlighten" / "library-older" / "acetaminophen.csv")
    p = tmp_path / "a.jdx"
    write(src, p)
    assert "##XYPOINTS=(XY..XY)" in p.read_text()
    b = read(p)
    np.testing.assert_array_equal(b.axis, src.axis)
    np.testing.assert_array_equal(b.intensity, src.intensity)


def test_write_batch_as_link_block(tmp_path: Path) -> None:
    axis = np.arange(100.0, 200.0, 2.0)
    batch = SpectrumBatch(axis, np.vstack([np.sin(axis), np.cos(axis)]),
                          [{"name": "a", "laser_nm": 785.0}, {"name": "b", "laser_nm": 785.0}])
    p = tmp_path / "two.jdx"
    write(batch, p)
    assert "##DATA TYPE=LINK" in p.read_text()
    b = read(p)
    assert [m["name"] for m in b.meta] == ["a", "b"]
    np.testing.assert_array_equal(b.intensity, batch.intensity)


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(start=st.floats(min_value=-500, max_value=3000), step=st.floats(min_value=0.05, max_value=8),
       ys=st.lists(_finite, min_size=2, max_size=60), form=st.sampled_from(["affn", "difdup"]))
def test_roundtrip_property(tmp_path_factory: pytest.TempPathFactory, start: float, step: float,
                            ys: list[float], form: str) -> None:
    axis = start + step * np.arange(len(ys))
    y = np.asarray(ys)
    batch = SpectrumBatch.single(axis, y, laser_nm=785.0, device_serial="WP-00001")
    p = tmp_path_factory.mktemp("jdx") / "r.jdx"
    p.write_text(format_jcamp(batch, form=form), encoding="latin-1")
    b = read(p)
    np.testing.assert_allclose(b.axis, axis, rtol=1e-9, atol=1e-9 * max(1.0, abs(start)))
    tol = 0.0 if form == "affn" else 1e-8 * max(np.abs(y).max(), 1e-300)
    np.testing.assert_allclose(b.intensity[0], y, rtol=0, atol=tol)
    assert b.meta[0]["device_serial"] == "WP-00001" and b.meta[0]["laser_nm"] == 785.0


def test_raman_in_nanometres(tmp_path: Path) -> None:
    from ramanid.calibration.units import wavelength_to_shift

    head = "##TITLE=nm\n##JCAMP-DX=4.24\n##DATA TYPE=RAMAN SPECTRUM\n##XUNITS=NANOMETERS\n"
    body = "##XYPOINTS=(XY..XY)\n800.0, 5\n810.0, 7\n820.0, 6\n##END=\n"
    f = tmp_path / "nm.jdx"
    f.write_text(head + body)
    with pytest.raises(InputError, match="--laser-nm"):
        read(f)
    np.testing.assert_allclose(read(f, laser_nm=785.0).axis,
                               wavelength_to_shift(np.array([800.0, 810.0, 820.0]), 785.0))
    g = tmp_path / "nm_laser.jdx"
    g.write_text(head + "##$LASER WAVELENGTH=785.0\n" + body)
    b = read(g)
    assert b.meta[0]["laser_nm"] == 785.0 and b.meta[0]["axis_converted_from"] == "nm"


def test_peak_table_triplets(tmp_path: Path) -> None:
    f = tmp_path / "xyw.jdx"
    f.write_text("##TITLE=p\n##JCAMP-DX=4.24\n##XUNITS=1/CM\n##PEAK TABLE=(XYW..XYW)\n"
                 "100,5,1 200,9,2\n300,4,1\n##END=\n")
    b = read(f)
    np.testing.assert_array_equal(b.axis, [100, 200, 300])
    np.testing.assert_array_equal(b.intensity[0], [5, 9, 4])
