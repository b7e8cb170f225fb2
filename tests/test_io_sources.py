"""Each spectrum of a multi-spectrum file has its own ``source``: ``<path>#<index>`` (11:45)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ramanid.io import read, read_batches, write
from ramanid.spectrum import SpectrumBatch

SPC = "formats/spc/test_data"
JDX = "formats/jcamp/data/Robert_J_Lancashire_test_data"


def _sources(path) -> list[str]:
    return [m["source"] for b in read_batches(path) for m in b.meta]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rel", [f"{SPC}/4d_map.spc", f"{SPC}/m_xyxy.spc", f"{SPC}/m_evenz.spc",
                                 f"{JDX}/compound.jdx"])
def test_multi_spectrum_files_index_each_spectrum(shared_data, rel):
    f = shared_data / rel
    src = _sources(f)
    assert len(src) > 1
    assert src == [f"{f}#{i}" for i in range(len(src))]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rel", ["enlighten/library/caffeine.csv", f"{SPC}/RAMAN.SPC"])
def test_single_spectrum_files_keep_the_plain_path(shared_data, rel):
    f = shared_data / rel
    assert _sources(f) == [str(f)]


def test_multi_column_csv_and_link_jcamp(tmp_path):
    b = SpectrumBatch(np.arange(200.0, 260.0), np.random.default_rng(0).random((3, 60)) + 1.0,
                      [{"name": n} for n in "abc"])
    for ext in (".csv", ".jdx"):
        out = tmp_path / f"three{ext}"
        write(b, out)
        r = read(out)
        assert [m["source"] for m in r.meta] == [f"{out}#{i}" for i in range(3)]
        assert [m["name"] for m in r.meta] == ["a", "b", "c"]


@pytest.mark.timeout(120)
def test_identify_json_gives_distinct_sources(shared_data, tmp_path):
    f = shared_data / SPC / "4d_map.spc"
    env = {**os.environ, "RAMANID_HOME": str(tmp_path / "h")}
    r = subprocess.run([sys.executable, "-m", "ramanid", "identify", str(f), "--json"],
                       capture_output=True, text=True, env=env, timeout=110)
    recs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]  # JSON lines
    srcs = [x["source"] for x in recs]
    assert len(srcs) == len(set(srcs)) > 1, r.stderr[-500:]
    assert srcs[0] == f"{f}#0"
