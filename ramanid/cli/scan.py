"""``ramanid scan --device URL``: acquire from a spectrometer and identify, like ``identify``.

The scan is converted to Raman shift with the device's calibration (a stored per-device
calibration record from ``ramanid.calibration`` when one exists for the serial, else the device's
own wavelength coefficients and excitation wavelength), saved raw with its metadata when asked,
and identified through :func:`ramanid.cli.identify.run_identification`: same text, same JSON,
same exit statuses as ``ramanid identify``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
exit status:
  0  done, nothing hazardous identified
  1  input error: device not reachable or refused, library could not be loaded
  2  usage error (bad command line, e.g. OBP device without --laser-nm)
  3  the scan raised a hazard alarm

examples:
  ramanid scan --device /dev/ttyUSB0 --integration-ms 500 --averages 4 --dark
  ramanid scan --device sim://wasatch?sample=Caffeine --json
  ramanid scan --device socket://127.0.0.1:5555 --protocol obp --laser-nm 785 --save s.csv
"""


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    for conv in (int, float):
        try:
            return key.strip(), conv(value)
        except ValueError:
            continue
    return key.strip(), value


def register(subparsers: Any) -> None:
    """Add ``scan`` to the ``ramanid`` command line."""
    from ramanid.cli.identify import _laser_nm, _positive_int, add_output_options

    p = subparsers.add_parser(
        "scan", help="acquire a spectrum from a device and identify it",
        description="Acquire from a spectrometer (serial port, pseudo-terminal, socket://HOST:"
                    "PORT or sim://PROFILE), convert to Raman shift with the device's "
                    "calibration, and print the verdict exactly as `ramanid identify` does.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, metavar="URL",
                   help="port or URL: /dev/ttyUSB0, COM3, socket://host:port, sim://wasatch")
    p.add_argument("--protocol", choices=("obp", "wasatch"),
                   help="device protocol (default: from sim:// or probed)")
    p.add_argument("--integration-ms", type=float, default=100.0, metavar="N",
                   help="integration time in ms (default 100)")
    p.add_argument("--averages", type=_positive_int, default=1, metavar="N",
                   help="scans to average (default 1)")
    p.add_argument("--dark", action="store_true",
                   help="take a dark scan with the laser off and subtract it")
    p.add_argument("--save", metavar="FILE",
                   help="also write the raw scan with its metadata (.csv, .jdx, .h5)")
    p.add_argument("--laser-nm", type=_laser_nm, default=None, metavar="NM",
                   help="excitation wavelength (needed for OBP devices without a calibration "
                        "record; overrides the device's value)")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="driver profile option, e.g. target_baud=115200, byte_order=big, "
                        "margin_s=1 (see docs: drivers)")
    add_output_options(p)
    p.set_defaults(func=run)


def acquire_batch(args: argparse.Namespace, stderr=None):
    """Open the device, acquire as the options say, return a one-row calibrated SpectrumBatch."""
    from ramanid.calibration import load_record
    from ramanid.drivers import open_device
    from ramanid.errors import CalibrationError, UsageError

    stderr = sys.stderr if stderr is None else stderr
    options = dict(args.option)
    options.update(integration_ms=args.integration_ms, averages=args.averages)
    if args.laser_nm is not None:
        options["laser_nm"] = args.laser_nm
    with open_device(args.device, args.protocol, **options) as dev:
        serial = dev.identity.serial
        record = load_record(serial)
        if record is not None and not record.passed:
            # a record that failed its own checks is not applied; the verdict warns
            print(f"ramanid: warning: calibration {record.id} of device {serial} FAILED its "
                  "checks and is not applied (factory calibration used); re-calibrate",
                  file=stderr)
            record = None
        if dev.laser_enabled is False:
            dev.set_laser(True)
        dark = dev.acquire_dark() if args.dark else None
        scan = dev.acquire(dark=dark)
        if dev.laser_enabled:
            dev.set_laser(False)
    meta = scan.metadata()
    meta.pop("calibration_id", None)
    laser = args.laser_nm or scan.laser_nm or (record.laser_nm if record else None)
    if not laser and (record is None or record.wavelength_fit() is None):
        raise UsageError("the device does not report its excitation wavelength",
                         source=args.device, hint="pass --laser-nm (e.g. 785)")
    meta.pop("laser_nm", None)
    if record is not None:
        from ramanid.calibration import apply_calibration

        wf = record.wavelength_fit()
        try:
            if wf is not None and wf.x_kind == "pixel":
                return apply_calibration((scan.pixels, scan.counts, [meta]), record,
                                         laser_nm=laser)
            return apply_calibration(scan.to_batch(laser_nm=laser, **meta), record,
                                     laser_nm=laser)
        except CalibrationError as exc:
            print(f"ramanid: warning: calibration record {record.id} not applied: "
                  f"{exc.one_line()}; using the device's own calibration", file=stderr)
    return scan.to_batch(laser_nm=laser, calibration_id=None, **meta)


def run(args: argparse.Namespace) -> int:
    """Handler of ``ramanid scan``."""
    from ramanid.cli.identify import check_plot_target, run_identification

    check_plot_target(args.plot)  # before the laser is switched on
    batch = acquire_batch(args)
    if args.operator:
        batch.meta[0]["operator"] = args.operator
    if args.save:
        from ramanid.io import write

        write(batch, args.save)
    return run_identification(batch, args)
