"""Figures of identification results (``ramanid identify --plot``, ``ramanid demo``).

One figure per scan: a coloured banner with the verdict (red with the handling instructions when
the hazard alarm is raised), the processed scan over the best reference (or over the mixture
components and their sum, and over any hazardous substance the alarm names), and the residual
of that fit underneath.

The scan is processed by the library's own recipe (the same processing the engine used), so the
curves are on the library axis and in the units the match scores are computed in. The
references are scaled by a non-negative least-squares fit for display only; the verdict and the
fractions printed are the engine's.

matplotlib is imported inside :func:`plot_result` with the non-interactive Agg backend, so
importing this module costs nothing and no display is needed. Text in the figure is in the
chosen language, except Arabic, which matplotlib cannot shape right-to-left: Arabic output gets
English figure text (the terminal output stays Arabic).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ramanid import i18n

#: Characters per line of the figure's banner.
BANNER_WIDTH = 100
#: At most this many hazardous references are drawn (the strongest by estimated fraction).
MAX_HAZARD_CURVES = 3

# Languages whose script matplotlib renders correctly with its default fonts.
_PLOT_LANGS = ("en", "es", "fr", "pt", "ru")


def _entry_ids(record: Mapping[str, Any], library: Any) -> tuple[list[Any], list[Any]]:
    """Entries to draw: (fitted references, hazardous entries named by the alarm)."""
    refs: list[Any] = []
    keys: list[str] = []
    if record.get("verdict") == "mixture" and record.get("components"):
        keys = [str(c.get("id") or c.get("name")) for c in record["components"]]
    elif record.get("candidates"):
        keys = [str(record["candidates"][0].get("id") or record["candidates"][0].get("name"))]
    for key in keys:
        try:
            refs.append(library.entry(key))
        except Exception:  # an id the library does not know: draw what we can
            continue
    hazards: list[Any] = []
    subs = list((record.get("hazard") or {}).get("substances") or [])
    # the strongest hazard contributions first (the engine's estimated fraction), at most 3
    subs.sort(key=lambda d: -float(d.get("fraction") or 0) if isinstance(d, Mapping) else 0)
    for sub in subs[:MAX_HAZARD_CURVES]:
        key = str(sub.get("id") or sub.get("name")) if isinstance(sub, Mapping) else str(sub)
        try:
            entry = library.entry(key)
        except Exception:
            continue
        if all(entry.id != r.id for r in refs) and all(entry.id != h.id for h in hazards):
            hazards.append(entry)
    return refs, hazards


def _banner_text(record: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """Banner text and colour for the figure."""
    from ramanid.report import (
        has_hazard_notice,
        hazard_level,
        hazard_supplement,
        is_hazard,
        is_opioid_hazard,
        is_simulated,
        verdict_line,
    )

    lines = []
    if is_simulated(record):
        lines.append(i18n.t("simulated", lang))
    colour = "#d9ead3"  # pale green: nothing hazardous
    if has_hazard_notice(record):
        hazard = record.get("hazard") or {}
        level = hazard_level(record)
        title = i18n.t(f"hazard.title.{level}", lang)
        if is_opioid_hazard(hazard):
            title += " - " + i18n.t("hazard.opioid", lang)
        lines.append(title)
        if is_opioid_hazard(hazard):
            lines.append(" ".join(i18n.t(k, lang) for k in
                                  ("opioid.do_not_open", "opioid.ppe", "opioid.naloxone")))
        else:
            lines.append(i18n.t("hazard.generic", lang))
        colour = "#cc0000" if is_hazard(record) else "#f1c232"
    elif record.get("verdict") in ("no_match", "inconclusive"):
        colour = "#eeeeee"
    lines.append(verdict_line(record, lang))
    extra = hazard_supplement(record, lang)
    if extra:
        lines.append(extra)
    wrapped = [part for line in lines for part in textwrap.wrap(line, BANNER_WIDTH) or [""]]
    return "\n".join(wrapped), colour


def plot_result(record: Mapping[str, Any], scan: Any, library: Any, out: str | Path, *,
                lang: str = "en", dpi: int = 110) -> Path:
    """Write the figure of one result to ``out`` (PNG, or any format matplotlib infers).

    Parameters
    ----------
    record
        The result record of the scan (:func:`ramanid.identify.identify` output).
    scan
        The scan as a :class:`ramanid.spectrum.SpectrumBatch` of one row.
    library
        The :class:`ramanid.library.Library` the scan was identified against.
    out
        Output path; written atomically (:mod:`ramanid.atomic`).
    lang
        Language of the figure text (Arabic falls back to English, see the module notes).
    dpi
        Resolution.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.optimize import nnls

    from ramanid.atomic import atomic_path
    from ramanid.library import recipe_from_dict

    lang = lang if lang in _PLOT_LANGS else "en"
    processed = recipe_from_dict(library.recipe).process(scan)
    axis = np.asarray(processed.axis, dtype=float)
    y = np.asarray(processed.X, dtype=float)[0]
    refs, hazards = _entry_ids(record, library)
    R = np.array([library.processed(e.id) for e in refs + hazards], dtype=float).reshape(
        -1, axis.size)
    if R.shape[0]:
        coef, _ = nnls(R.T, y)
        fit = coef @ R
    else:
        coef, fit = np.zeros(0), np.zeros_like(y)
    residual = y - fit

    text, colour = _banner_text(record, lang)
    n_lines = text.count("\n") + 1
    banner_h = 0.22 * n_lines + 0.25  # inches
    fig = plt.figure(figsize=(10, 5.4 + banner_h))
    grid = fig.add_gridspec(3, 1, height_ratios=[banner_h, 3.2, 1.3], hspace=0.3, left=0.08,
                            right=0.98, top=0.98, bottom=0.08)
    ax_b = fig.add_subplot(grid[0])
    ax_b.set_axis_off()
    ax_b.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax_b.transAxes, color=colour,
                                 clip_on=False))
    dark = colour in ("#cc0000",)
    ax_b.text(0.5, 0.5, text, transform=ax_b.transAxes, ha="center", va="center",
              fontsize=10, fontweight="bold", color="white" if dark else "black")

    ax = fig.add_subplot(grid[1])
    # draw only the part of the library axis the scan covers (when the recipe reports it)
    lo, hi = getattr(processed, "lo", None), getattr(processed, "hi", None)
    if lo is not None and hi is not None:
        lo_i, hi_i = int(np.ravel(lo)[0]), int(np.ravel(hi)[0])
        if 0 <= lo_i < hi_i <= axis.size:
            keep = slice(lo_i, hi_i)
            axis, y, R, fit, residual = (axis[keep], y[keep], R[:, keep], fit[keep],
                                         residual[keep])
    source = str(record.get("source") or "scan")
    label = Path(source.split(" ")[0]).name or source
    ax.plot(axis, y, color="black", lw=1.8, alpha=0.75, label=label[:60])
    palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
    for k, entry in enumerate(refs + hazards):
        is_haz = k >= len(refs)
        label = f"{entry.name} ({entry.provenance_kind})"
        ax.plot(axis, coef[k] * R[k], lw=1.0, ls="--" if is_haz else "-",
                color="#cc0000" if is_haz else palette[k % len(palette)], label=label,
                alpha=0.9)
    if R.shape[0] > 1:
        ax.plot(axis, fit, color="orange", lw=1.0, alpha=0.8, label="fit (sum)")
    ax.set_ylabel("processed intensity")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)
    ax.grid(alpha=0.2)
    lib = record.get("library") or {}
    ax.set_title(f"library {lib.get('version', '?')}  sha256 {str(lib.get('sha256', '?'))[:12]}"
                 f"  engine {record.get('engine_version', '?')}", fontsize=8, loc="right")

    ax_r = fig.add_subplot(grid[2], sharex=ax)
    ax_r.plot(axis, residual, color="grey", lw=0.8)
    ax_r.axhline(0, color="black", lw=0.5)
    # same scale as the scan (at least 5 % of its range), so that a tiny residual looks tiny
    span = max(float(np.max(np.abs(residual), initial=0.0)),
               0.05 * float(np.max(np.abs(y), initial=0.0)), 1e-12)
    ax_r.set_ylim(-1.1 * span, 1.1 * span)
    ax_r.set_ylabel("residual")
    ax_r.set_xlabel("Raman shift (cm-1)")
    ax_r.grid(alpha=0.2)

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=(out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out
