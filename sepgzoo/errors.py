"""User-facing errors: bad input that the CLI reports in one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: a path, key or value that is wrong, named in the message with what was expected."""
