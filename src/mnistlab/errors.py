"""User-facing errors: one line that names the problem and the fix.

The CLI turns a :class:`UserError` into that line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, missing or corrupt file)."""


class DataError(UserError):
    """The data set could not be found, fetched or verified."""


class CheckFailed(Exception):
    """The work ran, but its own check of the result failed (an export whose outputs differ): exit 1."""
