"""Errors caused by what the user gave: a file, folder, config key or value.

Every such error derives from :class:`UserError`; the command-line tools print its message on one line
and exit with status 2, without a traceback (:func:`rs_image.engine.launch.run_cli`). Anything else is a
bug or an environment problem and keeps its traceback. The classes also derive from the built-in error a
caller would expect (``FileNotFoundError``, ``ValueError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["UserError", "DataNotFoundError", "DataError", "TooManyFailuresError", "one_line"]


class UserError(Exception):
    """Base of the errors a user fixes by changing an input; the message says what and where."""

    def __str__(self) -> str:  # KeyError subclasses would repr() the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data folder or file that the configuration points to does not exist or holds nothing usable."""


class DataError(UserError, ValueError):
    """Data that contradicts the configuration or is malformed (a class count, a line, a label)."""


class TooManyFailuresError(UserError, RuntimeError):
    """Too many samples of a data set could not be loaded (the message names examples)."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An error re-raised from a DataLoader worker carries the
    worker's traceback in its message; only the original message is kept."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
