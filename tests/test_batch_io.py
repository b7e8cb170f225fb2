"""Result tables of ``ramanid batch``: part files, the assembled Parquet file, the counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ramanid import batch_io
from ramanid.batch_job import Summary
from ramanid.hazard import is_alarm

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ipc = pytest.importorskip("pyarrow.ipc")


def _table(n: int, seed: int) -> batch_io.Table:
    """Rows with repeated, unique, empty and unknown text, NaN floats and booleans."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, 3, n)
    subst = [json.dumps([{"name": "Fentanyl", "fraction": 0.2}]),
             json.dumps([{"name": "Carfentanil"}, {"name": "Fentanyl"}]), "[]"]
    return batch_io.make_table(
        n,
        scan_id=[f"id{seed}-{i}" for i in range(n)],
        source=[f"a.h5#{i}" for i in range(n)],
        status=np.where(pick == 2, "error", "ok").astype(object),
        error=[("engine error: x" if p == 2 else None) for p in pick],
        verdict=np.array(["match", "mixture", None], dtype=object)[pick],
        hazard_level=np.array(["none", "high", "extreme"], dtype=object)[pick],
        hazard_substances=np.array(subst, dtype=object)[pick],
        top_name=np.array(["Ethanol", "", None], dtype=object)[pick],   # "" is unknown
        top_score=np.where(pick == 1, np.nan, rng.random(n)),
        candidates=[json.dumps([{"id": str(i), "score": float(x)}])
                    for i, x in enumerate(rng.random(n))],
        recipe=np.full(n, json.dumps({"axis": {"start": 400, "stop": 1800}}), dtype=object),
        warnings=np.array(["[]", '[{"code":"calibration_old"}]'], dtype=object)[pick % 2],
        simulated=np.array([True, False, None], dtype=object)[pick],
        timestamp=[f"2025-01-01T00:00:{i % 60:02d}Z" for i in range(n)],
    )


def _write_plain_part(table: batch_io.Table, path: Path) -> None:
    """A part file as ramanid wrote them before dictionary columns (plain strings, LZ4)."""
    data = batch_io._arrow_table(table, batch_io.RESULT_COLUMNS)
    options = ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4_frame")
                                  else None)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, data.schema,
                                                          options=options) as writer:
        writer.write_table(data)


def _assemble(parts: list[Path], out: Path) -> int:
    """Parts into one Parquet result, as a job assembles them; the rows written."""
    assembler = batch_io.PartAssembler(out, "parquet")
    for part in parts:
        assembler.append(part)
    assembler.close()
    return assembler.rows


def test_parts_hold_repeated_text_as_dictionaries_and_the_result_plain_strings(
        tmp_path: Path) -> None:
    tables = [_table(50, 1), _table(70, 2), _table(30, 3)]
    parts = []
    for i, t in enumerate(tables):
        parts.append(tmp_path / f"part-{i}.arrow")
        if i == 1:   # a checkpoint of an older version (resumed job): plain strings
            _write_plain_part(t, parts[-1])
        else:
            batch_io.write_table(t, parts[-1], "arrow")
    part = batch_io._read_arrow(parts[0])
    for name, _ in batch_io.RESULT_COLUMNS:
        typ = part.schema.field(name).type
        assert pa.types.is_dictionary(typ) == (name in batch_io.DICTIONARY_COLUMNS), name
    out = tmp_path / "res.parquet"
    assert _assemble(parts, out) == 150
    got = pq.read_table(out)
    want = pa.concat_tables([batch_io._arrow_table(t, batch_io.RESULT_COLUMNS) for t in tables])
    assert got.schema.equals(want.schema)          # plain strings, doubles, booleans
    assert got.equals(want)
    assert [r["top_name"] for r in batch_io.iter_results(out)][:3] == \
        [r["top_name"] for r in batch_io.iter_results(out, columns=["top_name"])][:3]
    meta = pq.ParquetFile(out).metadata
    assert meta.metadata is None or b"ARROW:schema" not in meta.metadata
    assert meta.num_row_groups == 3
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j, (name, kind) in enumerate(batch_io.RESULT_COLUMNS):
            col = group.column(j)
            dictionary = "RLE_DICTIONARY" in col.encodings or "PLAIN_DICTIONARY" in col.encodings
            if kind != "bool":   # (Parquet has no dictionary for booleans)
                assert dictionary == (name not in batch_io.UNIQUE_COLUMNS), name
            assert col.is_stats_set == (kind != "json"), name


def test_an_empty_parquet_result_has_the_plain_schema(tmp_path: Path) -> None:
    out = tmp_path / "empty.parquet"
    assert _assemble([], out) == 0
    got = pq.read_table(out)
    assert got.num_rows == 0
    assert got.schema.equals(batch_io._arrow_schema(batch_io.RESULT_COLUMNS))


def _summary_row_by_row(table: batch_io.Table) -> Summary:
    """The counts as the first version made them (one row at a time)."""
    s = Summary(scans=batch_io.table_len(table))
    s.errors = int((table["status"] == "error").sum())
    s.verdicts = Counter(v for v in table["verdict"].tolist() if v is not None)
    s.hazard_levels = Counter(v for v in table["hazard_level"].tolist() if v is not None)
    alarm = np.array([is_alarm(v) for v in table["hazard_level"].tolist()], dtype=bool)
    sim = np.array([v is True for v in table["simulated"].tolist()], dtype=bool)
    s.simulated, s.simulated_alarms = int(sim.sum()), int((sim & alarm).sum())
    for text in table["hazard_substances"][alarm].tolist():
        for item in json.loads(text) if text else []:
            s.hazard_substances[item["name"]] += 1
    return s


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_summary_counts_equal_a_row_by_row_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    names = ["Fentanyl", "Carfentanil", "Ammonium nitrate", "Acetylfentanyl"]
    subst = ["[]"] + [json.dumps([{"name": a}, {"name": b}]) for a in names for b in names
                      if a != b][:7] + [json.dumps([{"name": a}]) for a in names]
    table = batch_io.make_table(
        n, status=np.array(["ok", "error"], dtype=object)[(rng.random(n) < 0.1).astype(int)],
        verdict=rng.choice(np.array(["match", "mixture", "no_match", None], dtype=object), n),
        hazard_level=rng.choice(np.array(["none", "low", "high", "extreme", None],
                                         dtype=object), n),
        hazard_substances=rng.choice(np.array(subst, dtype=object), n),
        simulated=rng.choice(np.array([True, False, None], dtype=object), n))
    got, want = Summary.of_table(table), _summary_row_by_row(table)
    for key in ("scans", "errors", "simulated", "simulated_alarms"):
        assert getattr(got, key) == getattr(want, key), key
    for key in ("verdicts", "hazard_levels", "hazard_substances"):   # key order too
        assert list(getattr(got, key).items()) == list(getattr(want, key).items()), key
