"""The receive buffer shared by the incremental frame parsers of every protocol."""

from __future__ import annotations


class StreamBuffer:
    """Bytes received but not yet parsed, with counts of what was discarded.

    Attributes
    ----------
    garbage_bytes
        Bytes skipped while resynchronising on a frame start.
    bad_frames
        Frames rejected (bad length, checksum, footer, ...).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._wait = 0  # bytes needed before parsing can progress (fast path)
        self.garbage_bytes = 0
        self.bad_frames = 0

    def reset(self) -> None:
        """Forget buffered bytes."""
        self._buf.clear()
        self._wait = 0

    @property
    def buffered(self) -> int:
        """Number of bytes held waiting for the rest of a frame."""
        return len(self._buf)
