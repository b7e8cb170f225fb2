"""The ``ramanid`` command line.

Each command lives in its own module of this package and exposes ``register(subparsers)``, which
adds its sub-parser and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and
returning an exit status). Command modules import heavy dependencies (matplotlib, h5py, dask,
serial) inside their handlers, never at module level, so that start-up stays fast.

Exit statuses: 0 success and nothing hazardous, 1 input error, 2 usage error, 3 at least one
hazardous identification, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ramanid._version import __version__
from ramanid.errors import EXIT_INPUT, EXIT_INTERRUPTED, RamanidError

# Command modules, in the order they appear in ``ramanid --help``.
COMMAND_MODULES = (
    "identify",
    "scan",
    "demo",
    "batch",
    "archive",
    "library",
    "devices",
    "simulate",
    "calibrate",
    "calibration",
)

EPILOG = """\
exit status:
  0  done, nothing hazardous identified
  1  input error (unreadable file, device or library problem)
  2  usage error (bad command line)
  3  at least one scan raised a hazard alarm
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="ramanid",
        description="Identify substances from Raman scans; warn loudly about synthetic opioids.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ramanid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"ramanid.cli.{name}")
        except ModuleNotFoundError as exc:  # command not built yet in this checkout
            if exc.name == f"ramanid.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RamanidError as exc:
        print(f"ramanid: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("ramanid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into a program that stopped reading (e.g. `| head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # file system: permission, no space, is a directory, ...
        name = exc.filename2 or exc.filename  # os.replace(tmp, target): filename2 is the target
        where = f"{name}: " if name else ""
        print(f"ramanid: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print("ramanid: error: out of memory; process fewer scans at once (see --chunk-size)",
              file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # a bug: still one line for the user, the traceback on request
        if os.environ.get("RAMANID_DEBUG"):
            raise
        print(f"ramanid: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}; "
              "this is a bug: run again with RAMANID_DEBUG=1 for details and report it",
              file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
