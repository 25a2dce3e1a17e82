"""What a training run writes and shows besides its checkpoint: ``network.pt`` whenever the
checkpoint is written, the network's paintings of the held-out photos in TensorBoard, and a stop
asked for by Ctrl-C, SIGTERM or the caller, taken at the same step by every process."""

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchvision.utils import make_grid

from nst.run.checkpoints import RunCheckpoint
from nst.run.pictures import run_dir_of
from nst.run.progress import StepProgressBar
from nst.run.stopping import Stop
from nst.run.tensorboard import add_summary, image_summary
from nst.train.network import FILE


class NetworkFile(Callback):
    """Writes ``network.pt`` into the run directory each time the checkpoint is written, so the
    network file always matches ``last.ckpt``: a run stopped or killed leaves a network to try."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        run_dir = run_dir_of(trainer, 0, 1)
        self.path = run_dir / FILE if run_dir is not None else None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.is_global_zero and self.path is not None:
            pl_module.network().save(self.path)


class Paintings(Callback):
    """After each validation, the network's paintings of the first held-out photos in
    TensorBoard (``val/paintings``: the photos above, their paintings below), at the step."""

    def __init__(self) -> None:
        self.photos: torch.Tensor | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking or not trainer.loggers:
            return
        if self.photos is None:
            self.photos = trainer.datamodule.fixed_photos()
        if not len(self.photos):
            return
        with torch.no_grad():
            painted = pl_module.network().to(pl_module.device).paint(self.photos).cpu()
        grid = make_grid(torch.cat([self.photos, painted]), nrow=len(self.photos), padding=2)
        for logger in trainer.loggers:
            if hasattr(logger, "experiment") and hasattr(logger.experiment, "file_writer"):
                add_summary(logger, image_summary("val/paintings", grid), trainer.global_step)


class StopTraining(Callback):
    """Ends training at the step boundary after a stop request, on every process at the same
    step (a request that reached one process is shared at each step's end); the checkpoint and
    network.pt are written as at the end of a run (RunCheckpoint.on_train_end)."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop
        self.stopped_at: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        checkpoint = next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), None)
        if checkpoint is not None:
            self.stop.last_checkpoint = checkpoint.written
        self.stop.training = True
        self.stop.reclaim()  # Lightning put its own SIGTERM handler in front of ours

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        asked = self.stop.requested is not None
        if trainer.world_size > 1:
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        if asked and self.stopped_at is None and trainer.global_step < trainer.max_steps:
            trainer.should_stop = True
            self.stopped_at = trainer.global_step


class TrainingProgress(StepProgressBar):
    """One bar over the run's steps with the training loss and the last held-out loss; the
    validations between steps draw no bars of their own."""

    def on_validation_start(self, *_: object) -> None:
        pass

    def on_validation_batch_start(self, *_: object, **__: object) -> None:
        pass

    def on_validation_batch_end(self, *_: object, **__: object) -> None:
        pass

    def on_validation_end(self, *_: object) -> None:
        pass

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, int | str | float]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run directory is printed when the run starts
        held_out = trainer.callback_metrics.get("val/total")
        if held_out is not None:
            metrics["held-out"] = f"{float(held_out):.3g}"
        return metrics
