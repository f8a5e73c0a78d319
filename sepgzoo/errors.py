"""User-facing errors: bad input that the CLI reports in one message, without a traceback."""

import re

# How torch's DataLoader re-raises an exception from a worker process: the original traceback inside the message.
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback", re.S)


class UserError(Exception):
    """Bad input from the user: a path, key or value that is wrong, named in the message with what was expected."""


class RecipeWarning(UserWarning):
    """A recipe value that is allowed but probably not meant (a milestone past the last epoch); the CLI prints it
    as one `warning:` line."""


def user_message(err: UserError) -> str:
    """What the user is told: the message, or, for an error a DataLoader worker raised, the original message alone
    (the worker's traceback is the library's business, not the user's)."""
    text = str(err)
    if _WORKER_WRAPPED.match(text):
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith(f"{__name__}.") and ": " in last else last
    return text
