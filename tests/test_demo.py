"""``ramanid demo``: bundled examples, simulated mixture, simulator scan, verdicts and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramanid.cli import main
from ramanid.cli.demo import EXAMPLES, examples_dir, simulate_mixture

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def library():
    from ramanid.library import load_library

    return load_library()


def _has_opioid_entry(library) -> bool:
    return any("fentanyl" in e.substance_class.lower() for e in library.entries)


def test_examples_are_real_files_with_their_licence():
    folder = examples_dir()
    assert (folder / "LICENSE").read_text().startswith("MIT License")
    readme = (folder / "README.md").read_text()
    from ramanid.io import read

    for name in (*EXAMPLES, "acetaminophen.csv"):
        assert name in readme
        batch = read(folder / name)
        assert len(batch) == 1 and batch.n_points > 1000
        assert not any("simulated" in str(v).lower() for v in batch.meta[0].values())
    assert "measured" in readme and "SIMULATED" in readme


@pytest.mark.timeout(180)
def test_demo_raises_the_alarm_and_writes_plots(tmp_path, capsys, library):
    out = tmp_path / "demo out"
    status = main(["demo", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0  # the demo's alarms are the demonstration, not a failure
    assert "DANGER" in text
    assert "identified: lactose" in text.lower()
    assert "identified: ammonium nitrate" in text.lower()
    assert f"Plots written to: {out.resolve()}" in text
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 2
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
    for p in pngs:
        assert f"Plot written: {p}" in text
    if _has_opioid_entry(library):
        assert "POSSIBLE FENTANYL-CLASS OPIOID" in text
        assert "SIMULATED" in text
        sims = list(out.glob("SIMULATED*.csv"))
        assert len(sims) == 1
        # the saved copy reads back and is still labelled simulated by name
        from ramanid.io import read

        assert read(sims[0]).n_points > 1000


@pytest.mark.timeout(180)
def test_demo_json_and_language(tmp_path, capsys, library):
    status = main(["demo", "--out", str(tmp_path), "--json", "--lang", "ru"])
    captured = capsys.readouterr()
    assert status == 0
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) >= 2
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in records}
    assert by_name["ammonium_nitrate.csv"]["hazard"]["level"] in ("high", "extreme")
    assert by_name["lactose.csv"]["hazard"]["level"] in ("none", "low")
    simulated = [r for r in records if r.get("simulated")]
    measured = [r for r in records if not r.get("simulated")]
    assert {r["source"].rsplit("/", 1)[-1] for r in measured} == set(EXAMPLES)
    if _has_opioid_entry(library):
        mix = next(r for r in simulated if r["source"].startswith("SIMULATED-mixture"))
        assert mix["hazard"]["level"] == "extreme"
    assert "Демонстрация ramanid" in captured.err  # notes go to stderr in JSON mode


def test_simulated_mixture_is_labelled_and_reproducible(library):
    from ramanid.io import read

    if not _has_opioid_entry(library):
        pytest.skip("the library has no fentanyl-class entry yet")
    entry = next(e for e in library.entries if "fentanyl" in e.substance_class.lower())
    base = read(examples_dir() / "lactose.csv")
    a = simulate_mixture(base, library, entry, 0.2, seed=3)
    b = simulate_mixture(base, library, entry, 0.2, seed=3)
    assert np.array_equal(a.intensity, b.intensity)
    assert a.meta[0]["simulated"] is True
    assert a.meta[0]["source"].startswith("SIMULATED-mixture_20pct-")
    assert entry.provenance_kind in a.meta[0]["source"]
    # no opioid and no noise: the base scan's shape comes back exactly
    pure = simulate_mixture(base, library, entry, 0.0, noise=0.0)
    r = np.corrcoef(pure.intensity[0], base.intensity[0])[0, 1]
    assert r > 0.999999
    # with the opioid in, the scan departs from the base
    r_mix = np.corrcoef(a.intensity[0], base.intensity[0])[0, 1]
    assert r_mix < 0.99


@pytest.mark.timeout(60)
def test_demo_with_an_unwritable_out_folder_is_one_line(capsys):
    assert main(["demo", "--out", "/proc/ramanid-demo"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cannot create the figure folder /proc/ramanid-demo" in lines[0]
    assert "Traceback" not in captured.err
