"""User-facing errors: one line that names the problem and the fix.

The CLI turns a :class:`UserError` into that line on stderr and exit code 2, a :class:`WriteFailed`
(or other failed work) into one line and exit code 1, an :class:`Interrupted` into the command
that resumes and exit code 128 + the signal; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, missing or corrupt file)."""


class DataError(UserError):
    """The data set could not be found, fetched or verified."""


class CheckFailed(Exception):
    """The work ran, but its own check of the result failed (an export whose outputs differ): exit 1."""


class WriteFailed(OSError):
    """A file could not be written (disk full, file too large, a read-only folder): exit 1, one line.

    The message names the file the user knows (not the temporary file) and the system's reason.
    """

    @classmethod
    def of(cls, path: object, exc: OSError) -> "WriteFailed":
        failed = cls(f"{path}: cannot write ({exc.strerror or exc})")
        failed.errno = exc.errno
        return failed


class Interrupted(KeyboardInterrupt):
    """Stopped by SIGINT (Ctrl-C) or SIGTERM at a consistent point; the CLI exits 128 + the signal's number.

    ``resume`` is the command that continues the work (None: nothing was written that could resume).
    A KeyboardInterrupt, so code that already stops on Ctrl-C stops on it too.
    """

    def __init__(self, signum: int, resume: str | None = None):
        super().__init__(signum, resume)
        self.signum, self.resume = signum, resume
