"""One exception type for bad input, so the CLI can print one clear line and exit 2."""


class UserError(Exception):
    """Bad input from the user: a file, key or value that is wrong, and what was expected.

    The message must name the offending file/key/value; the CLI prints it as one line.
    """
