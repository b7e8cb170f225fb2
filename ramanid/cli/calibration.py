"""``ramanid calibration show [SERIAL]`` and ``ramanid calibration check --device SERIAL FILE``."""

from __future__ import annotations

import argparse
import json

from ramanid.cli.calibrate import serial_arg

EPILOG = """\
examples:
  ramanid calibration show                      # every device with its state
  ramanid calibration show BWS415-001 --history # one device, all records
  ramanid calibration check --device BWS415-001 polystyrene.txt --tolerance 1.5

check exits 0 when every ASTM E1840 band inside the measured range is found within the
tolerance, 1 otherwise.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibration show|check`` to the command line."""
    p = subparsers.add_parser(
        "calibration", help="show device calibrations; qualification check",
        description="Show stored device calibrations, or check a device against a standard.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser("show", help="list devices or show one device's calibration")
    show.add_argument("serial", nargs="?", metavar="SERIAL", type=serial_arg)
    show.add_argument("--history", action="store_true", help="every record, oldest first")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)

    chk = sub.add_parser("check", help="qualification: reference-band errors, pass/fail",
                         description="Measure a standard on the device's calibrated axis and "
                                     "report each ASTM E1840 band's error and pass/fail.")
    chk.add_argument("--device", required=True, metavar="SERIAL", type=serial_arg)
    chk.add_argument("file", metavar="FILE", help="spectrum of the standard")
    chk.add_argument("--tolerance", type=float, default=1.0, metavar="CM1",
                     help="pass/fail tolerance per band (1.0 cm-1)")
    chk.add_argument("--broad-factor", type=float, default=3.0, metavar="X",
                     help="broad bands (polystyrene 795.8, 1450.5, 2852.4, 2904.5, 3054.3) are "
                          "judged with X times the tolerance (3)")
    chk.add_argument("--compound", default="polystyrene", help="ASTM E1840 compound")
    chk.add_argument("--astm", metavar="JSON", help="astm-e1840-peaks.json to use")
    chk.add_argument("--bands", metavar="CM1,CM1,...",
                     help="check only these ASTM bands (e.g. 620.9,1001.4,1031.8,1155.3,1602.3)")
    chk.add_argument("--laser", type=float, metavar="NM", help="nominal laser (two-column files)")
    chk.add_argument("--json", action="store_true", help="machine-readable output")
    chk.set_defaults(func=_check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _show(args: argparse.Namespace) -> int:
    from ramanid.calibration.records import (
        calibration_status,
        list_records,
        list_serials,
    )
    from ramanid.errors import CalibrationError

    if not args.serial:
        rows = [calibration_status(s) for s in list_serials()]
        if args.json:
            print(json.dumps(rows, indent=1))
        elif not rows:
            print("no calibration records (run `ramanid calibrate ...`)")
        for r in rows if not args.json else []:
            age = "-" if r["age_days"] is None else f"{r['age_days']:.1f} d"
            print(f"{r['serial']:20s} {r['state']:8s} {age:>9s}  {r['id'] or '-'}")
        return 0
    records = list_records(args.serial)
    if not records:
        raise CalibrationError(f"no calibration record for device {args.serial}",
                               hint="run `ramanid calibrate wavelength --device ...` first")
    chosen = records if args.history else records[-1:]
    status = calibration_status(args.serial)
    if args.json:
        print(json.dumps({"status": status, "records": [r.to_dict() for r in chosen]}, indent=1))
        return 0
    print(f"device {args.serial}: {status['state']}"
          + (f" - {status['warning']}" if status["warning"] else ""))
    for rec in chosen:
        print(f"- {rec.id}  {rec.kind:10s} {rec.standard}  {'PASS' if rec.passed else 'FAIL'}"
              f"  created {rec.created}  valid {rec.valid_days:g} d")
        wl = rec.wavelength
        if wl:
            print(f"    wavelength: {wl['model']} order {wl['order']}, {wl['n_lines']} lines, "
                  f"RMS {wl['rms_cm1']:.3f} cm-1")
        if rec.laser_nm:
            print(f"    laser: {rec.laser_nm:.4f} nm")
        if rec.shift_correction:
            sc = rec.shift_correction
            print(f"    shift correction: {sc['c0']:+.3f} cm-1 + {sc['c1']:+.2e} x shift "
                  f"({sc['compound']}, {sc['n_bands']} bands)")
        if rec.intensity:
            it = rec.intensity
            print(f"    intensity: SRM {it['srm']} over {it['lo_cm1']:.0f}-{it['hi_cm1']:.0f} cm-1")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ramanid.calibration.records import calibration_status
    from ramanid.calibration.shift import JUDGE_MIN_SNR
    from ramanid.calibration.steps import check_standard
    from ramanid.cli.calibrate import _band_table
    from ramanid.errors import UsageError

    try:
        bands = [float(b) for b in args.bands.split(",")] if args.bands else None
    except ValueError as exc:
        raise UsageError(f"--bands {args.bands!r} is not a list of numbers",
                         hint="e.g. --bands 620.9,1001.4,1602.3") from exc
    res = check_standard(args.device, args.file, compound=args.compound, astm=args.astm,
                         tolerance_cm1=args.tolerance, laser_nm=args.laser, bands=bands,
                         broad_factor=args.broad_factor)
    res["calibration"] = calibration_status(args.device)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        cal = res["calibration"]
        print(f"device {args.device}: {res['compound']} check, tolerance "
              f"{args.tolerance:g} cm-1 (broad bands {args.tolerance * args.broad_factor:g}), "
              f"calibration {cal['id'] or 'none'} ({cal['state']})")
        _band_table(res["bands"])
        n_range = sum(r["in_range"] for r in res["bands"])
        print(f"{res['n_pass']} of {res['n_judged']} judged bands pass ({n_range} in range; "
              f"bands with SNR < {JUDGE_MIN_SNR:g} or not found are not judged): "
              f"{'PASS' if res['passed'] else 'FAIL'}")
    return 0 if res["passed"] else 1
