"""``ramanid simulate``: serve one simulated spectrometer on a pseudo-terminal or TCP port."""

from __future__ import annotations

import argparse
import sys

HELP = """\
Serve a simulated spectrometer (Ocean STS over OBP, or Wasatch OEM UART) that answers like the
real device: a measured reference spectrum placed on the detector through its wavelength
calibration, fluorescence, shot and read noise, dark level, saturation, paced at the line rate.
Spectra it produces are simulated, and labelled so in every scan's metadata.

examples:
  ramanid simulate --protocol wasatch --sample Caffeine --pty
  ramanid simulate --protocol obp --sample lactose --tcp 5555 --faults garbage=1,corrupt=1
  ramanid scan --device socket://127.0.0.1:5555 --laser-nm 785
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` command."""
    p = subparsers.add_parser("simulate", help="serve a simulated spectrometer (pty or TCP)",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=("obp", "wasatch"), default="wasatch",
                   help="device to simulate (default wasatch)")
    p.add_argument("--sample", default="acetaminophen",
                   help="measured reference spectrum: library name or file (default "
                        "acetaminophen)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (default)")
    where.add_argument("--tcp", type=int, metavar="PORT",
                       help="serve on 127.0.0.1:PORT (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="TCP address to bind (default 127.0.0.1)")
    p.add_argument("--faults", metavar="SPEC", help="fault injection, e.g. "
                   "'garbage=1,drop=1,corrupt=1,truncate=1,delay=0.5,nack=1,disconnect=1,"
                   "on=spectrum,after=0'")
    p.add_argument("--no-pace", action="store_true",
                   help="send bytes as fast as possible instead of at the line rate")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--fluorescence", type=float, help="fluorescence background, counts/s")
    p.add_argument("--signal", type=float, help="Raman counts/s at the strongest band")
    p.add_argument("--interlock", choices=("closed", "open"), default="closed",
                   help="laser interlock state (wasatch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from ramanid.drivers.simulator import PROFILE_OF_PROTOCOL, make_engine
    from ramanid.drivers.simulator.servers import PtyServer, TcpServer

    options = {"sample": args.sample, "faults": args.faults, "pace": not args.no_pace,
               "seed": args.seed}
    if args.fluorescence is not None:
        options["fluorescence"] = args.fluorescence
    if args.signal is not None:
        options["signal"] = args.signal
    if args.protocol == "wasatch":
        options["interlock"] = args.interlock
    engine = make_engine(PROFILE_OF_PROTOCOL[args.protocol], **options)
    if args.tcp is not None:
        server = TcpServer(engine, args.host, args.tcp)
        where = server.url
    else:
        server = PtyServer(engine)
        where = server.path
    extra = " --laser-nm 785" if args.protocol == "obp" else ""
    print(f"simulated {args.protocol} device ({engine.device.detector.sample.name}) at {where}")
    print(f"connect with: ramanid scan --device {where}{extra}")
    print("Ctrl-C to stop", flush=True)
    server.start()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if server.error is not None:
        print(f"ramanid: simulator stopped: {server.error}", file=sys.stderr)
        return 1
    return 0
