"""UTF-16 (BOM) and UTF-8-BOM text exports read like UTF-8 text (follow-up 11:40)."""

from __future__ import annotations

import numpy as np
import pytest

from ramanid.errors import InputError
from ramanid.io import detect_format, read
from ramanid.io.bwtek import read_columns

FILES = ["enlighten/library/caffeine.csv",
         "charisma/ICV_BW785/PST02_iRPlus785_Z050_100_3200ms.txt",
         "charisma/TOP_Ho633/Si_HLR633_Z010_100_40sx5.txt",
         "formats/jcamp/data/raman_spectra/tannic_acid.jdx"]
ENCODINGS = [("utf-16", b""), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
             ("utf-8", b"\xef\xbb\xbf")]


def _reencode(src, dst, codec: str, bom: bytes) -> None:
    dst.write_bytes(bom + src.read_bytes().decode("utf-8").encode(codec))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rel", FILES)
@pytest.mark.parametrize(("codec", "bom"), ENCODINGS)
def test_bom_text_reads_like_utf8(shared_data, tmp_path, rel, codec, bom):
    src = shared_data / rel
    try:
        src.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("source is not UTF-8 text")
    dst = tmp_path / ("u" + src.suffix)
    _reencode(src, dst, codec, bom)
    assert dst.read_bytes()[:2] != src.read_bytes()[:2]
    assert detect_format(dst) == detect_format(src)
    a, b = read(src), read(dst)
    assert np.array_equal(a.axis, b.axis) and np.array_equal(a.intensity, b.intensity)
    assert {k: v for k, v in b.meta[0].items() if k != "source"} == \
        {k: v for k, v in a.meta[0].items() if k != "source"}


@pytest.mark.timeout(60)
def test_bwtek_pixel_columns_from_utf16(shared_data, tmp_path):
    src = shared_data / FILES[1]
    dst = tmp_path / "bw.txt"
    _reencode(src, dst, "utf-16", b"")
    h0, c0 = read_columns(src)
    h1, c1 = read_columns(dst)
    assert h0 == h1 and c0.keys() == c1.keys()
    assert all(np.array_equal(c0[k], c1[k], equal_nan=True) for k in c0)


def test_binary_after_a_utf16_bom_is_still_refused(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"\xff\xfe" + bytes(range(1, 32)) * 40)
    with pytest.raises(InputError, match="binary"):
        read(f)
    g = tmp_path / "odd.csv"  # a lone high surrogate mid-file is not valid UTF-16
    g.write_bytes(b"\xff\xfe" + "1,2\n".encode("utf-16-le") + b"\x00\xd8" +
                  "3,4\n5,6\n".encode("utf-16-le"))
    with pytest.raises(InputError):
        read(g)


@pytest.mark.parametrize("name", ["$$", "a $$ b", '"quoted"', "$", "plain"])
def test_jcamp_metadata_with_comment_marker_round_trips(tmp_path, name):
    """``$$`` starts a JCAMP-DX comment: ramanid's own metadata LDRs must survive it."""
    from ramanid.io import write
    from ramanid.spectrum import SpectrumBatch

    b = SpectrumBatch(np.array([0.0, 1.0]), np.ones((1, 2)), [{"name": name, "tags": ["$$", 1]}])
    out = tmp_path / "c.jdx"
    write(b, out)
    m = read(out).meta[0]
    assert m["name"] == name and m["tags"] == ["$$", 1]
