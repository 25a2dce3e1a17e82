"""From settings to a run's objects, through LightningCLI's parser: the one way every front
door (the command line, the Python API, sweeps, the studio) reads a picture's settings.

Settings come in layers, each applied on top of the one before: command-line arguments as
typed (``["--config", "x.yaml", "--data.size", "256"]``) or mappings of config keys
(``{"data": {"size": 256}}`` or ``{"data.size": 256}``).
"""

import copy
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from nst.errors import NSTError
from nst.run import run_dirs
from nst.run.animation import Animation
from nst.run.checkpoint_files import check_ckpt_path, read_checkpoint
from nst.run.checkpoints import RunCheckpoint
from nst.run.console import quiet_lightning
from nst.run.data import StyleTransferData
from nst.run.identity import check_same_run
from nst.run.module import StyleTransfer
from nst.run.outputs import FinalImage, ImageLogger
from nst.run.schedule import total_steps
from nst.run.user_errors import as_nst_error, check_config_files

Layer = Sequence[str] | Mapping[str, Any]

LOGGER = "nst.run.tensorboard.RunTensorBoardLogger"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 500,
    "devices": 1,
    "log_every_n_steps": 5,
    "num_sanity_val_steps": 0,
    # Lightning's table of modules, parameters and FLOPs says nothing about a picture.
    "enable_model_summary": False,
    # name None: named after the config file (see nst.run.run_dirs.place)
    "logger": {
        "class_path": LOGGER,
        "init_args": {"save_dir": "logs", "name": None, "default_hp_metric": False},
    },
}
DESCRIPTION = (
    "Optimise one picture: the content of a photo painted in the style of a painting "
    "(Gatys et al. 2016), with checkpoints, resume and TensorBoard logs in logs/<config>/version_N."
)


class Settings(LightningCLI):
    """One picture's settings, read through LightningCLI's parser, and what they make: the
    model, the images, the callbacks the config describes and the trainer's options
    (``trainer``, a mapping of made objects). Making the trainer and running it is
    nst.run.engine's job.

    Args:
        layers: The settings, in order.
        where: Where the run writes (its directory is chosen and made now, and ``ckpt_path:
            last`` finds the run it continues); None: nothing is chosen, made or looked at
            (checking a config, or a run kept in memory).
        made: Where to note the run directories made, so that a failed start can remove them.
    """

    MODEL: type[StyleTransfer] = StyleTransfer  # a subclass's settings read its own model class
    PROG, DESCRIPTION = "nst fit", DESCRIPTION

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        where: run_dirs.Where | None = None,
        made: list[list[Path]] | None = None,
    ) -> None:
        quiet_lightning()
        self.layers = [_layer(layer) for layer in layers]
        self.where = where
        self.made = made if made is not None else []
        self.config_as_given: Any = None  # what config.yaml holds (see before_instantiate_classes)
        super().__init__(
            self.MODEL,
            StyleTransferData,
            run=False,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,  # the module chooses and configures its optimizer
            save_config_callback=None,  # each picture's config is saved by nst.run.outputs.SaveRunConfig
            parser_kwargs={"prog": self.PROG, "description": self.DESCRIPTION},
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # Parse errors are raised rather than printed with the whole usage text, so that they
        # can be answered in one line like every other bad input.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def setup_parser(self, *args: Any, **kwargs: Any) -> None:
        super().setup_parser(*args, **kwargs)
        own_options_first(self.parser)

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
        self.config_as_given = config
        if self.where is None:
            return
        check_ckpt_path(config.ckpt_path)
        logger = config.trainer.logger
        if hasattr(logger, "class_path") and logger.class_path.endswith("TensorBoardLogger"):
            # Saved without the version and checkpoint chosen here, so that running a saved
            # config again starts a new run instead of writing into the old one.
            self.config_as_given = copy.deepcopy(config)
            self.config_as_given.ckpt_path = None
            config.ckpt_path = run_dirs.place(
                self.where, logger.init_args, _config_stem(config), config.ckpt_path, self.made
            )
            given = self.config_as_given.trainer.logger.init_args
            given.save_dir, given.name = logger.init_args.save_dir, logger.init_args.name
        if config.ckpt_path:
            # Checked here as well as when the module loads the checkpoint, so that a refused
            # resume is refused before the logger adds anything to the run's directory.
            check_same_run(read_checkpoint(config.ckpt_path), config.model, config.data)

    def instantiate_classes(self) -> None:
        # LightningCLI's own would make the trainer too; the engine makes one for all pictures.
        self.config_init = self.parser.instantiate(self.config)
        self.model: StyleTransfer = self.config_init["model"]
        self.datamodule: StyleTransferData = self.config_init["data"]
        self.trainer_options: dict[str, Any] = dict(self.config_init["trainer"])

    @property
    def callbacks(self) -> list[Any]:
        """The callbacks the config describes besides ``trainer.callbacks``, in order."""
        return [self.config_init[key] for key in ("checkpoint", "image_log", "output", "animation")]


def own_options_first(parser: LightningArgumentParser) -> None:
    """``--help`` with the command's own options first and Lightning's Trainer's last.

    LightningCLI adds the trainer's options first, and argparse prints groups in the order they
    were added: the trainer's 370 lines came before the model's and the images' own, and its 70
    options filled the usage line. Only the help text changes; parsing and the saved config
    (which follow the order of the options, not of their groups) stay as they were.
    """
    groups = parser._action_groups  # argparse's list, in the order --help prints them
    trainer = [g for g in groups if g._group_actions and all(_in_trainer(a) for a in g._group_actions)]
    for group in trainer:
        group.title = "Lightning's Trainer, trainer.* (lightning.ai/docs/pytorch/stable/common/trainer.html)"
    parser._action_groups = [group for group in groups if group not in trainer] + trainer
    sections = [group.dest for group in groups if getattr(group, "dest", None) and group not in trainer]
    sections += ["trainer"] if trainer else []
    top = [
        _usage(a)
        for a in parser._actions
        if a.option_strings and "." not in a.dest and a.dest not in sections
    ]
    parser.usage = _wrapped(parser.prog, [*top, *(f"[--{section}.* ...]" for section in sections)])


def _wrapped(prog: str, items: list[str], width: int = 79) -> str:
    # Laid out as argparse lays out the usage it makes: items kept whole, lines aligned after the
    # command's name (the first line follows "usage: ").
    indent = " " * len(f"usage: {prog} ")
    lines = [f"{prog}"]
    for item in items:
        shown = len(lines[-1]) + (len("usage: ") if len(lines) == 1 else 0)
        if shown + 1 + len(item) > width and lines[-1].strip() != prog:
            lines.append(indent + item)
        else:
            lines[-1] += f" {item}"
    return "\n".join(lines)


def _in_trainer(action: Any) -> bool:
    return action.dest == "trainer" or action.dest.startswith("trainer.")


def _usage(action: Any) -> str:
    option = action.option_strings[0]
    if action.nargs == 0:
        return f"[{option}]"
    metavar = str(action.metavar or action.dest.upper())
    return f"[{option}{metavar}]" if metavar.startswith("[") else f"[{option} {metavar}]"


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
def _parser(settings: type[Settings] = Settings) -> LightningArgumentParser:
    class _Got(Exception):
        pass

    class ParserOnly(settings):
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


def parse_layers(layers: Sequence[Layer], settings: type[Settings] = Settings) -> dict[str, Any]:
    """The settings that ``layers`` make, as a nested mapping, without building anything."""
    try:
        return _parse(_parser(settings), layers).as_dict()
    except Exception as error:
        user = as_nst_error(error, settings.PROG.split()[-1])
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


def _config_stem(config: Any) -> str:
    files = config.get("config") or []
    return Path(str(files[-1])).stem if files else "nst"
