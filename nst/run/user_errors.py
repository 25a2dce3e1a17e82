"""Bad settings as the one line a user should see: parser messages made plain, config files
checked with the file and line named, and the errors of a run's libraries (out of memory,
Lightning's checks of trainer options) turned into one line that names the fix."""

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException

from nst.errors import NSTError, brief


def config_files(args: Sequence[str]) -> list[str]:
    """The values of every ``--config``/``-c`` in command-line arguments, in order."""
    found = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-c", "--config")]
    return found + [arg.removeprefix("--config=") for arg in args if arg.startswith("--config=")]


def check_config_files(args: Sequence[str]) -> None:
    # jsonargparse reports a broken YAML file without its name; this names the file and the line.
    for given in config_files(args):
        path = Path(given)
        if not path.exists() and (":" in path.name or "\n" in str(path)):
            continue  # a config given inline, as jsonargparse allows
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise NSTError(f"config {path} {what}; give a YAML file such as configs/starry.yaml")
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise NSTError(f"config {path} cannot be read ({error.strerror or error})") from error
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            where = getattr(error, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(error, "problem", None) or "it is not UTF-8 text"
            raise NSTError(f"config {path} is not valid YAML ({problem}{at}); fix the file") from error
        if content is not None and not isinstance(content, dict):
            raise NSTError(f"config {path} is not a YAML mapping of options such as 'model:' and 'data:'")


_UNION_ERROR = re.compile(
    r'^(?P<key>Parser key "[^"]+"): Does not validate against any of the Union subtypes '
    r"Subtypes: .*? Errors: - (?P<errors>.*?) Given value type: .*? Given value: (?P<value>.*)$"
)


def _plain_parser_error(message: str) -> str:
    """jsonargparse's report on an option of several types (``int | list[int]``, ``X | None``),
    cut to what was wrong with the value: null was never what the user meant."""
    match = _UNION_ERROR.match(message)
    if match is None:
        return message
    errors = [e for e in match["errors"].split(" - ") if "NoneType" not in e]
    if len(errors) > 1 and any("Got value" in e for e in errors):
        return message  # several partial matches: each says what it needed, so keep them all
    errors = [re.sub(r"<class '(\w+)'>", r"\1", e).replace("Expected a ", "expected ") for e in errors]
    if len(errors) == 1 and "Got value" in errors[0]:
        return f"{match['key']}: {errors[0]}"
    expected = " or ".join(e.removeprefix("expected ") for e in errors)
    return f"{match['key']}: expected {expected}. Got value: {match['value']}"


def as_nst_error(error: BaseException, command: str = "fit") -> NSTError | None:
    """The error a user should see for ``error`` raised while building or running (by the
    command line's ``command``), or None for a bug, which keeps its traceback."""
    if isinstance(error, NSTError):
        return error
    if isinstance(error, torch.OutOfMemoryError):
        fix = (
            "lower data.batch_size or data.size"
            if command == "train"
            else "lower data.size, model.lbfgs_history, or use model.optimizer adam"
        )
        return NSTError(f"the device ran out of memory ({brief(error)}); {fix}")
    if isinstance(error, argparse.ArgumentError):  # from the config parser
        message = _plain_parser_error(" ".join(str(error).split()))
        return NSTError(f"{message} (python cli.py {command} --help lists the options)")
    if isinstance(error, ValueError) and not isinstance(error, NSTError | MisconfigurationException):
        # A callback of trainer.callbacks that refuses its settings as it is made (Lightning's
        # EarlyStopping with mode: mx) is reported by jsonargparse as a ValueError about the
        # whole union of callbacks types, caused by the callback's own error, which says it.
        cause = _cause(error)
        if isinstance(cause, MisconfigurationException):
            made = re.search(r"class_path='(?:[\w.]+\.)?(\w+)'", str(error))  # which callback said it
            return NSTError(f"{made[1] + ': ' if made else ''}{' '.join(str(cause).split())}")
        if cause is not None:
            return cause
    if isinstance(error, MisconfigurationException):  # Lightning's own checks of trainer options
        message = " ".join(str(error).split())
        if any(word in message.lower() for word in ("gpu", "cuda", "mps")):
            found = "a CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"
            found += ", MPS" if torch.backends.mps.is_available() else ""
            message += f" (this machine has {found}; use --trainer.accelerator auto or cpu)"
        return NSTError(message)
    return None


def _cause(error: BaseException) -> NSTError | MisconfigurationException | None:
    """The NSTError or Lightning MisconfigurationException among ``error``'s causes, if any."""
    seen: set[int] = set()
    cause = error.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, NSTError | MisconfigurationException):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None
