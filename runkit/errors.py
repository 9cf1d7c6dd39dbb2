"""The one exception type that means "the user gave us bad input" (exit status 2)."""


class UserError(Exception):
    """Bad input from the user. The CLI prints ``rlgen: error: <message>`` and exits 2.

    The message must name the input and say what is allowed, in one line.
    """

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for the one
    line a UserError gives."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
