"""``ramanid demo``: the main job end to end, with no arguments and no hardware.

It identifies the example scans bundled in ``ramanid/examples`` against the default library and
prints the verdicts exactly as ``ramanid identify`` would (same code path,
:func:`ramanid.cli.identify.run_identification`), then says where it wrote the figures:

1. ``lactose.csv`` - a real measured cutting agent (expected: identified, no hazard);
2. ``ammonium_nitrate.csv`` - a real measured explosive precursor (expected: hazard alarm);
3. a SIMULATED mixture, generated here, of the library's fentanyl-class entry (not measured: the
   library says how it was made) and the measured lactose, when the library holds such an entry;
   labelled as simulated in the text, the JSON (``simulated: true``), the figure and the name of
   the copy written to the output folder;
4. one scan acquired from the device simulator (``sim://wasatch`` of ``ramanid.drivers``) measuring
   the bundled acetaminophen example, when the drivers part provides it; labelled simulated.

Exit status: that of the identification (3 when the hazard alarm is raised, which it is for the
ammonium nitrate example).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ramanid import i18n
from ramanid.cli.identify import _lang
from ramanid.errors import EXIT_HAZARD, EXIT_OK

#: Spectral fraction of the opioid in the simulated mixture (of the mixture's L2-normalised
#: signal). A cut of this order is what a single-hit library search already misses.
SIMULATED_FRACTION = 0.25
#: Noise of the simulated mixture: Gaussian, this fraction of the mixture's maximum.
SIMULATED_NOISE = 0.01
SIMULATED_SEED = 20260406

EPILOG = """\
exit status: 0 when the demonstration ran (its hazard alarms are part of the show: `ramanid
identify` and `ramanid scan` exit 3 on a hazard, the demo does not), 1 if an example could not
be read.

example:
  ramanid demo --out /tmp/ramanid-demo --lang fr
"""


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``ramanid`` command line."""
    parser = subparsers.add_parser(
        "demo", help="identify the bundled example scans (no arguments, no hardware)",
        description="Identify the bundled example scans (a cutting agent, an explosive "
                    "precursor, a clearly labelled simulated opioid mixture and a scan from the "
                    "device simulator) as a field officer would see them, and write the figures.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", metavar="DIR", default="ramanid-demo",
                        help="folder for the figures and the simulated scan "
                             "(default: ./ramanid-demo)")
    parser.add_argument("--lang", type=_lang, default=None, metavar="L",
                        help=f"language: {', '.join(i18n.LANGS)} (default: $RAMANID_LANG, "
                             "else the locale, else en)")
    parser.add_argument("--library", metavar="PATH",
                        help="reference library (default: the bundled default library)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.set_defaults(func=main)


def examples_dir() -> Path:
    """Folder of the bundled example scans (package data)."""
    return Path(__file__).resolve().parent.parent / "examples"


EXAMPLES = ("lactose.csv", "ammonium_nitrate.csv")
"""The bundled measured example scans, in demo order."""


def _opioid_entry(library: Any) -> Any | None:
    """The library's fentanyl entry (else any fentanyl-class entry), or None."""
    opioids = [e for e in library.entries
               if "fentanyl" in e.substance_class.lower() and e.hazard_level != "none"]
    for e in opioids:
        if e.name.lower() == "fentanyl":
            return e
    return opioids[0] if opioids else None


def simulate_mixture(base: Any, library: Any, entry: Any, fraction: float = SIMULATED_FRACTION,
                     *, noise: float = SIMULATED_NOISE, seed: int = SIMULATED_SEED) -> Any:
    """A simulated scan: ``fraction`` of ``entry``'s spectrum mixed into the measured ``base``.

    Both spectra are put on the base scan's axis (the entry's raw spectrum by linear
    interpolation, zero outside its range), offset to a minimum of zero and scaled to unit L2
    norm; the mixture ``fraction * entry + (1 - fraction) * base`` is rescaled to the base scan's
    maximum and gets Gaussian noise of ``noise`` times that maximum (seeded, reproducible).

    Parameters
    ----------
    base
        A measured scan, :class:`ramanid.spectrum.SpectrumBatch` of one row.
    library, entry
        The library and the :class:`ramanid.library.Entry` to mix in.
    fraction
        Spectral fraction of the entry, 0-1.
    noise, seed
        Noise level and random seed.

    Returns
    -------
    SpectrumBatch
        One row with metadata ``simulated=True`` and a ``source`` that says what it is.
    """
    import numpy as np

    from ramanid.spectrum import SpectrumBatch

    axis = base.axis
    b = base.intensity[0].astype(float)
    e_axis, e_values = library.raw(entry.id)
    e = np.interp(axis, e_axis, e_values, left=np.nan, right=np.nan)
    e = np.nan_to_num(e - np.nanmin(e), nan=0.0)
    b = b - b.min()
    b /= np.linalg.norm(b)
    e /= max(float(np.linalg.norm(e)), 1e-12)
    mix = fraction * e + (1.0 - fraction) * b
    scale = float(base.intensity[0].max()) / float(mix.max())
    rng = np.random.default_rng(seed)
    y = mix * scale + rng.normal(0.0, noise * float(base.intensity[0].max()), mix.size)
    pct = round(100 * fraction)
    base_name = Path(str(base.meta[0].get("source"))).stem
    source = (f"SIMULATED-mixture_{pct}pct-{entry.name}_{100 - pct}pct-{base_name} "
              f"({entry.provenance_kind} {entry.name} + measured {base_name})")
    meta = {**base.meta[0], "source": source, "simulated": True, "name": source,
            "format": None, "scan_id": None}
    return SpectrumBatch(axis, y[np.newaxis, :], [meta])


#: Integration time of the simulated acquisition (ms).
SIMULATOR_INTEGRATION_MS = 200


def simulator_url(sample: Path | None = None) -> str:
    """``sim://`` URL of the simulated device the demo acquires from (see ``ramanid simulate``).

    The simulated Wasatch unit measures the bundled acetaminophen example (a real measured
    spectrum placed on the simulated detector), unpaced and with a fixed noise seed.
    """
    sample = sample or examples_dir() / "acetaminophen.csv"
    return f"sim://wasatch?pace=0&seed=7&sample={quote(str(sample), safe='')}"


def acquire_from_simulator(url: str | None = None) -> Any | None:
    """One dark-subtracted scan from the drivers' device simulator, or None when unavailable.

    Returns a one-row :class:`~ramanid.spectrum.SpectrumBatch` with ``simulated=True``.
    """
    url = url or simulator_url()
    try:
        from ramanid.drivers import open_device
        from ramanid.drivers.device import PROTOCOLS  # noqa: F401  (device layer present)
    except ImportError:
        return None
    try:
        device = open_device(url, integration_ms=SIMULATOR_INTEGRATION_MS)
    except ModuleNotFoundError as exc:  # the protocol's device class is not built yet
        if (exc.name or "").startswith("ramanid.drivers"):
            return None
        raise
    with device:
        device.set_laser(True)
        dark = device.acquire_dark()
        batch = device.acquire(dark=dark).to_batch()
    for meta in batch.meta:
        meta["simulated"] = True
        meta["source"] = f"{url.split('?')[0]} (SIMULATED device, sample: acetaminophen)"
    return batch


def main(args: argparse.Namespace) -> int:
    """Handler of ``ramanid demo``."""
    from ramanid.cli.identify import error_line, read_inputs, run_identification
    from ramanid.library import load_library

    lang = i18n.resolve_lang(args.lang)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # before any work: one line, exit 1
        from ramanid.errors import InputError

        raise InputError(f"cannot create the figure folder {out}: {exc.strerror or exc}",
                         hint="choose a folder you can write to with --out DIR") from None
    stream = sys.stderr if args.json else sys.stdout
    print(i18n.t("demo.intro", lang) + "\n", file=stream, flush=True)

    library = load_library(args.library)
    batches, failed = read_inputs([str(examples_dir() / name) for name in EXAMPLES])
    lactose = next((b for b in batches if "lactose" in b.sources()[0]), None)
    entry = _opioid_entry(library)
    if lactose is not None and entry is not None:
        simulated = simulate_mixture(lactose, library, entry)
        batches.append(simulated)
        _save_simulated(simulated, out)
    try:
        scan = acquire_from_simulator()
    except Exception as exc:  # the simulator is optional in the demo: say why, go on
        print(error_line(exc, simulator_url()), file=sys.stderr)
        scan = None
    if scan is not None:
        batches.append(scan)

    options = {"lang": lang, "json": args.json, "plot": str(out / "demo.png")}
    status = run_identification(batches, options, input_errors=failed, library=library)
    print("\n" + i18n.t("demo.plots", lang, path=out.resolve()), file=stream, flush=True)
    # The alarms are the point of the demonstration, not a failure of it.
    return EXIT_OK if status == EXIT_HAZARD else status


def _save_simulated(batch: Any, out: Path) -> None:
    """Keep a copy of the simulated scan (CSV, name starting with SIMULATED) in ``out``."""
    from ramanid.cli.identify import error_line

    try:
        from ramanid.io import write
    except ImportError:
        return
    name = str(batch.meta[0]["source"]).split(" ")[0] + ".csv"
    try:
        write(batch, out / name)
    except Exception as exc:  # the copy is a convenience; the demo goes on without it
        print(error_line(exc, str(out / name)), file=sys.stderr)
