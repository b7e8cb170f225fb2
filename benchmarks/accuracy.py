"""Accuracy of the ramanid engine against two open peers, side by side (run by hand).

    python benchmarks/accuracy.py [--reps N] [--seed S]

Library (built in memory with the current recipe, from the raw spectra stored in the shipped
default library): the 80 measured ENLIGHTEN spectra of one WP-785XS unit
(../shared/data/enlighten/library), plus the hazardous entries: ammonium nitrate (MEASURED,
explosive precursor, ../shared/data/enlighten/library-older) and the library's 7 MODELLED
fentanyl-class opioids. The modelled opioids are stand-ins built from published marker bands,
not measured spectra: results on them test the machinery, not the identification of a real
opioid sample.

Parts
1. Cross-instrument: queries measured on other instruments: library-older (another Wasatch
   unit; benzonitrile and sulfur are not in the library -> correct answer "no match"; ammonium
   nitrate IS the library's own entry and is reported apart) and the raw CHARISMA polystyrene
   spectra (B&W Tek and Horiba, 532/785 nm, baseline and fluorescence left in).
2. Perturbation suite on every measured library spectrum (as its own query): noise, fluorescence
   with shot noise, axis shifts, lower resolution, partial range; and a hold-out test (the
   substance removed from the library, then queried: correct answer "no match").
3. Simulated mixtures: each hazardous entry with each measured cutting agent at 50/20/10/5 %
   spectral fraction (unit-norm centred spectra mixed), peak SNR 100, fluorescence background
   2x the band height with shot noise; hazard detection rate per fraction, and false alarms on
   pure cutting agents (same noise), on every non-hazard library entry, and on the real
   cross-instrument scans of part 1.

Peers (benchmarks/_peers.py): ENLIGHTEN (airPLS baseline as its default, Pearson per entry on
interpolated spectra, accept r >= 0.65) and Open Specy (SG first derivative, |.|, min-max,
Pearson as one product, best hit accepted at r >= 0.65). A peer "alarms" when its accepted best
hit is a hazardous entry (they have no hazard layer).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, os.path.dirname(__file__))

from _peers import ENLIGHTEN_MIN_SCORE, Enlighten, OpenSpecy, current_library, files

from ramanid.identify import HAZARD_LEVELS, VERDICTS, Identifier
from ramanid.io import read
from ramanid.spectrum import SpectrumBatch

CUTS = ("Caffeine", "Lactose", "Glucose", "Sucrose", "Fructose", "Acetaminophen",
        "Sodium bicarbonate", "Calcium carbonate", "Citric acid", "Sodium carbonate")
PEAK = 10000.0  # counts at the tallest band


# ------------------------------------------------------------------------------------------
# library and methods
# ------------------------------------------------------------------------------------------
class Bench:
    """The benchmark library in the three methods' forms."""

    def __init__(self, exclude_substance: str | None = None, thresholds=None) -> None:
        def keep(e) -> bool:
            wanted = (e.acquisition.get("set") == "enlighten-library"
                      or e.name == "Ammonium nitrate" or e.provenance_kind != "measured")
            return wanted and e.substance != exclude_substance

        self.library = current_library(keep)
        self.raw = {e.name: self.library.raw(e.id) for e in self.library.entries}
        self.meta = {e.name: e for e in self.library.entries}
        self.names = [e.name for e in self.library.entries]
        self.subst = [e.substance for e in self.library.entries]
        self.hazard = np.array([e.hazard_level in ("high", "extreme")
                                for e in self.library.entries])
        self.ident = Identifier(self.library, thresholds=thresholds)
        axes = [self.raw[n][0] for n in self.names]
        vals = [self.raw[n][1] for n in self.names]
        self.enlighten = Enlighten(axes, vals)
        self.openspecy = OpenSpecy(self.library.axis, axes, vals)

    # each returns (accepted substance or None, alarm bool) per query row
    def ramanid(self, axis: np.ndarray, Y: np.ndarray):
        rs = self.ident.run(SpectrumBatch(axis, Y))
        out = []
        for i in range(len(rs)):
            v = VERDICTS[rs.verdict[i]]
            if v == "match":
                pred = self.subst[rs.top_ids[i, 0]]
            elif v == "mixture":
                pred = "+".join(sorted(self.subst[j] for j in rs.comp_ids[i] if j >= 0))
            else:
                pred = None if v == "no_match" else "inconclusive"
            out.append((pred, HAZARD_LEVELS[rs.hazard_level[i]] in ("high", "extreme")))
        return out

    def peer_enlighten(self, axis: np.ndarray, Y: np.ndarray):
        from pybaselines import Baseline
        fitter = Baseline(axis)
        out = []
        for y in Y:
            z = y - fitter.airpls(y)[0]
            i, r = self.enlighten.best(axis, z)
            ok = r >= ENLIGHTEN_MIN_SCORE
            out.append((self.subst[i] if ok else None, bool(ok and self.hazard[i])))
        return out

    def peer_openspecy(self, axis: np.ndarray, Y: np.ndarray):
        S = self.openspecy.scores(axis, Y)
        i = S.argmax(axis=1)
        r = S[np.arange(len(i)), i]
        return [(self.subst[j] if s >= ENLIGHTEN_MIN_SCORE else None,
                 bool(s >= ENLIGHTEN_MIN_SCORE and self.hazard[j]))
                for j, s in zip(i, r, strict=False)]


METHODS = (("ramanid", "ramanid"), ("ENLIGHTEN", "peer_enlighten"),
           ("OpenSpecy", "peer_openspecy"))


def run_all(bench: Bench, axis, Y):
    return {name: getattr(bench, fn)(axis, Y) for name, fn in METHODS}


def pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


# ------------------------------------------------------------------------------------------
# synthetic queries from real spectra
# ------------------------------------------------------------------------------------------
AXIS = np.arange(300.0, 2301.0, 1.0)


def unit(bench: Bench, name: str, axis: np.ndarray = AXIS) -> np.ndarray:
    ax, v = bench.raw[name]
    s = np.interp(axis, ax, v, left=np.nan, right=np.nan)
    s = np.where(np.isfinite(s), s, np.nanmedian(s))
    s = s - np.median(s)
    return s / np.linalg.norm(s - s.mean())


def finish(y: np.ndarray, rng, snr: float = 200.0, fluor: float = 0.0) -> np.ndarray:
    y = y * PEAK / y.max()
    if fluor:
        t = (AXIS - AXIS[0]) / np.ptp(AXIS)
        bg = fluor * PEAK * (0.7 * np.exp(-2.5 * t) + 0.3 + 0.2 * t**2)
        y = y + bg + rng.normal(0, 1, y.shape) * np.sqrt(bg)
    return y + rng.normal(0, PEAK / snr, y.shape)


def perturbations():
    yield "clean (SNR 200)", {}
    for snr in (50, 20, 10):
        yield f"noise SNR {snr}", {"snr": snr}
    for k in (1, 5, 20, 50):
        yield f"fluorescence {k}x band (shot noise)", {"fluor": k}
    for d in (-10, -5, -2, 2, 5, 10):
        yield f"shift {d:+d} cm-1", {"shift": d}
    for fwhm in (8, 15):
        yield f"resolution {fwhm} cm-1, 4 cm-1 grid", {"fwhm": fwhm}
    for lo, hi in ((600, 1800), (310, 1200), (800, 1600)):
        yield f"range {lo}-{hi} only", {"crop": (lo, hi)}


def perturb(bench: Bench, names, spec, rng):
    axis = AXIS
    rows = np.vstack([finish(unit(bench, n), rng, spec.get("snr", 200.0), spec.get("fluor", 0.0))
                      for n in names])
    if "shift" in spec:
        axis = AXIS + spec["shift"]
    if "fwhm" in spec:
        rows = gaussian_filter1d(rows, spec["fwhm"] / 2.355, axis=1)
        axis, rows = AXIS[::4], rows[:, ::4]
    if "crop" in spec:
        sel = (AXIS >= spec["crop"][0]) & (AXIS <= spec["crop"][1])
        axis, rows = AXIS[sel], rows[:, sel]
    return axis, rows


# ------------------------------------------------------------------------------------------
def part1(bench: Bench) -> None:
    print("\n== 1. Cross-instrument (real scans from other instruments) ==")
    queries = []
    for f in files("enlighten/library-older/*.csv"):
        sub = os.path.basename(f)[:-4].lower().replace(" ", "-")
        queries.append((f, sub if sub in bench.subst else None))
    for f in files("charisma/*/PST*.txt"):
        queries.append((f, "polystyrene"))
    tally = {m: [0, 0] for m, _ in METHODS}
    print(f"{'query':48s} {'expected':14s} " + " ".join(f"{m:>22s}" for m, _ in METHODS))
    for f, want in queries:
        b = read(f)
        res = run_all(bench, b.axis, b.intensity.astype(np.float64))
        label = "/".join(f.split(os.sep)[-2:])[-48:]
        own = "ammonium" in f
        cells = []
        for m, _ in METHODS:
            pred, alarm = res[m][0]
            ok = pred == want if not own else pred == "ammonium-nitrate"
            if not own:
                tally[m][0] += ok
                tally[m][1] += 1
            cells.append(f"{str(pred)[:14]:>14s}{'!' if alarm else ' '} {'ok' if ok else 'XX'}")
        print(f"{label:48s} {str(want)[:14]:14s} " + " ".join(f"{c:>22s}" for c in cells)
              + ("   (self: the library's own entry)" if own else ""))
    print("accuracy (excluding the self query): " + ", ".join(
        f"{m} {t[0]}/{t[1]}" for m, t in tally.items()) + "   ('!' = hazard alarm)")


def part2(bench: Bench, reps: int, seed: int) -> None:
    print("\n== 2. Perturbation suite (every measured library spectrum as query) ==")
    names = [n for n, h in zip(bench.names, bench.hazard, strict=False)
             if bench.meta[n].provenance_kind == "measured" and not h]
    subs = [bench.meta[n].substance for n in names]
    print(f"{len(names)} spectra x {reps} noise draws per condition; "
          "correct = accepted best hit is the substance")
    print(f"{'condition':40s} " + " ".join(f"{m:>10s}" for m, _ in METHODS))
    for label, spec in perturbations():
        rng = np.random.default_rng(seed)
        acc = {m: [] for m, _ in METHODS}
        for _ in range(reps):
            axis, rows = perturb(bench, names, spec, rng)
            res = run_all(bench, axis, rows)
            for m, _ in METHODS:
                acc[m] += [p == s for (p, _), s in zip(res[m], subs, strict=False)]
        print(f"{label:40s} " + " ".join(f"{pct(np.mean(acc[m])):>10s}" for m, _ in METHODS))
    # hold-out: remove the substance, query it -> the right answer is "no match"
    rng = np.random.default_rng(seed + 1)
    ok = {m: [] for m, _ in METHODS}
    alarms = {m: [] for m, _ in METHODS}
    t0 = time.perf_counter()
    seen = set()
    alarmed: list[str] = []
    for n in names:
        sub = bench.meta[n].substance
        if sub in seen:
            continue
        seen.add(sub)
        held = Bench(exclude_substance=sub)
        rows = np.vstack([finish(unit(bench, n), rng, 100.0) for _ in range(reps)])
        res = run_all(held, AXIS + rng.uniform(-3, 3), rows)
        for m, _ in METHODS:
            ok[m] += [p is None for p, _ in res[m]]
            alarms[m] += [a for _, a in res[m]]
        if any(a for _, a in res[METHODS[0][0]]):
            alarmed.append(n)
    print(f"{'hold-out unknowns (' + str(len(seen)) + ' substances)':40s} "
          + " ".join(f"{pct(np.mean(ok[m])):>10s}" for m, _ in METHODS)
          + f"   [{time.perf_counter() - t0:.0f} s]")
    print(f"{'  hazard alarms on those unknowns':40s} "
          + " ".join(f"{pct(np.mean(alarms[m])):>10s}" for m, _ in METHODS))
    print(f"    ({METHODS[0][0]} alarmed on: {', '.join(alarmed) or 'none'})")


def part3(bench: Bench, reps: int, seed: int) -> None:
    print("\n== 3. Hazard detection in simulated mixtures (peak SNR 100, fluorescence 2x) ==")
    hazards = [n for n, h in zip(bench.names, bench.hazard, strict=False) if h]
    cuts = [c for c in CUTS if c in bench.raw]
    rng = np.random.default_rng(seed)
    print("hazardous entries: " + ", ".join(
        f"{h} ({bench.meta[h].provenance_kind})" for h in hazards))
    print("cutting agents: " + ", ".join(cuts))
    print(f"{'hazard fraction':22s} " + " ".join(f"{m:>10s}" for m, _ in METHODS)
          + "   (detection rate; measured hazard | modelled stand-ins)")
    for f in (0.5, 0.2, 0.1, 0.05):
        rows, kind = [], []
        for h in hazards:
            for c in cuts:
                for _ in range(reps):
                    rows.append(finish(f * unit(bench, h) + (1 - f) * unit(bench, c), rng,
                                       100.0, 2.0))
                    kind.append(bench.meta[h].provenance_kind == "measured")
        res = run_all(bench, AXIS, np.vstack(rows))
        kind = np.array(kind)
        cells = []
        for m, _ in METHODS:
            a = np.array([al for _, al in res[m]])
            cells.append(f"{pct(a.mean()):>10s}")
            cells[-1] += f" ({pct(a[kind].mean()).strip()}|{pct(a[~kind].mean()).strip()})"
        print(f"{int(100 * f):>3d}% in cutting agent   " + " ".join(cells))
    # false alarms
    print(f"{'false-alarm sets':40s} " + " ".join(f"{m:>10s}" for m, _ in METHODS))
    rows = np.vstack([finish(unit(bench, c), rng, 100.0, 2.0)
                      for c in cuts for _ in range(4 * reps)])
    res = run_all(bench, AXIS, rows)
    print(f"{'pure cutting agents (' + str(len(rows)) + ' scans)':40s} " + " ".join(
        f"{pct(np.mean([al for _, al in res[m]])):>10s}" for m, _ in METHODS))
    safe = [n for n, h in zip(bench.names, bench.hazard, strict=False) if not h]
    rows = np.vstack([finish(unit(bench, n), rng, 100.0, 2.0) for n in safe for _ in range(reps)])
    res = run_all(bench, AXIS, rows)
    print(f"{'all non-hazard entries (' + str(len(rows)) + ' scans)':40s} " + " ".join(
        f"{pct(np.mean([al for _, al in res[m]])):>10s}" for m, _ in METHODS))
    real = [f for f in files("enlighten/library-older/*.csv") if "ammonium" not in f]
    real += files("charisma/*/PST*.txt")
    alarms = {m: 0 for m, _ in METHODS}
    for f in real:
        b = read(f)
        res = run_all(bench, b.axis, b.intensity.astype(np.float64))
        for m, _ in METHODS:
            alarms[m] += res[m][0][1]
    print(f"{'real cross-instrument scans (' + str(len(real)) + ')':40s} " + " ".join(
        f"{alarms[m]:>10d}" for m, _ in METHODS) + "   (count; benzonitrile is an unknown)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="noise draws per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="123")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    bench = Bench()
    th = bench.ident.thresholds
    print(f"library: {len(bench.names)} entries ({int(bench.hazard.sum())} hazardous), recipe "
          f"{bench.library.recipe['name']} v{bench.library.recipe['version']}; thresholds from "
          f"the library: r_floor={th.r_floor:.3f}, tau_mix={th.tau_mix:.4f}")
    if "1" in args.parts:
        part1(bench)
    if "2" in args.parts:
        part2(bench, args.reps, args.seed)
    if "3" in args.parts:
        part3(bench, args.reps, args.seed)
    print(f"\n[{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
