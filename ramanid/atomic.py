"""Atomic file writes: write to a temporary file beside the target, flush, fsync, then rename.

A crash, a full disk or ``kill -9`` at any point leaves either the old file or the new one, never a
half-written file. Use :func:`atomic_path` for writers that want a path (h5py, pyarrow, matplotlib)
and :func:`atomic_write_text` / :func:`atomic_write_bytes` for small files.

``durable=False`` skips the fsyncs (for checkpoints, which are many and are checked before they
are reused): the rename is still atomic for every process (``kill -9`` of the writer leaves the
old file or the new one), but after a power failure or an operating-system crash the new file
may be there empty or short, so the reader must be able to tell (``ramanid batch`` records the
size of each checkpoint in its summary and redoes a checkpoint of another size). On a slow disk
an fsync per checkpoint stalls the writer for milliseconds to seconds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _read_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# Files get the permissions an ordinary open() would give them (mkstemp makes them 0600).
_FILE_MODE = 0o666 & ~_read_umask()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None, *,
                durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    Parameters
    ----------
    target
        Final path of the file.
    suffix
        Suffix of the temporary file (defaults to the target's, so writers that look at the
        extension behave the same).
    durable
        fsync the file before and its directory after the rename (module docstring).

    Notes
    -----
    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix + ".tmp",
                               dir=directory)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        move_into_place(tmp_path, target, durable=durable)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def move_into_place(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *,
                    durable: bool = True) -> None:
    """Rename the finished file ``tmp`` (in ``target``'s directory) over ``target``, with the
    permissions an ordinary ``open()`` gives; ``durable``: fsync the file first and its
    directory after (module docstring). The last step of :func:`atomic_path`, for a writer
    that builds its temporary file over a longer time (``ramanid batch``'s result)."""
    tmp, target = Path(tmp), Path(target)
    if durable:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, target)
    if durable:
        _fsync_dir(target.parent if str(target.parent) else Path("."))


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, *,
                       durable: bool = True) -> None:
    """Write ``data`` to ``target`` atomically (``durable``: see :func:`atomic_path`)."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8", *,
                      durable: bool = True) -> None:
    """Write ``text`` to ``target`` atomically (``durable``: see :func:`atomic_path`)."""
    atomic_write_bytes(target, text.encode(encoding), durable=durable)
