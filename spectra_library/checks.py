"""Quality and confusability checks of library entries (``ramanid library validate``).

For each checked entry (pending ones by default):

* signal-to-noise, saturation, fluorescence and axis coverage: the QC figures of the library's own
  recipe (``Recipe.process(batch).qc``), flagged against the engine's QC limits;
* calibration state: the calibration record the spectrum was taken with, when the entry records
  one (``acquisition.calibration_id``), else the device's record at acquisition time
  (``ramanid.calibration.calibration_status``); reported, not a failure;
* duplicates: an existing entry with the same content id, or a processed-spectrum correlation of
  at least :data:`DUPLICATE_R`;
* confusability: the nearest existing entries of *other* substances by match score (Pearson r of
  the processed spectra, the engine's score), flagged when the score comes within the engine's
  decision margin of its acceptance cap (``t_cap - margin``): the engine cannot then tell the two
  apart (salt forms, isomers, close analogues).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Processed-spectrum correlation above which two entries are reported as duplicates.
DUPLICATE_R = 0.995
#: Stand-ins for the engine's limits, used only when ``ramanid.identify`` is not importable.
FALLBACK_LIMITS = {"margin": 0.02, "t_cap": 0.97, "min_snr": 10.0, "max_saturation": 0.002,
                   "max_fluorescence": 50.0, "min_coverage": 0.5}


def engine_limits() -> dict[str, float]:
    """Decision margin, acceptance cap and QC limits of the engine (``ramanid.identify``)."""
    try:
        from ramanid.identify import Thresholds
    except ImportError:
        return dict(FALLBACK_LIMITS)
    return {k: float(getattr(Thresholds, k, v)) for k, v in FALLBACK_LIMITS.items()}


def _calibration_state(entry: Any) -> dict[str, Any]:
    """Calibration of the spectrum: the record named in the entry, else the device's record
    (``ramanid.calibration.calibration_status``) at the acquisition time."""
    acq = entry.acquisition
    if acq.get("calibration_id"):
        return {"state": "ok", "id": acq["calibration_id"],
                "detail": f"recorded calibration {acq['calibration_id']}"}
    serial = acq.get("device_serial") or acq.get("serial")
    if entry.provenance_kind != "measured":
        return {"state": "n/a", "id": None, "detail": f"{entry.provenance_kind} entry"}
    try:
        import datetime as dt

        from ramanid.calibration import calibration_status
    except ImportError:  # pragma: no cover - calibration package absent
        return {"state": "not recorded", "id": None, "detail": "no calibration recorded"}
    try:
        when = dt.datetime.fromisoformat(acq["timestamp"]) if acq.get("timestamp") else None
    except ValueError:
        when = None
    st = calibration_status(serial, when)
    return {"state": st["state"], "id": st.get("id"),
            "detail": st.get("warning") or f"device {serial}: calibration {st.get('id')}"}


def validate_entries(library: Any, entry_ids: list[str] | None = None, *, top: int = 3,
                     limits: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Check entries of a library; returns one JSON-ready report per entry.

    Parameters
    ----------
    library
        A :class:`ramanid.library.Library`.
    entry_ids
        Entries to check (ids, prefixes or names); default every pending entry.
    top
        Number of nearest neighbours to report.
    limits
        Override of :func:`engine_limits`.

    Returns
    -------
    list of dict
        Keys ``id``, ``name``, ``status``, ``provenance_kind``, ``snr``, ``saturation``,
        ``fluorescence``, ``coverage``, ``calibration``, ``duplicates``, ``nearest`` (list of
        ``{"id", "name", "substance", "score"}``), ``confusable`` (the nearest ones within the
        margin), ``flags`` (list of plain-language findings), ``problems`` (the flags that fail
        the entry; the calibration state is only a note) and ``ok`` (no problems).
    """
    from ramanid.library import recipe_from_dict
    from ramanid.spectrum import SpectrumBatch

    lim = {**engine_limits(), **(limits or {})}
    entries = ([library.entry(k) for k in entry_ids] if entry_ids
               else [e for e in library.all_entries if e.status == "pending"])
    if not entries:
        return []
    recipe = recipe_from_dict(library.recipe)
    others = [e for e in library.all_entries if e.status != "retired"]
    P = np.vstack([library.processed(e.id) for e in others]).astype(np.float64)
    confusable_at = lim["t_cap"] - lim["margin"]
    reports = []
    for e in entries:
        axis, values = library.raw(e.id)
        qc = recipe.process(SpectrumBatch.single(axis, values)).qc
        q = {k: float(np.asarray(qc[k])[0]) for k in ("snr", "saturation", "fluorescence",
                                                      "coverage") if k in qc}
        scores = P @ library.processed(e.id).astype(np.float64)
        cand = [(float(s), o) for s, o in zip(scores, others, strict=True) if o.id != e.id]
        cand.sort(key=lambda t: -t[0])
        dups = [o.id for s, o in cand if s >= DUPLICATE_R]
        foreign = [(s, o) for s, o in cand if o.substance != e.substance]
        nearest = [{"id": o.id, "name": o.name, "substance": o.substance, "score": round(s, 4)}
                   for s, o in foreign[:top]]
        confusable = [n for n in nearest if n["score"] >= confusable_at]
        flags = []
        if q.get("snr", np.inf) < lim["min_snr"]:
            flags.append(f"low signal-to-noise ({q['snr']:.1f} < {lim['min_snr']:g})")
        if q.get("saturation", 0.0) > lim["max_saturation"]:
            flags.append(f"saturated detector ({q['saturation']:.3%} of points)")
        if q.get("fluorescence", 0.0) > lim["max_fluorescence"]:
            flags.append(f"strong fluorescence background ({q['fluorescence']:.1f})")
        if q.get("coverage", 1.0) < lim["min_coverage"]:
            flags.append(f"covers only {q['coverage']:.0%} of the library axis")
        calib = _calibration_state(e)
        notes = []  # reported, never a reason to refuse approval
        if e.provenance_kind == "measured" and calib["state"] != "ok":
            notes.append(f"calibration state: {calib['state']} ({calib['detail']})")
            flags.append(notes[-1])
        if e.provenance_kind != "measured":
            flags.append(f"{e.provenance_kind} entry, not a measured spectrum")
        if dups:
            flags.append(f"duplicate of {', '.join(dups)}")
        if confusable:
            flags.append("confusable with " + ", ".join(f"{n['name']} (r={n['score']:.3f})"
                                                        for n in confusable))
        reports.append({
            "id": e.id, "name": e.name, "substance": e.substance, "status": e.status,
            "provenance_kind": e.provenance_kind, **{k: round(v, 4) for k, v in q.items()},
            "calibration": calib, "duplicates": dups, "nearest": nearest,
            "confusable": confusable, "confusable_at": round(confusable_at, 4),
            "flags": flags, "problems": [f for f in flags if f not in notes],
            "ok": len(flags) == len(notes),
            # calibration is reported, not failed: external reference spectra (e.g. the
            # ENLIGHTEN set) carry their maker's calibration, not a record of this lab
        })
    return reports


def _fmt_snr(snr: float) -> str:
    """SNR for a 7-character column (noise-free model spectra have astronomically high SNR)."""
    if not np.isfinite(snr):
        return "      -"
    return f"{snr:7.1f}" if snr < 1e5 else "  >1e5 "


def format_table(reports: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`validate_entries` reports.

    The result column says ``PASS`` or ``FAIL`` (what ``approve`` goes by); problems that make an
    entry fail are listed as such, the calibration state is a note that does not block approval.
    """
    head = (f"{'id':16}  {'name':24} {'SNR':>7} {'sat%':>6} {'cover':>6}  "
            f"{'nearest other':30}  {'result':6}  problems / notes")
    lines = [head, "-" * len(head)]
    for r in reports:
        near = r["nearest"][0] if r["nearest"] else None
        near_s = f"{near['name'][:22]} {near['score']:.3f}" if near else "-"
        problems = r["problems"]
        notes = ["note: " + f for f in r["flags"] if f not in problems]
        lines.append(f"{r['id']:16}  {r['name'][:24]:24} {_fmt_snr(r.get('snr', float('nan')))} "
                     f"{100 * r.get('saturation', 0):6.2f} {r.get('coverage', float('nan')):6.2f}"
                     f"  {near_s:30}  {'PASS' if r['ok'] else 'FAIL':6}  "
                     f"{'; '.join(problems + notes) or '-'}")
    return "\n".join(lines)


def plot_validation(library: Any, reports: list[dict[str, Any]], out: str) -> str:
    """Figure: each checked entry's processed spectrum over its nearest neighbours (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    from ramanid.atomic import atomic_path

    n = max(1, len(reports))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.9 * n), squeeze=False)
    for ax, r in zip(axes[:, 0], reports, strict=False):
        ax.plot(library.axis, library.processed(r["id"]), color="k", lw=1.2,
                label=f"{r['name']} ({r['provenance_kind']}, {r['status']})")
        for k, nb in enumerate(r["nearest"]):
            kind = library.entry(nb["id"]).provenance_kind
            ax.plot(library.axis, library.processed(nb["id"]) - 0.15 * (k + 1), lw=0.9,
                    label=f"{nb['name']} r={nb['score']:.3f}"
                          + ("" if kind == "measured" else f" ({kind})"))
        ax.set_ylabel("processed")
        ax.legend(fontsize=7, loc="upper right")
        state = r["calibration"]["state"]
        title = (f"{r['name']} [{r['id']}]: {'PASS' if r['ok'] else 'FAIL'}"
                 + (": " + "; ".join(r["problems"]) if r["problems"] else "")
                 + ("" if state in ("ok", "n/a") else f" (calibration: {state})"))
        ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=8, loc="left",
                     color="k" if r["ok"] else "#b00000")
    axes[-1, 0].set_xlabel("Raman shift (cm$^{-1}$)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=str(out).rsplit(".", 1)[-1] if "." in str(out) else "png")
    plt.close(fig)
    return out
