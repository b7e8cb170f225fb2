"""``ramanid batch``: re-identify directories of scans and scan archives, resumably, at scale."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
inputs:
  Directories are walked recursively (every supported scan format, mixed); .h5 files in them and
  on the command line are read as ramanid scan archives (see `ramanid archive pack`).

output:
  RESULTS holds one row per scan: scan_id, source (file or archive#index), status/error, the
  verdict fields of `ramanid identify --json` (top_id/top_name/top_score + JSON lists), library
  version and sha256, recipe, engine version and the scan's metadata. RESULTS.summary.json holds
  the counts. With --since-library, RESULTS_STEM.changes.EXT lists the scans whose verdict
  changed, new hazard hits first. Checkpoints live in RESULTS.parts/ until the job completes.

examples:
  ramanid batch scans/ archive-2024.h5 --out results.parquet
  ramanid batch archive.h5 --out results.csv --library new.h5 --since-library old.h5
  ramanid batch archive.h5 --out results.parquet --resume          # after a crash or kill
  ramanid batch archive.h5 --out results.parquet --scheduler tcp://10.0.0.5:8786

exit status:
  0  done, no hazard alarm        3  at least one scan raised a hazard alarm
  1  input error that stops the job (missing input, bad library)    2  usage error
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(subparsers: Any) -> None:
    """Add ``batch`` to the ``ramanid`` command line."""
    from ramanid.batch_job import DEFAULT_CHUNK_SIZE

    p = subparsers.add_parser(
        "batch", help="re-identify directories of scans and scan archives (resumable, parallel)",
        description="Identify every scan in the inputs against the library, in chunks of bounded "
                    "memory, on all local cores or a Dask cluster, with a checkpoint per chunk.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="directory of scan files (walked recursively), ramanid scan archive "
                        "(.h5), or a single scan file")
    p.add_argument("--out", required=True, metavar="RESULTS",
                   help="result file (.parquet, .csv or .jsonl)")
    p.add_argument("--library", metavar="PATH", help="reference library (default: bundled)")
    p.add_argument("--since-library", metavar="OLD_LIBRARY", dest="old_library",
                   help="also report which scans change verdict against this older library")
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"), default=None,
                   help="result format (default: from the --out extension)")
    p.add_argument("--workers", type=_positive, default=None, metavar="N",
                   help="worker processes (default: all usable cores)")
    p.add_argument("--executor", choices=("processes", "threads"), default="processes",
                   help="local parallelism (default: processes)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on Dask: tcp://HOST:PORT of a running scheduler, or 'local' for a "
                        "LocalCluster (needs `pip install 'ramanid[dask]'`); workers must see "
                        "the same paths")
    p.add_argument("--chunk-size", type=_positive, default=DEFAULT_CHUNK_SIZE, metavar="N",
                   help=f"scans per chunk (archive) or files per chunk (directory); memory "
                        f"per worker grows with it (default {DEFAULT_CHUNK_SIZE})")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted job from its checkpoints")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the batch job and print the summary; exit 3 on any hazard alarm."""
    from ramanid.batch import BatchOptions, exit_status, run_batch

    options = BatchOptions(out=args.out, fmt=args.format, library=args.library,
                           old_library=args.old_library, chunk_size=args.chunk_size,
                           workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                           executor=args.executor, progress=args.progress)
    summary = run_batch(args.inputs, options)
    print(summary.render())
    print(f"results: {args.out}")
    if args.old_library:
        from ramanid.batch_job import JobConfig

        print("changes: " + str(JobConfig(args.out, "", None, args.old_library, 1, ())
                                .changes_path))
    sys.stdout.flush()
    return exit_status(summary)
