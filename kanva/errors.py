"""One error type for bad input: the CLI prints its message and exits non-zero.

Messages name the file, sample or field at fault, so a user can fix the input without a traceback.
"""


class KanvaError(Exception):
    """A user-facing error (bad input, bad config, missing asset). Exit code 2 from the CLI."""

    exit_code = 2
