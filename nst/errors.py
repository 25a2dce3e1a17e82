"""The one exception type that reaches the user as a single line instead of a traceback."""


class NSTError(Exception):
    """A problem with the user's input or environment, stated as one line that names the fix."""
