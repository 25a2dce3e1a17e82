"""The one exception type that reaches the user as a single line instead of a traceback, and the
argument parser whose errors are such a line."""

import argparse
import sys
from typing import NoReturn


class NSTError(Exception):
    """A problem with the user's input or environment, stated as one line that names the fix."""

    def __str__(self) -> str:
        # One line whatever was put into it: a library's text embedded in the message may
        # have had several (torch explains weights_only in paragraphs).
        return " ".join(super().__str__().split())


def brief(error: BaseException, limit: int = 200) -> str:
    """The first line of a library's error message, for embedding in an NSTError."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OneLineParser(argparse.ArgumentParser):
    """The argument parser of a command that is not a config's (nst export, nst apply): a bad
    argument is one ``error:`` line naming the command's --help, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("nst ")
        print(f"error: {message} (python cli.py {command} --help)", file=sys.stderr)
        sys.exit(2)
