"""The one exception type the command-line tools turn into a one-line message."""


class UserError(Exception):
    """A problem the user can fix (a flag, a file, a checkpoint): the message says which and what was expected.

    Entry points print ``str(error)`` as one line on stderr and exit non-zero, without a traceback.
    """
