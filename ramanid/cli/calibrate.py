"""``ramanid calibrate wavelength|excitation|shift|intensity --device SERIAL FILE ...``."""

from __future__ import annotations

import argparse
import json
import sys

HELP = """\
steps (run in this order for a new instrument):
  wavelength  pixel -> wavelength from neon (or Ar/Hg) lamp spectra
  excitation  laser wavelength from silicon (520.7 cm-1) or polystyrene (1001.4 cm-1)
  shift       field Raman-shift correction from an ASTM E1840 standard (>= 4 bands)
  intensity   response correction from NIST SRM 2241 (785 nm) / 2242a (532 nm)

Each step saves a record for the device serial under $RAMANID_HOME/calibration/<serial>/.
Files: B&W Tek .txt exports (pixel column used) or any format `ramanid identify` reads
(Horiba two-column text needs --laser).

examples:
  ramanid calibrate wavelength --device BWS415-001 neon_5ms.txt neon_100ms.txt
  ramanid calibrate excitation --device BWS415-001 silicon.txt
  ramanid calibrate shift --device BWS415-001 polystyrene.txt
  ramanid calibrate intensity --device BWS415-001 srm2241.txt
"""


def serial_arg(text: str) -> str:
    """argparse type of ``--device SERIAL``: refuse path separators and ``..`` (exit 2)."""
    from ramanid.calibration import check_serial
    from ramanid.errors import UsageError

    try:
        return check_serial(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message}; {exc.hint}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` and its steps to the command line."""
    p = subparsers.add_parser(
        "calibrate", help="calibrate a device (wavelength, laser, shift, intensity)",
        description="Calibrate a spectrometer from measured standards and save the record.",
        epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = p.add_subparsers(dest="step", metavar="STEP")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", required=True, metavar="SERIAL", type=serial_arg,
                        help="serial number of the instrument (record key)")
    common.add_argument("--laser", type=float, metavar="NM",
                        help="nominal laser wavelength (required for two-column files)")
    common.add_argument("--valid-days", type=float, metavar="N",
                        help="validity period of this calibration (default per step)")
    common.add_argument("--json", action="store_true", help="print the record as JSON")
    common.add_argument("--dry-run", action="store_true", help="fit and report, save nothing")

    w = steps.add_parser("wavelength", parents=[common], help="pixel -> wavelength from a lamp",
                         description="Fit pixel -> wavelength from emission-lamp spectra.")
    w.add_argument("files", nargs="+", metavar="FILE", help="lamp spectra (several exposures OK)")
    w.add_argument("--lamp", default="neon", choices=["neon", "argon", "mercury", "hgar"])
    w.add_argument("--max-order", type=int, default=3, help="highest polynomial order (3)")
    w.add_argument("--max-rms", type=float, default=1.0, metavar="CM1",
                   help="refuse fits whose line RMS exceeds this (1.0 cm-1)")
    w.set_defaults(func=_run)

    e = steps.add_parser("excitation", parents=[common], help="laser wavelength from a standard",
                         description="Fit the laser wavelength from a Raman standard.")
    e.add_argument("files", nargs="+", metavar="FILE", help="spectra of the standard")
    e.add_argument("--standard", default="silicon", choices=["silicon", "polystyrene"])
    e.add_argument("--reference-cm1", type=float, metavar="CM1",
                   help="reference shift of the band (silicon default 520.7)")
    e.add_argument("--max-deviation", type=float, default=1.5, metavar="NM",
                   help="refuse a laser further than this from the nominal one (1.5 nm)")
    e.set_defaults(func=_run)

    s = steps.add_parser("shift", parents=[common], help="Raman-shift correction (ASTM E1840)",
                         description="Offset correction of the Raman-shift axis from an "
                                     "ASTM E1840 standard (at least 4 matched bands, <= 20 "
                                     "cm-1).")
    s.add_argument("file", metavar="FILE", help="spectrum of the standard")
    s.add_argument("--compound", default="polystyrene",
                   help="ASTM E1840 compound (polystyrene, cyclohexane, 4-acetamidophenol, ...)")
    s.add_argument("--astm", metavar="JSON", help="astm-e1840-peaks.json to use")
    s.add_argument("--tolerance", type=float, default=1.0, metavar="CM1",
                   help="pass/fail tolerance per band after correction (1.0 cm-1)")
    s.add_argument("--broad-factor", type=float, default=3.0, metavar="X",
                   help="broad bands (polystyrene 795.8, 1450.5, 2852.4, 2904.5, 3054.3) are "
                        "judged with X times the tolerance (3)")
    s.add_argument("--linear", action="store_true",
                   help="allow a linear term (needs >= 6 bands over >= 1000 cm-1)")
    s.set_defaults(func=_run)

    i = steps.add_parser("intensity", parents=[common], help="response correction from SRM",
                         description="Relative intensity correction from NIST SRM 2241/2242a.")
    i.add_argument("file", metavar="FILE", help="SRM glass spectrum (dark subtracted)")
    i.add_argument("--srm", choices=["2241", "2242a"], help="SRM (default: by laser)")
    i.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _print_record(rec, as_json: bool, saved: bool) -> None:
    if as_json:
        print(json.dumps(rec.to_dict(), indent=1))
        return
    r = rec.residuals
    print(f"device {rec.serial}: {rec.kind} calibration from {rec.standard}")
    if rec.kind == "wavelength":
        wl = rec.wavelength
        print(f"  model {wl['model']}, order {wl['order']}, {r['n_lines']} lines; polynomial "
              f"residual RMS {r['rms_cm1']:.3f} cm-1 ({r['rms_nm'] * 1000:.1f} pm), max "
              f"{r['max_cm1']:.3f} cm-1; predicted error between lines (leave-one-out) "
              f"{wl['loo_rms_cm1'][wl['model']]:.3f} cm-1")
        print("  line (nm)    residual (cm-1)")
        for ref, res in zip(r["lines"]["ref_nm"], r["lines"]["resid_cm1"], strict=True):
            print(f"  {ref:10.4f}  {res:+8.3f}")
    elif rec.kind == "excitation":
        ex = rec.excitation
        for f in ex["fits"]:
            print(f"  band at {f['band_nm']:.4f} nm (SNR {f['band_snr']:.0f}) -> laser "
                  f"{f['laser_nm']:.4f} nm (nominal {f['nominal_laser_nm']})")
        print(f"  laser {rec.laser_nm:.4f} nm (spread {ex['spread_cm1']:.2f} cm-1)")
    elif rec.kind == "shift":
        sc = rec.shift_correction
        print(f"  correction {sc['c0']:+.3f} cm-1 + {sc['c1']:+.2e} x shift; RMS "
              f"{sc['rms_before_cm1']:.3f} -> {sc['rms_after_cm1']:.3f} cm-1")
        _band_table(r["bands"], after=True)
    elif rec.kind == "intensity":
        print(f"  SRM {rec.intensity['srm']} correction over {r['range_cm1'][0]:.0f}-"
              f"{r['range_cm1'][1]:.0f} cm-1 (factor {r['factor_min']:.3g}..{r['factor_max']:.3g})")
    verdict = "PASS" if rec.passed else "FAIL"
    print(f"  {verdict}; record {rec.id} ({'saved' if saved else 'not saved: --dry-run'}), "
          f"valid {rec.valid_days:g} days")


def _band_table(rows, after: bool = False) -> None:
    head = "  reference   measured   error" + ("   after" if after else "") + "   SNR  result"
    print(head)
    for r in rows:
        if r["measured_cm1"] is None:
            print(f"  {r['reference_cm1']:9.1f}   {'-':>8}   {'-':>5}" + ("   " + " " * 5
                  if after else "") + "     -  not found, not judged")
            continue
        line = f"  {r['reference_cm1']:9.1f}   {r['measured_cm1']:8.2f}   {r['error_cm1']:+5.2f}"
        if after:
            line += f"   {r['error_after_cm1']:+5.2f}"
        result = ("weak, not judged" if not r.get("judged", True)
                  else "pass" if r["pass"] else "FAIL")
        if r.get("broad") and r.get("judged", True):
            result += f" (broad, +/-{r['tolerance_cm1']:g})"
        line += f"  {r['snr']:5.0f}  {result}"
        print(line)


def _run(args: argparse.Namespace) -> int:
    from ramanid.calibration import steps

    save = not args.dry_run
    common = {"laser_nm": args.laser, "valid_days": args.valid_days, "save": save}
    if args.step == "wavelength":
        rec = steps.calibrate_wavelength(args.device, args.files, lamp=args.lamp,
                                         max_order=args.max_order, max_rms_cm1=args.max_rms,
                                         **common)
    elif args.step == "excitation":
        rec = steps.calibrate_excitation(args.device, args.files, standard=args.standard,
                                         reference_cm1=args.reference_cm1,
                                         max_deviation_nm=args.max_deviation, **common)
    elif args.step == "shift":
        rec = steps.calibrate_shift(args.device, args.file, compound=args.compound,
                                    astm=args.astm, tolerance_cm1=args.tolerance,
                                    allow_linear=args.linear,
                                    broad_factor=args.broad_factor, **common)
    else:
        rec = steps.calibrate_intensity(args.device, args.file, srm=args.srm, **common)
    _print_record(rec, args.json, save)
    sys.stdout.flush()
    return 0 if rec.passed else 1
