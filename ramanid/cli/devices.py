"""``ramanid devices``: list serial ports and, with ``--probe``, which protocol answers."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``devices`` command."""
    p = subparsers.add_parser(
        "devices", help="list serial ports (and probe them for spectrometers)",
        description="List serial ports. With --probe, try each protocol briefly on each port "
                    "(Wasatch ping at 921600 baud, then OBP serial-number query at 9600).",
        epilog="example: ramanid devices --probe\n         ramanid devices --probe --port "
               "socket://127.0.0.1:5555",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", action="store_true", help="ask each port which protocol it speaks")
    p.add_argument("--port", action="append", default=[], metavar="URL",
                   help="also list/probe this port or URL (repeatable)")
    p.add_argument("--timeout", type=float, default=0.4, help="probe timeout per protocol, s")
    p.add_argument("--json", action="store_true", help="one JSON object per port")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List (and probe) ports."""
    from serial.tools import list_ports

    from ramanid.drivers import probe
    from ramanid.errors import RamanidError

    rows = [{"port": p.device, "description": p.description, "hwid": p.hwid}
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]
    rows += [{"port": u, "description": "given", "hwid": ""} for u in args.port]
    for row in rows:
        if args.probe:
            try:
                row["protocol"] = probe(row["port"], args.timeout)
            except RamanidError as exc:
                row["protocol"] = None
                row["error"] = exc.one_line()
        if args.json:
            print(json.dumps(row))
        else:
            proto = ""
            if args.probe:
                proto = f"  protocol: {row.get('protocol') or 'none answered'}"
            print(f"{row['port']}  {row['description']}{proto}")
    if not rows and not args.json:
        print("no serial ports found")
    return 0
