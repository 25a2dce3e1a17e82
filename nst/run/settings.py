"""From settings to a run's objects, through LightningCLI's parser: the one way every front
door (the command line, the Python API, sweeps, the studio) turns settings into a run.

Settings come in layers, each applied on top of the one before: command-line arguments as
typed (``["--config", "x.yaml", "--data.size", "256"]``) or mappings of config keys
(``{"data": {"size": 256}}`` or ``{"data.size": 256}``).
"""

import argparse
import copy
import functools
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.plugins import CheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.strategies import Strategy

from nst.errors import NSTError, brief
from nst.run import run_dirs
from nst.run.animation import Animation
from nst.run.checkpoints import AtomicCheckpointIO, RunCheckpoint
from nst.run.checks import check_trainer_options
from nst.run.console import quiet_lightning
from nst.run.data import StyleTransferData
from nst.run.identity import check_same_run
from nst.run.module import StyleTransfer
from nst.run.outputs import FinalImage, ImageLogger, StepProgressBar
from nst.run.schedule import total_steps
from nst.run.speed import drop_futile_nvml_check
from nst.run.stopping import RunInterrupted, Stop, StopAtStepBoundary
from nst.run.tensorboard import HparamsSummary

Layer = Sequence[str] | Mapping[str, Any]

LOGGER = "nst.run.tensorboard.RunTensorBoardLogger"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 500,
    "devices": 1,
    "log_every_n_steps": 5,
    "num_sanity_val_steps": 0,
    # name None: named after the config file, see Builder._choose_run_dir
    "logger": {
        "class_path": LOGGER,
        "init_args": {"save_dir": "logs", "name": None, "default_hp_metric": False},
    },
}
DESCRIPTION = (
    "Optimise one picture: the content of a photo painted in the style of a painting "
    "(Gatys et al. 2016), with checkpoints, resume and TensorBoard logs in logs/<config>/version_N."
)


class SaveRunConfig(SaveConfigCallback):
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


class Builder(LightningCLI):
    """LightningCLI in build-only mode: parses the layers, chooses the run directory (one per
    run, and ``ckpt_path: last`` finds it) and builds model, data and trainer; running them is
    :class:`nst.run.engine.Run`'s job.

    ``run_dirs=False`` builds the objects only (checking a config): no directory is chosen,
    made or looked at. ``in_memory=True`` builds a run that writes nothing: no logger, no
    checkpoints.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        run_dirs: bool = True,
        in_memory: bool = False,
        name: str | None = None,
        stop: Stop | None = None,
        callbacks: Sequence[Callback] = (),
        new_run_dirs: list[list[Path]] | None = None,
    ) -> None:
        quiet_lightning()
        self.layers = [_layer(layer) for layer in layers]
        self.run_dirs, self.in_memory, self.name = run_dirs, in_memory, name
        self.stop = stop or Stop()
        self.extra_callbacks = list(callbacks)
        # Directories this build created (see run_dirs.create_run_dir), so that a failed start
        # can remove them again.
        self.new_run_dirs = new_run_dirs if new_run_dirs is not None else []
        self.config_as_given: Any = None
        super().__init__(
            StyleTransfer,
            StyleTransferData,
            run=False,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,  # the module chooses and configures its optimizer
            save_config_callback=SaveRunConfig,
            parser_kwargs={"prog": "nst fit", "description": DESCRIPTION},
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # Parse errors are raised rather than printed with the whole usage text, so that they
        # can be answered in one line like every other bad input.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ImageLogger, "image_log")
        parser.add_lightning_class_args(FinalImage, "output")
        parser.add_lightning_class_args(Animation, "animation")
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Continue a run: 'last' (the latest run of this config) or a .ckpt file.",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self.config = _parse(parser, self.layers)

    def before_instantiate_classes(self) -> None:
        config = self.config
        length_from_phases(config)
        if not self.run_dirs:
            return
        check_ckpt_path(config.ckpt_path)
        logger = config.trainer.logger
        if hasattr(logger, "class_path") and logger.class_path.endswith("TensorBoardLogger"):
            if logger.init_args.name is None:
                logger.init_args.name = self.name or _config_stem(config)
            # The config is saved without the version and checkpoint chosen below, so that running
            # a saved config again starts a new run instead of writing into the old one.
            self.config_as_given = copy.deepcopy(config)
            self.config_as_given.ckpt_path = None
            self._choose_run_dir(config, logger.init_args)
        if config.ckpt_path:
            # Checked here as well as when the module loads the checkpoint, so that a refused
            # resume is refused before the logger adds anything to the run's directory.
            check_same_run(read_checkpoint(config.ckpt_path), config.model, config.data)

    def _choose_run_dir(self, config: Any, args: Any) -> None:
        root = Path(args.save_dir) / args.name
        if args.version is not None:
            run_dir = root / (f"version_{args.version}" if isinstance(args.version, int) else args.version)
        elif config.ckpt_path == "last":
            run_dir = run_dirs.latest_run(root)
            if run_dir is None:
                raise NSTError(
                    f"no run of {args.name!r} to resume: {root} holds no checkpoints/last.ckpt; "
                    "start a fresh run without --ckpt_path"
                )
            args.version = run_dirs.version_of(run_dir)
        else:
            made = run_dirs.create_run_dir(root)
            self.new_run_dirs.append(made)
            args.version = run_dirs.version_of(made[0])
            return
        if config.ckpt_path == "last":
            if not run_dirs.checkpoint_of(run_dir).is_file():
                raise NSTError(f"{run_dir} holds no checkpoints/last.ckpt to resume from")
            config.ckpt_path = str(run_dirs.checkpoint_of(run_dir))
            print(f"Resuming {run_dir}")
        elif config.ckpt_path is None and run_dir.is_dir() and any(run_dir.iterdir()):
            raise NSTError(
                f"{run_dir} already holds a run; resume it with --ckpt_path last, "
                "or leave trainer.logger.init_args.version unset for a new directory"
            )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        check_trainer_options(config)
        given = config.get("callbacks") or []
        given = [*(given if isinstance(given, list) else [given]), *callbacks]
        # A callback that is off is left out: Lightning would still call its hooks that act.
        callbacks = [c for c in callbacks if not (isinstance(c, Animation) and not c.every_n_steps)]
        callbacks = [*callbacks, HparamsSummary(), *self.extra_callbacks]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in [*given, *self.extra_callbacks]
        ):
            callbacks.append(StepProgressBar())
        callbacks.append(StopAtStepBoundary(self.stop))  # after the others: see its on_train_batch_end
        if self.in_memory:  # nothing on disk: no run directory, no checkpoints
            callbacks = [c for c in callbacks if not isinstance(c, RunCheckpoint)]
            config = {**config, "logger": False, "enable_checkpointing": False}
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        strategy = config.get("strategy")
        strategy_io = isinstance(strategy, Strategy) and strategy._checkpoint_io is not None
        if not strategy_io and not any(isinstance(p, CheckpointIO) for p in plugins):
            config = {**config, "plugins": [*plugins, AtomicCheckpointIO()]}
        drop_futile_nvml_check()
        try:
            trainer = super()._instantiate_trainer(config, callbacks)
        except (ValueError, ImportError, TypeError) as error:  # Lightning's checks of trainer.* options
            raise NSTError(f"trainer options: {' '.join(str(error).split())}") from error
        if trainer.world_size > 1:  # one picture is one run on one device
            raise NSTError(
                f"one picture runs on one device, but trainer.devices and trainer.num_nodes ask for "
                f"{trainer.world_size} processes; to spread several pictures over devices use nst sweep "
                "with these options (e.g. --contents photos/ --styles paintings/), or set --trainer.devices 1"
            )
        for callback in trainer.callbacks:
            if isinstance(callback, SaveRunConfig) and self.config_as_given is not None:
                callback.config = self.config_as_given
        return trainer


def _layer(layer: Any) -> Layer:
    if isinstance(layer, Mapping):
        return nested(layer)
    if isinstance(layer, Sequence) and not isinstance(layer, str) and all(isinstance(a, str) for a in layer):
        return list(layer)
    raise NSTError(
        f"a run's settings are a list of layers, each command-line arguments or a mapping of config "
        f"keys, e.g. [['--config', 'x.yaml'], {{'data.size': 256}}]; got {layer!r:.80}"
    )


def nested(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"data.size": 256}`` as ``{"data": {"size": 256}}``; nested mappings are merged."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        *parents, last = str(key).split(".")
        at = out
        for part in parents:
            at = at.setdefault(part, {})
            if not isinstance(at, dict):
                raise NSTError(f"config key {key!r} goes inside {part!r}, which is set to a value")
        if isinstance(value, Mapping) and isinstance(at.get(last), dict):
            at[last] = {**at[last], **nested(value)}
        else:
            at[last] = nested(value) if isinstance(value, Mapping) else value
    return out


@functools.cache
def _parser() -> LightningArgumentParser:
    class _Got(Exception):
        pass

    class ParserOnly(Builder):
        def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
            raise _Got(parser)

    try:
        ParserOnly([])
    except _Got as got:
        return got.args[0]
    raise AssertionError("unreachable")


def _parse(parser: LightningArgumentParser, layers: Sequence[Layer]) -> Any:
    config = None
    for layer in layers:
        first = config is None
        if isinstance(layer, Mapping):
            _check_nulls(parser, layer)
            config = parser.parse_object(nested(layer), namespace=config, defaults=first)
        else:
            check_config_files(layer)
            config = parser.parse_args(list(layer), namespace=config, defaults=first)
    return parser.parse_args([]) if config is None else config


def _check_nulls(parser: LightningArgumentParser, layer: Mapping[str, Any]) -> None:
    # parse_object lets None through for options that do not take it (a float weight, a
    # layer list), which would fail later with a traceback; the command line's own reading
    # of "null" refuses it in one line.
    for key, value in _dotted(nested(layer)).items():
        if value is None:
            parser.parse_args([f"--{key}", "null"], defaults=False)


def _dotted(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"size": 256}}`` as ``{"data.size": 256}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            out |= _dotted(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_layers(layers: Sequence[Layer]) -> dict[str, Any]:
    """The settings that ``layers`` make, as a nested mapping, without building anything."""
    try:
        return _parse(_parser(), layers).as_dict()
    except Exception as error:
        user = as_nst_error(error)
        if user is None:
            raise
        raise user from error


def given_settings(args: Sequence[str]) -> dict[str, Any]:
    """What command-line arguments (without ``--config``) set, as config keys."""
    return _dotted(_parser().parse_args(list(args), defaults=False).as_dict())


def length_from_phases(config: Any) -> None:
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


def check_ckpt_path(path: str | None) -> None:
    if path in ("best", "hpc", "registry"):
        raise NSTError(f"nst keeps one checkpoint per run; use --ckpt_path last or a .ckpt file, not {path}")
    if path and path != "last" and not Path(path).is_file():
        raise NSTError(f"checkpoint {path} does not exist; give a .ckpt file or --ckpt_path last")


def read_checkpoint(path: str) -> dict[str, Any]:
    try:  # mmap: an L-BFGS checkpoint can be hundreds of MB, and only its settings are read
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        why = "it is not a whole file torch.save wrote" if not zipfile.is_zipfile(path) else brief(error)
        raise NSTError(
            f"checkpoint {path} cannot be read ({why}); give the checkpoints/last.ckpt of a run"
        ) from error


def _config_stem(config: Any) -> str:
    files = config.get("config") or []
    return Path(str(files[-1])).stem if files else "nst"


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


def as_nst_error(error: BaseException) -> NSTError | None:
    """The error a user should see for ``error`` raised while building or running, or None for
    a bug, which keeps its traceback."""
    if isinstance(error, NSTError):
        return error
    if isinstance(error, torch.OutOfMemoryError):
        return NSTError(
            f"the device ran out of memory ({brief(error)}); lower data.size, model.lbfgs_history, or use "
            "model.optimizer adam"
        )
    if isinstance(error, argparse.ArgumentError):  # from the config parser
        message = _plain_parser_error(" ".join(str(error).split()))
        return NSTError(f"{message} (python cli.py fit --help lists the options)")
    if isinstance(error, MisconfigurationException):  # Lightning's own checks of trainer options
        message = " ".join(str(error).split())
        if any(word in message.lower() for word in ("gpu", "cuda", "mps")):
            found = "a CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"
            found += ", MPS" if torch.backends.mps.is_available() else ""
            message += f" (this machine has {found}; use --trainer.accelerator auto or cpu)"
        return NSTError(message)
    return None
