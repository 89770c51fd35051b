"""User-facing errors: the CLI prints them as one line and exits with code 2, no traceback."""


class BenchError(Exception):
    """A problem with the user's input (a file, an option, a storage URL).

    The message must name the culprit (the file or option) and say what is wrong.
    """
