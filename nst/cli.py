"""The command line: LightningCLI with run directories, resume and clean errors.

python cli.py fit --config configs/starry.yaml
python cli.py fit --config configs/starry.yaml --ckpt_path last
python cli.py sweep --config configs/starry.yaml --sweep configs/sweeps/4_style_weight_x_init.yaml
"""

import argparse
import copy
import logging
import os
import re
import signal
import sys
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.plugins import CheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.strategies import Strategy

from nst import runs
from nst.animation import Animation
from nst.callbacks import FinalImage, ImageLogger, StepProgressBar
from nst.checkpointing import AtomicCheckpointIO, RunCheckpoint, RunInterrupted, ignore_stop_signals
from nst.data import StyleTransferData
from nst.errors import NSTError
from nst.module import StyleTransfer, check_same_run
from nst.phases import total_steps

LOGGER = "lightning.pytorch.loggers.TensorBoardLogger"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 500,
    "devices": 1,
    "log_every_n_steps": 5,
    "num_sanity_val_steps": 0,
    # name None: named after the config file, see _choose_run_dir
    "logger": {
        "class_path": LOGGER,
        "init_args": {"save_dir": "logs", "name": None, "default_hp_metric": False},
    },
}


class RunConfig(SaveConfigCallback):
    """Saves the resolved config in the run directory; a resumed run adds ``config.resumeN.yaml``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._written: Path | None = None
        self._start_step: int | None = None

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if trainer.logger is None:  # log_dir would be the working directory: not ours to write into
            return
        if trainer.is_global_zero:
            n = 0
            while (Path(trainer.log_dir) / self.config_filename).exists():
                n += 1
                self.config_filename = f"config.resume{n}.yaml"
            self._written = Path(trainer.log_dir) / self.config_filename
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._start_step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: Any, exception: BaseException) -> None:
        # A resume that failed before its first step leaves no config behind to describe it.
        resumed = self._written is not None and self._written.name != "config.yaml"
        if (
            resumed
            and self._start_step in (None, trainer.global_step)
            and not isinstance(exception, RunInterrupted)
        ):
            self._written.unlink(missing_ok=True)


class StyleTransferCLI(LightningCLI):
    """LightningCLI with one run directory per run and ``--ckpt_path last`` that finds it."""

    def __init__(self, *args: Any, new_run_dirs: list[list[Path]] | None = None, **kwargs: Any) -> None:
        # Directories this process created (see runs.create_run_dir), so that a failed start
        # can remove them again.
        self.new_run_dirs = new_run_dirs if new_run_dirs is not None else []
        self.config_as_given: Any = None
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> Any:
        # Parse errors are raised rather than printed with the whole usage text, so that main()
        # can answer them in one line like every other bad input.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # validate/test/predict have no meaning for an optimisation without data splits.
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ImageLogger, "image_log")
        parser.add_lightning_class_args(FinalImage, "output")
        parser.add_lightning_class_args(Animation, "animation")

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads an explicit checkpoint's hyperparameters right after parsing;
        # a file that is missing or not a checkpoint should say so in one line.
        path = self.config.get(str(self.config.get("subcommand")), {}).get("ckpt_path")
        if path in ("best", "hpc", "registry"):
            raise NSTError(
                f"nst keeps one checkpoint per run; use --ckpt_path last or a .ckpt file, not {path}"
            )
        if path and path != "last" and not Path(path).is_file():
            raise NSTError(f"checkpoint {path} does not exist; give a .ckpt file or --ckpt_path last")
        try:
            super()._parse_ckpt_path()
        except (Exception, SystemExit) as error:
            if path and not zipfile.is_zipfile(path):  # torch.save writes zip archives
                why = "it is not a whole file torch.save wrote"
            else:
                why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise NSTError(
                f"checkpoint {path} cannot be read ({why}); give the checkpoints/last.ckpt of a run"
            ) from error

    def before_instantiate_classes(self) -> None:
        _length_from_phases(self.config.fit if self.subcommand == "fit" else self.config)
        if self.subcommand != "fit":  # run=False: building the classes only
            return
        config = self.config.fit
        logger = config.trainer.logger
        if not (hasattr(logger, "class_path") and logger.class_path.endswith("TensorBoardLogger")):
            return  # a logger of the user's own: its directories are its business
        if logger.init_args.name is None:
            logger.init_args.name = _config_stem(config)
        # The config is saved without the version and checkpoint chosen below, so that running
        # a saved config again starts a new run instead of writing into the old one.
        self.config_as_given = copy.deepcopy(config)
        self._choose_run_dir(config, logger.init_args)
        if config.ckpt_path:
            # Checked here as well as when the module loads the checkpoint, so that a refused
            # resume is refused before the logger adds anything to the run's directory.
            check_same_run(_read_checkpoint(config.ckpt_path), config.model, config.data)

    def _choose_run_dir(self, config: Any, args: Any) -> None:
        root = Path(args.save_dir) / args.name
        if args.version is not None:
            run_dir = root / (f"version_{args.version}" if isinstance(args.version, int) else args.version)
        elif config.ckpt_path == "last":
            run_dir = runs.latest_run(root)
            if run_dir is None:
                raise NSTError(
                    f"no run of {args.name!r} to resume: {root} holds no checkpoints/last.ckpt; "
                    "start a fresh run without --ckpt_path"
                )
            args.version = runs.version_of(run_dir)
        else:
            made = runs.create_run_dir(root)
            self.new_run_dirs.append(made)
            args.version = runs.version_of(made[0])
            return
        if config.ckpt_path == "last":
            if not runs.checkpoint_of(run_dir).is_file():
                raise NSTError(f"{run_dir} holds no checkpoints/last.ckpt to resume from")
            config.ckpt_path = str(runs.checkpoint_of(run_dir))
            print(f"Resuming {run_dir}")
        elif config.ckpt_path is None and run_dir.is_dir() and any(run_dir.iterdir()):
            raise NSTError(
                f"{run_dir} already holds a run; resume it with --ckpt_path last, "
                "or leave trainer.logger.init_args.version unset for a new directory"
            )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        given = config.get("callbacks") or []
        given = [*(given if isinstance(given, list) else [given]), *callbacks]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in given
        ):
            callbacks = [*callbacks, StepProgressBar()]
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        strategy = config.get("strategy")
        strategy_io = isinstance(strategy, Strategy) and strategy._checkpoint_io is not None
        if not strategy_io and not any(isinstance(p, CheckpointIO) for p in plugins):
            config = {**config, "plugins": [*plugins, AtomicCheckpointIO()]}
        try:
            trainer = super()._instantiate_trainer(config, callbacks)
        except (ValueError, ImportError) as error:  # Lightning's checks of trainer.* options
            raise NSTError(f"trainer options: {' '.join(str(error).split())}") from error
        for callback in trainer.callbacks:
            if isinstance(callback, RunConfig) and self.config_as_given is not None:
                callback.config = self.config_as_given
        return trainer


def _length_from_phases(config: Any) -> None:
    # A multi-scale run lasts as long as its phases, so trainer.max_steps follows them; a
    # different length given on purpose is refused rather than cut or stretched.
    phases = config.model.phases
    if not phases:
        return
    total, given = total_steps(phases), config.trainer.max_steps
    if given not in (TRAINER_DEFAULTS["max_steps"], -1, None, total):
        raise NSTError(
            f"trainer.max_steps is {given} but model.phases add up to {total} steps; leave "
            "trainer.max_steps out (the phases set it) or change the phases' steps"
        )
    config.trainer.max_steps = total


def _read_checkpoint(path: str) -> dict[str, Any]:
    try:  # mmap: an L-BFGS checkpoint can be hundreds of MB, and only its settings are read
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise NSTError(
            f"checkpoint {path} cannot be read ({error}); give the checkpoints/last.ckpt of a run"
        ) from error


def _config_stem(config: Any) -> str:
    files = config.get("config") or []
    return Path(str(files[-1])).stem if files else "nst"


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


class _Console(logging.StreamHandler):
    """Lightning's notes ("GPU available: ...") go to stdout, so that stderr holds only warnings
    and, when something is wrong, the one error line."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(_NoAdverts())

    def emit(self, record: logging.LogRecord) -> None:
        # Looked up per record, as sys.stdout may be swapped (tests capture it).
        self.stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        super().emit(record)


def _quiet_lightning() -> None:
    # Advice meant for datasets; here an epoch is one step by design.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended.*")  # sweep cells
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")  # Lightning vs newer torch
    # Lightning gives "lightning" and (depending on the root logger) its subpackages plain
    # stderr handlers; one _Console on "lightning" replaces them all.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        if name != "lightning":  # reach the one _Console on "lightning"
            logger.propagate = True
    root = logging.getLogger("lightning")
    if not any(isinstance(h, _Console) for h in root.handlers):
        root.addHandler(_Console())


def _remove_unfinished(new_run_dirs: list[list[Path]]) -> None:
    # A run that stopped before its first checkpoint leaves nothing behind that looks like a result.
    for made in new_run_dirs:
        runs.remove_if_unfinished(made)


def make_cli(
    args: list[str] | None = None,
    run: bool = True,
    new_run_dirs: list[list[Path]] | None = None,
    callbacks: list[Callback] | None = None,
) -> StyleTransferCLI:
    """Build (and by default run) the CLI; ``callbacks`` are added to the trainer's."""
    defaults = {**TRAINER_DEFAULTS, "callbacks": callbacks} if callbacks else TRAINER_DEFAULTS
    return StyleTransferCLI(
        StyleTransfer,
        StyleTransferData,
        args=args,
        run=run,
        trainer_defaults=defaults,
        seed_everything_default=0,
        auto_configure_optimizers=False,  # the module chooses and configures its optimizer
        save_config_callback=RunConfig,
        new_run_dirs=new_run_dirs,
    )


def main(args: list[str] | None = None, callbacks: list[Callback] | None = None) -> None:
    """Entry point; ``args`` as on the command line (tests call it in-process)."""
    _quiet_lightning()
    new_run_dirs: list[list[Path]] = []
    handlers = _stop_on_signals()
    try:
        given = sys.argv[1:] if args is None else args
        _check_config_files(given)
        if given[:1] == ["sweep"]:
            from nst.sweep import run_sweep

            run_sweep(given[1:], new_run_dirs)
        else:
            make_cli(args, new_run_dirs=new_run_dirs, callbacks=callbacks)
    except BaseException as error:
        ignore_stop_signals()
        stop = _interruption_in(error)
        if stop is None:
            _remove_unfinished(new_run_dirs)
            message = _one_line(error)
            if message is None or os.environ.get("NST_DEBUG"):
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        if stop.checkpoint is None:
            _remove_unfinished(new_run_dirs)
        kept = stop.checkpoint or any(
            made[0].is_dir() for made in new_run_dirs
        )  # e.g. a sweep's finished cells
        hint = "\nContinue with the same command plus --ckpt_path last" if kept else ""
        print(f"{stop}{hint}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _interruption_in(error: BaseException) -> RunInterrupted | None:
    """The stop signal behind ``error``: itself, or one that Lightning's clean-up, failing in
    turn (it can when the signal came mid-setup), turned into another exception."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, RunInterrupted):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _stop_on_signals() -> dict[int, Any]:
    """Until training starts (and RunCheckpoint takes over), Ctrl-C or SIGTERM ends the start
    cleanly: main() removes the new run directory and exits 130 or 143."""

    def stop(signum: int, frame: object) -> None:
        raise RunInterrupted(signum, None)

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return {}
    return {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}


def config_files(args: list[str]) -> list[str]:
    """The values of every ``--config``/``-c`` in command-line arguments, in order."""
    found = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-c", "--config")]
    return found + [arg.removeprefix("--config=") for arg in args if arg.startswith("--config=")]


def _check_config_files(args: list[str]) -> None:
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


def _one_line(error: BaseException) -> str | None:
    """The message a user sees for ``error``, or None for a bug, which keeps its traceback."""
    if isinstance(error, NSTError):
        return str(error)
    if isinstance(error, argparse.ArgumentError):  # from the config parser
        return (
            _plain_parser_error(" ".join(str(error).split()))
            + " (python cli.py fit --help lists the options)"
        )
    if isinstance(error, MisconfigurationException):  # Lightning's own checks of trainer options
        message = " ".join(str(error).split())
        if any(word in message.lower() for word in ("gpu", "cuda", "mps")):
            found = "a CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"
            found += ", MPS" if torch.backends.mps.is_available() else ""
            message += f" (this machine has {found}; use --trainer.accelerator auto or cpu)"
        return message
    return None
