"""``ramanid archive``: pack scan files into a ramanid HDF5 scan archive, and inspect one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  ramanid archive pack scans/ --out scans.h5            # every scan file under scans/
  ramanid archive pack scans/ --out scans.h5 --append   # add newer scans to an archive
  ramanid archive info scans.h5
"""


def register(subparsers: Any) -> None:
    """Add ``archive`` (``pack``, ``info``) to the ``ramanid`` command line."""
    p = subparsers.add_parser(
        "archive", help="pack scan files into an HDF5 scan archive; show an archive",
        description="ramanid scan archives hold many scans in one HDF5 file (chunked, "
                    "compressed, all metadata, a stable scan id per scan) for fast batch work.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="archive_command", metavar="ACTION", required=True)
    pk = sub.add_parser("pack", help="pack a directory of scan files into an archive",
                        description="Read every supported scan file under DIR (recursively, "
                                    "sorted) and write them into one archive, atomically. "
                                    "Files that cannot be read are listed and skipped.")
    pk.add_argument("directory", metavar="DIR")
    pk.add_argument("--out", required=True, metavar="ARCHIVE.h5")
    pk.add_argument("--append", action="store_true", help="append to an existing archive")
    pk.add_argument("--dtype", choices=("float64", "float32", "uint16"), default="float64",
                    help="storage type of intensities (default float64, lossless; uint16 only "
                         "for raw whole counts, refused otherwise)")
    pk.add_argument("--compression", choices=("gzip", "lz4", "lzf", "none"), default="gzip",
                    help="compression of the intensities (default gzip + shuffle: small, read "
                         "by every HDF5 tool; lz4: bitshuffle + LZ4 from hdf5plugin, pip install "
                         "'ramanid[lz4]': as small, read ~5x faster, for archives that are "
                         "re-identified often; none: about 1.4x larger)")
    pk.set_defaults(func=pack_main)
    info = sub.add_parser("info", help="number of scans, axis groups and metadata columns")
    info.add_argument("archive", metavar="ARCHIVE.h5")
    info.set_defaults(func=info_main)


def pack_main(args: argparse.Namespace) -> int:
    """Pack a directory; print counts and the files that could not be read."""
    from pathlib import Path

    from ramanid.batch import walk_files
    from ramanid.errors import InputError
    from ramanid.io import read_batches, require_raman
    from ramanid.io.archive import ArchiveWriter, is_archive

    src = Path(args.directory)
    if not src.is_dir():
        raise InputError("not a directory", source=src)
    todo = [f for f in walk_files(src, exclude=[Path(args.out)]) if not is_archive(f)]
    if not todo:
        raise InputError(f"no scan files under {src}", source=src,
                         hint="give the folder that holds the scan files")
    failed: list[str] = []
    files = 0
    comp = None if args.compression == "none" else args.compression
    with ArchiveWriter(args.out, "a" if args.append else "w", dtype=args.dtype,
                       compression=comp, skip_duplicates=True) as writer:
        before = len(writer)
        for f in todo:
            try:
                # only Raman scans go into an archive (the rule `ramanid identify` applies)
                batches = [require_raman(b, f) for b in read_batches(f)]
            except InputError as exc:
                failed.append(exc.one_line())
                continue
            files += 1
            for b in batches:
                writer.append(b)
        added = len(writer) - before
        skipped = writer.skipped
    done = f"packed {added} {'new ' if args.append else ''}scans from {files} files into {args.out}"
    if skipped:
        done += f"; {skipped} already in the archive, not added again"
    print(done)
    for line in failed:
        print(f"  skipped: {line}", file=sys.stderr)
    return 0


def info_main(args: argparse.Namespace) -> int:
    """Print what an archive holds."""
    from ramanid.io.archive import ArchiveReader

    with ArchiveReader(args.archive) as reader:
        groups = reader.groups()
        print(f"{args.archive}: {len(reader)} scans in {len(groups)} axis groups")
        for i, g in enumerate(groups):
            print(f"  group {i}: {g['n']} scans, {g['points']} points "
                  f"{g['axis_min']:.1f}-{g['axis_max']:.1f} cm-1, stored as {g['dtype']} "
                  f"({g['compression']}), "
                  f"metadata: {', '.join(g['meta'])}")
    return 0
