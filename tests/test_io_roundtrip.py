"""Writers: CSV, JCAMP-DX and the HDF5 archive each read back what they wrote (with metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramanid.errors import InputError
from ramanid.io import detect_format, read, read_batches, write
from ramanid.spectrum import SpectrumBatch

pytestmark = pytest.mark.timeout(120)

KEYS = ("device_serial", "device_model", "laser_nm", "integration_ms", "averages", "timestamp",
        "units", "name", "operator")


def _same_meta(a: dict, b: dict, keys: tuple[str, ...] = KEYS) -> None:
    for k in keys:
        assert a.get(k) == b.get(k), (k, a.get(k), b.get(k))


@pytest.mark.parametrize(("ext", "fmt"), [(".csv", "csv"), (".jdx", "jcamp"),
                                          (".h5", "ramanid-h5")])
def test_real_files_roundtrip(tmp_path: Path, shared_data: Path, ext: str, fmt: str) -> None:
    sources = [shared_data / "enlighten" / "library" / "caffeine.csv",
               shared_data / "enlighten" / "library-older" / "acetaminophen.csv",
               shared_data / "charisma" / "ICV_BW785" / "PST02_iRPlus785_Z050_100_3200ms.txt"]
    for src in sources:
        b = read(src)
        out = tmp_path / f"{src.stem}{ext}"
        write(b, out)
        assert detect_format(out) == fmt
        r = read(out)
        np.testing.assert_allclose(r.axis, b.axis, rtol=1e-12)
        np.testing.assert_array_equal(r.intensity, b.intensity)
        _same_meta(b.meta[0], r.meta[0])
        assert r.meta[0]["format"] == fmt or fmt == "ramanid-h5"
        assert r.meta[0]["source"].startswith(str(out))


def test_csv_header_is_readable_text(tmp_path: Path, shared_data: Path) -> None:
    b = read(shared_data / "enlighten" / "library" / "caffeine.csv")
    out = tmp_path / "c.csv"
    write(b, out)
    head = out.read_text().splitlines()[:30]
    assert head[0] == "# ramanid csv 1"
    assert "# device_serial: WP-01990" in head
    assert any(line.startswith("# laser_nm: 784.896") for line in head)
    r = read(out)
    assert r.meta[0]["wavecal_coeffs"] == b.meta[0]["wavecal_coeffs"]  # lists survive


def test_write_replaces_target_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "keep.csv"
    out.write_text("100,1\n101,2\n")
    batch = SpectrumBatch.single([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], name="new")
    write(batch, out)
    assert read(out).meta[0]["name"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]  # no temporary files


_val = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                       exclude_characters="#"), min_size=1, max_size=20)


@st.composite
def batches(draw: st.DrawFn) -> SpectrumBatch:
    n_pts = draw(st.integers(2, 40))
    steps = draw(st.lists(st.floats(0.01, 50), min_size=n_pts - 1, max_size=n_pts - 1))
    axis = draw(st.floats(-300, 4000)) + np.concatenate([[0.0], np.cumsum(steps)])
    axis = np.unique(axis)
    if axis.size < 2:
        axis = np.array([0.0, 1.0])
    n_spec = draw(st.integers(1, 3))
    y = np.array([[draw(_val) for _ in range(axis.size)] for _ in range(n_spec)])
    meta = [{"device_serial": draw(_text), "laser_nm": draw(st.floats(400, 1100)),
             "integration_ms": draw(st.floats(0.5, 1e5)), "averages": draw(st.integers(1, 99)),
             "name": draw(_text)} for _ in range(n_spec)]
    return SpectrumBatch(axis, y, meta)


@settings(max_examples=40, deadline=None)
@given(batch=batches(), ext=st.sampled_from([".csv", ".jdx", ".h5"]))
def test_roundtrip_property(tmp_path_factory: pytest.TempPathFactory, batch: SpectrumBatch,
                            ext: str) -> None:
    out = tmp_path_factory.mktemp("rt") / f"b{ext}"
    write(batch, out)
    r = read(out)
    assert len(r) == len(batch)
    np.testing.assert_allclose(r.axis, batch.axis, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(r.intensity, batch.intensity)
    for a, b in zip(batch.meta, r.meta, strict=True):
        _same_meta(a, b, ("device_serial", "laser_nm", "integration_ms", "averages", "name"))


def test_archive_with_two_axes(tmp_path: Path) -> None:
    from ramanid.io.archive import write_archive

    a = SpectrumBatch(np.arange(100.0, 110.0), np.ones((2, 10)), [{"name": "a"}, {"name": "b"}])
    b = SpectrumBatch.single(np.arange(200.0, 205.0), np.arange(5.0), name="c")
    out = tmp_path / "two.h5"
    write_archive(out, [a, b])
    assert detect_format(out) == "ramanid-h5"
    got = read_batches(out)
    assert [len(g) for g in got] == [2, 1]
    assert [m["name"] for g in got for m in g.meta] == ["a", "b", "c"]
    with pytest.raises(InputError, match="read_batches"):
        read(out)
