"""The trainer of a run: Lightning's Trainer with the run's callbacks, one logger per picture,
and checkpoints written whole (one file per picture)."""

from collections.abc import Sequence
from pathlib import Path

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar

from nst.errors import NSTError
from nst.run.animation import Animation
from nst.run.checkpoint_files import RunCheckpointIO
from nst.run.checkpoints import RunCheckpoint
from nst.run.checks import check_early_stopping, check_trainer_options
from nst.run.outputs import HparamsSummary, SaveRunConfig
from nst.run.progress import StepProgressBar
from nst.run.settings import Settings
from nst.run.speed import drop_futile_nvml_check
from nst.run.stopping import Stop, StopAtStepBoundary


def make_trainer(
    pictures: Sequence[Settings],
    *,
    stop: Stop,
    callbacks: Sequence[Callback] = (),
    in_memory: bool = False,
    checkpoints: Sequence[Path] = (),
) -> Trainer:
    """The trainer for ``pictures`` (each one's settings; the first one's trainer options,
    checkpoint, image and output settings are the run's), with ``callbacks`` added.

    ``in_memory``: nothing on disk (no logger, no checkpoints). ``checkpoints``: with several
    pictures, each one's checkpoint file."""
    first = pictures[0]
    options = dict(first.trainer_options)
    check_trainer_options(options)
    given = options.get("callbacks") or []
    given = list(given) if isinstance(given, list) else [given]
    # A callback that is off is left out: Lightning would still call its hooks that act.
    own = [c for c in first.callbacks if not (isinstance(c, Animation) and not c.every_n_steps)]
    check_early_stopping([*given, *callbacks])
    run = [*given, *own, HparamsSummary(), *callbacks]
    if options.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in run):
        run.append(StepProgressBar())
    run.append(StopAtStepBoundary(stop))  # after the others: see its on_train_batch_end
    if in_memory:
        run = [c for c in run if not isinstance(c, RunCheckpoint)]
        options |= {"logger": False, "enable_checkpointing": False}
    else:
        run.append(SaveRunConfig(first.parser, [picture.config_as_given for picture in pictures]))
    if len(pictures) > 1:  # each picture's own logger, in order (see nst.run.pictures)
        options["logger"] = [picture.trainer_options["logger"] for picture in pictures]
    drop_futile_nvml_check()
    try:
        trainer = Trainer(**{**options, "callbacks": run})
    except (ValueError, ImportError, TypeError) as error:  # Lightning's checks of trainer.* options
        raise NSTError(f"trainer options: {' '.join(str(error).split())}") from error
    if trainer.world_size > 1:  # one picture is one run on one device
        raise NSTError(
            f"one picture runs on one device, but trainer.devices and trainer.num_nodes ask for "
            f"{trainer.world_size} processes; to spread several pictures over devices use nst sweep "
            "with these options (e.g. --contents photos/ --styles paintings/), or set --trainer.devices 1"
        )
    _write_whole(trainer, checkpoints)
    return trainer


def _write_whole(trainer: Trainer, checkpoints: Sequence[Path]) -> None:
    # Lightning's own writer, unless the settings chose another (a plugin of trainer.plugins).
    strategy = trainer.strategy
    if len(checkpoints) > 1 or type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = RunCheckpointIO(checkpoints if len(checkpoints) > 1 else ())
