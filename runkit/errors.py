"""The exception types the CLI turns into one line: ``UserError`` (bad input, exit status 2)
and ``RunFailed`` (a run that cannot go on, exit status 1)."""


class UserError(Exception):
    """Bad input from the user. The CLI prints ``rlgen: error: <message>`` and exits 2.

    The message must name the input and say what is allowed, in one line.
    """

    exit_code = 2


class RunFailed(Exception):
    """A run that cannot go on (non-finite updates in a row, a full disk). The CLI prints
    ``rlgen: error: <message>`` and exits 1; the message names the last good checkpoint."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for the one
    line a UserError gives."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
