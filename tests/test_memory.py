"""ramanid.memory.keep_heap: large arrays reused from the heap, not page-faulted in afresh."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
from ramanid.memory import keep_heap
applied = keep_heap() if sys.argv[1] == "tuned" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def chunk():   # a chunk's worth of large temporaries, freed together (as the engine's)
    big = [np.ones((1024, 2496), dtype=np.float32) for _ in range(4)]   # 4 x 10 MiB
    huge = np.ones((1024, 10240), dtype=np.float32)                      # 40 MiB
    del big, huge
for _ in range(3):                       # warm-up: the heap reaches its size
    chunk()
before = faults()
for _ in range(20):
    chunk()
print(applied, faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_keep_heap_stops_page_faults_of_repeated_large_arrays() -> None:
    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        return out[0], int(out[1])

    applied, tuned = run("tuned")
    if applied != "True":
        pytest.skip("not glibc")
    _, plain = run("plain")
    # plain: the 40 MiB block is mapped afresh for every chunk and faulted in again
    # (thousands of faults per chunk); tuned: reused from the heap
    assert plain > 20 * 1000 and tuned * 20 < plain, (plain, tuned)
