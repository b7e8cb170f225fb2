"""Exception types and CLI exit statuses shared by every part of ramanid.

Every error meant for a user carries a one-line message that says which file (or device, or
argument), what is wrong, and what to do. The CLI prints ``ramanid: error: <message>`` and exits
with the status attached to the exception class; it never shows a traceback for these.
"""

from __future__ import annotations

from os import PathLike

# Exit statuses of the command-line interface (documented in README and --help).
EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_HAZARD = 3
EXIT_INTERRUPTED = 130


class RamanidError(Exception):
    """Base class of errors reported to the user as one line, without a traceback.

    Parameters
    ----------
    message
        What is wrong.
    source
        The file, device URL or other thing the error is about, if any.
    hint
        What the user can do about it, if anything useful can be said.
    """

    exit_status: int = EXIT_INPUT

    def __init__(
        self, message: str, *, source: str | PathLike[str] | None = None, hint: str | None = None
    ) -> None:
        self.message = message
        self.source = None if source is None else str(source)
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Return the message as a single line: ``source: message (hint)``."""
        text = self.message if self.source is None else f"{self.source}: {self.message}"
        if self.hint:
            text = f"{text}; {self.hint}"
        return " ".join(text.split())


class InputError(RamanidError):
    """Bad input data: unreadable, malformed or physically implausible file or scan."""

    exit_status = EXIT_INPUT


class UsageError(RamanidError):
    """The command line or an API call was used wrongly (bad option value, missing argument)."""

    exit_status = EXIT_USAGE


class LibraryError(RamanidError):
    """A reference library cannot be used: missing, corrupt, tampered with, or incompatible."""

    exit_status = EXIT_INPUT


class DeviceError(RamanidError):
    """A spectrometer (or its simulator) failed, refused a command or could not be reached."""

    exit_status = EXIT_INPUT


class CalibrationError(RamanidError):
    """A calibration could not be made or applied (too few lines, wrong lamp, bad fit, ...)."""

    exit_status = EXIT_INPUT
