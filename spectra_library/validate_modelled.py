"""Validate the modelled-entry procedure against measured spectra (development tool).

The procedure that makes the modelled opioid entries (published band positions -> Lorentzian bands,
:mod:`ramanid.spectra_library.modelled`) is applied, unchanged, to substances we have measured:
band lists from ASTM E1840 (positions and intensity classes) and from the literature (positions,
intensity classes estimated exactly as for the opioids) and the phenyl-ring bands of the modelled
fentanyl entry itself (template) against measured monosubstituted benzenes. Each modelled
spectrum is compared with
the measured one, as in docs/insilico.md:

* band-position error: each listed band against the measured maximum within +-12 cm-1;
* Pearson r over 400-1800 cm-1 of the spectra as rendered/measured, and Pearson r under the
  library recipe (what the engine scores);
* strongest band modelled / measured (400-1800 cm-1);
* identification: rank of the measured entry of the same substance when the modelled spectrum is
  matched against every measured entry of the default library (top hit and its score).

Run::

    python -m ramanid.spectra_library.validate_modelled [--json OUT.json] [--plot OUT.png]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BANDS = HERE / "validation_bands.json"
ASTM = HERE / "sources" / "enlighten" / "astm-e1840-peaks.json"
LO, HI, WINDOW = 400.0, 1800.0, 12.0


def band_list(spec: dict[str, Any], doc: dict[str, Any]) -> list[list[Any]]:
    """``[position, relative intensity, label]`` of one validation substance."""
    if spec["kind"] == "astm":
        astm = json.loads(ASTM.read_text())["Compounds"][spec["astm"]]
        cmap = doc["astm_class_map"]
        out = []
        for pos, d in astm.items():
            if float(pos) in spec.get("exclude", []):
                continue
            cls = "Primary" if d.get("Primary") else str(d.get("Intensity"))
            out.append([float(pos), cmap[cls], f"ASTM class {cls}"])
        return out
    if spec["kind"] == "template":
        defs = json.loads((HERE / "modelled.json").read_text())["entries"]
        src = next(d for d in defs if d["name"] == spec["template"])
        return [list(b) for b in src["bands"] if spec["assignment_contains"] in b[2]]
    wmap = doc["word_class_map"]
    return [[float(p), wmap[c], label] for p, c, label in spec["bands"]]


def validate(recipe: Any = None) -> list[dict[str, Any]]:
    """Rows of the validation table (see module docstring)."""
    from ramanid.spectra_library.modelled import render_bands

    from ramanid.io import read
    from ramanid.library import load_library, recipe_from_dict
    from ramanid.spectrum import SpectrumBatch

    doc = json.loads(BANDS.read_text())
    proc = json.loads((HERE / "modelled.json").read_text())["procedure"]
    lib = load_library(trusted_keys=[])
    recipe = recipe or recipe_from_dict(lib.recipe)
    measured_lib = lib.select(lambda e: e.provenance_kind == "measured")
    rows = []
    for spec in doc["substances"]:
        bands = band_list(spec, doc)
        m = read(HERE / spec["measured"])
        ax, y = m.axis, m.intensity[0]
        model = render_bands(ax, bands, float(proc["fwhm_cm1"][spec["state"]]))
        sel = (ax >= LO) & (ax <= HI)
        errs = []
        for pos, _, _ in bands:
            w = sel & (np.abs(ax - pos) <= WINDOW)
            if pos < LO or pos > HI or not w.any():
                continue
            errs.append(abs(ax[w][np.argmax(y[w])] - pos))
        r_plain = float(np.corrcoef(model[sel], y[sel])[0, 1])
        P = recipe.process(SpectrumBatch(ax, np.vstack([model, y]))).X.astype(np.float64)
        r_recipe = float(P[0] @ P[1])
        scores = measured_lib.matrix.astype(np.float64) @ P[0]
        order = np.argsort(-scores)
        names = [measured_lib.entries[i].substance for i in order]
        target = measured_lib.entries_by(name=spec["name"])[0].substance
        rank = names.index(target) + 1 if target in names else None
        rows.append({
            "substance": spec["name"], "band_list": spec["kind"],
            "bands_in_range": len(errs),
            "band_mae_cm1": round(float(np.mean(errs)), 2) if errs else None,
            "band_max_err_cm1": round(float(np.max(errs)), 2) if errs else None,
            "r_400_1800": round(r_plain, 3), "r_recipe": round(r_recipe, 3),
            "strongest_model": float(ax[sel][np.argmax(model[sel])]),
            "strongest_measured": float(ax[sel][np.argmax(y[sel])]),
            "top_hit": measured_lib.entries[order[0]].name,
            "top_score": round(float(scores[order[0]]), 3), "rank_of_same_substance": rank,
        })
    return rows


def plot_validation(out: str) -> str:
    """Figure: modelled (dashed) over measured (solid) spectra under the library recipe, and the
    modelled opioid entries over the measured monosubstituted benzenes they resemble."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ramanid.spectra_library.modelled import render_bands

    from ramanid.atomic import atomic_path
    from ramanid.io import read
    from ramanid.library import load_library, recipe_from_dict
    from ramanid.spectrum import SpectrumBatch

    doc = json.loads(BANDS.read_text())
    proc = json.loads((HERE / "modelled.json").read_text())["procedure"]
    lib = load_library(trusted_keys=[])
    recipe = recipe_from_dict(lib.recipe)
    specs = [s for s in doc["substances"] if s["kind"] != "template"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 1.2 * len(specs) + 1.5))
    for k, spec in enumerate(specs):
        m = read(HERE / spec["measured"])
        model = render_bands(m.axis, band_list(spec, doc), float(proc["fwhm_cm1"][spec["state"]]))
        P = recipe.process(SpectrumBatch(m.axis, np.vstack([model, m.intensity[0]])))
        r = float(P.X[0].astype(np.float64) @ P.X[1])
        a1.plot(P.axis, P.X[1] - 0.35 * k, "k", lw=0.8)
        a1.plot(P.axis, P.X[0] - 0.35 * k, "r--", lw=0.8)
        a1.text(P.axis[0] + 5, 0.08 - 0.35 * k, f"{spec['name']} ({spec['kind']}) r={r:.2f}",
                fontsize=8)
    a1.set_title("procedure check: modelled (red dashed) vs measured (black)", fontsize=9)
    names = [e.name for e in lib.entries if e.provenance_kind == "modelled"] + [
        "Polystyrene", "Toluene"]
    for k, n in enumerate(names):
        e = lib.entries_by(name=n)[0]
        row = lib.processed(e.id)
        a2.plot(lib.axis, row - 0.35 * k, "r" if e.provenance_kind == "modelled" else "k",
                lw=0.8)
        a2.text(lib.axis[0] + 5, 0.08 - 0.35 * k, f"{n} ({e.provenance_kind})", fontsize=8)
    a2.set_title("MODELLED opioid entries (red) and measured look-alikes (black)", fontsize=9)
    for a in (a1, a2):
        a.set_xlabel("Raman shift (cm$^{-1}$)")
        a.set_yticks([])
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table in Markdown."""
    head = ("| substance | band list | bands | band MAE (max) cm-1 | r 400-1800 | r recipe | "
            "strongest model / measured | top hit of modelled spectrum (score) | rank |")
    lines = [head, "|" + " --- |" * 9]
    for r in rows:
        lines.append(
            f"| {r['substance']} | {r['band_list']} | {r['bands_in_range']} | "
            f"{r['band_mae_cm1']} ({r['band_max_err_cm1']}) | {r['r_400_1800']} | "
            f"{r['r_recipe']} | {r['strongest_model']:.0f} / {r['strongest_measured']:.0f} | "
            f"{r['top_hit']} ({r['top_score']}) | {r['rank_of_same_substance']} |")
    rs = [r["r_recipe"] for r in rows]
    maes = [r["band_mae_cm1"] for r in rows if r["band_mae_cm1"] is not None]
    lines.append(f"\nmedian r (recipe) {np.median(rs):.3f}, min {min(rs):.3f}; mean band MAE "
                 f"{np.mean(maes):.2f} cm-1; same substance ranked first in "
                 f"{sum(r['rank_of_same_substance'] == 1 for r in rows)}/{len(rows)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the validation table; ``--json OUT`` also writes the rows."""
    p = argparse.ArgumentParser(prog="python -m ramanid.spectra_library.validate_modelled")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--plot", metavar="OUT.png")
    args = p.parse_args(argv)
    rows = validate()
    print(format_markdown(rows))
    if args.plot:
        print(f"figure written to {plot_validation(args.plot)}")
    if args.json:
        from ramanid.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
