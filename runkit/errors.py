"""The one exception type that means "the user gave us bad input" (exit status 2)."""


class UserError(Exception):
    """Bad input from the user. The CLI prints ``rlgen: error: <message>`` and exits 2.

    The message must name the input and say what is allowed, in one line.
    """

    exit_code = 2
