"""The settings of a training run (``nst train``), read through LightningCLI's parser as a
picture's are (nst.run.settings), and where the run writes.

With several processes, each one reads the same settings. Only the first (global rank 0) makes
the run directory: the processes Lightning's launcher starts on this machine are told which one
(NST_TRAIN_RUN_DIR); those on other machines (SLURM, torchrun) write nothing, so they need none.
"""

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from nst.errors import NSTError
from nst.run import run_dirs
from nst.run.checkpoint_files import check_ckpt_path, checkpoint_of
from nst.run.checkpoints import RunCheckpoint
from nst.run.console import quiet_lightning
from nst.run.settings import LOGGER, Layer, _config_stem, _layer, _parse, own_options_first
from nst.train.data import PhotoData
from nst.train.module import StyleNetworkTraining

RUN_DIR_ENV, CKPT_ENV = "NST_TRAIN_RUN_DIR", "NST_TRAIN_CKPT"
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 40_000,  # the paper's 40k iterations of batch 4 (two epochs of COCO 2014)
    "precision": None,  # None: bf16-mixed on a CUDA GPU that has it, 32-true elsewhere
    "log_every_n_steps": 50,
    "val_check_interval": 500,
    "check_val_every_n_epoch": None,  # val_check_interval counts steps across epochs
    "num_sanity_val_steps": 0,
    "enable_model_summary": False,  # the run says its network's size in one line instead
    "use_distributed_sampler": False,  # nst.train.data.Crops shares the photos out itself
    "logger": {
        "class_path": LOGGER,
        "init_args": {"save_dir": "logs", "name": None, "default_hp_metric": False},
    },
}
DESCRIPTION = (
    "Train a style network (Johnson et al. 2016) on folders of photos, then paint any photo in one "
    "pass with nst apply; checkpoints, resume and TensorBoard logs in logs/<config>/version_N."
)


class TrainingCheckpoint(RunCheckpoint):
    """Keeps ``checkpoints/last.ckpt`` of the run directory current, with ``network.pt`` beside it.

    Args:
        every_n_steps: Write the checkpoint (and network.pt) every this many steps, at the end
            and on a stop (0: only at the end or on a stop).
    """

    def __init__(self, every_n_steps: int = 500) -> None:
        # Never paced by time: with several processes each must write at the same steps.
        super().__init__(every_n_steps, max_time_share=0.0)


class TrainSettings(LightningCLI):
    """A training run's settings and what they make (the model, the photos, the checkpoint
    callback, the trainer's options); the run (nst.train.run) makes the trainer."""

    PROG = "nst train"

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
        self.made = made if made is not None else []  # run directories made, for a failed start to remove
        self.config_as_given: Any = None
        super().__init__(
            StyleNetworkTraining,
            PhotoData,
            run=False,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            save_config_callback=None,  # written by nst.run.outputs.SaveRunConfig
            parser_kwargs={"prog": self.PROG, "description": DESCRIPTION},
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def setup_parser(self, *args: Any, **kwargs: Any) -> None:
        super().setup_parser(*args, **kwargs)
        own_options_first(self.parser)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(TrainingCheckpoint, "checkpoint")
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
        self.config_as_given = config
        if config.trainer.precision is None:
            config.trainer.precision = default_precision(config.trainer.get("accelerator"))
        check_trainer(config.trainer)
        if self.where is None:
            return
        check_ckpt_path(config.ckpt_path, "an nst train run")
        logger = config.trainer.logger
        if not (hasattr(logger, "class_path") and logger.class_path.endswith("TensorBoardLogger")):
            return
        self.config_as_given = _without_run(config)
        init = logger.init_args
        if os.environ.get(RUN_DIR_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":  # see TrainRun.fit
            run_dir = Path(os.environ[RUN_DIR_ENV])
            init.save_dir, init.name, init.version = (
                str(run_dir.parent.parent),
                run_dir.parent.name,
                run_dir.name,
            )
            config.ckpt_path = os.environ.get(CKPT_ENV) or None
            return
        if not first_process():  # another machine's process: it finds the checkpoint, writes nothing
            if config.ckpt_path == "last":
                init.name = init.name or self.where.name or _stem(config)
                root = Path(self.where.save_dir or init.save_dir) / init.name
                latest = run_dirs.latest_run(root)
                config.ckpt_path = str(checkpoint_of(latest)) if latest is not None else None
            return
        config.ckpt_path = run_dirs.place(self.where, init, _stem(config), config.ckpt_path, self.made)
        given = self.config_as_given.trainer.logger.init_args
        given.save_dir, given.name = init.save_dir, init.name

    def instantiate_classes(self) -> None:
        self.config_init = self.parser.instantiate(self.config)
        self.model: StyleNetworkTraining = self.config_init["model"]
        self.datamodule: PhotoData = self.config_init["data"]
        seed = self.config.get("seed_everything")
        self.datamodule.seed = 0 if seed in (None, False) else int(seed)
        self.trainer_options: dict[str, Any] = dict(self.config_init["trainer"])
        self.checkpoint: TrainingCheckpoint = self.config_init["checkpoint"]


def default_precision(accelerator: Any) -> str:
    """bf16-mixed on a CUDA GPU that computes in bf16 (Ampere on; older GPUs only emulate it,
    slowly), 32-true elsewhere."""
    gpu = accelerator in (None, "auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported(including_emulation=False) else "32-true"


def check_trainer(trainer: Any) -> None:
    """The trainer options a training run's shape rules out."""
    if trainer.get("accumulate_grad_batches") not in (None, 1):
        # The order of the crops follows the optimizer's steps (nst.train.data.Crops): a step
        # of several batches would see some crops twice and a continued run others.
        raise NSTError(
            "trainer.accumulate_grad_batches does not apply to nst train; for a larger batch raise "
            "data.batch_size or add processes (trainer.devices)"
        )
    precision = str(trainer.get("precision"))
    if precision.endswith("-true") and precision != "32-true":
        # The frozen VGG19 stays in float32 (it is not the module's child: see StyleNetworkTraining).
        raise NSTError(
            f"trainer.precision {precision} is not supported by nst train; use bf16-mixed or "
            "16-mixed on a GPU (the network learns in float32, the passes run in half precision), or 32-true"
        )


def first_process() -> bool:
    """Whether this process is (or will be) global rank 0, from the variables that Lightning's
    launcher, torchrun and SLURM set (Lightning reads the same ones)."""
    env = os.environ
    if "RANK" in env:
        return env["RANK"] == "0"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return env["SLURM_PROCID"] == "0"
    return env.get("LOCAL_RANK", "0") == "0" and env.get("NODE_RANK", "0") == "0"


def _stem(config: Any) -> str:
    # Named after the config file, as a picture's run is; "train" without one.
    stem = _config_stem(config)
    return "train" if stem == "nst" and not config.get("config") else stem


def _without_run(config: Any) -> Any:
    # Saved without the version and checkpoint chosen here, so that running the saved config
    # again starts a new run instead of writing into this one.
    given = copy.deepcopy(config)
    given.ckpt_path = None
    return given
