"""Pictures optimised together: one image parameter per picture, one VGG forward and backward
for all of them per step, so that a device that one small picture leaves idle works on several.

``nst sweep --batch_size N`` runs its cells this way, N at a time where their settings allow
(see nst.many.batches). Each picture stays its own run in everything a user sees: its run
directory, config.yaml, TensorBoard curves and images, final.png, and a checkpoint that
continues it alone or in any other batch. Each picture keeps the optimizer a run of its own
makes (nst.run.imagewise), so Adam's moments and L-BFGS's history and step size are its own, and
it comes out as it does alone, up to the rounding of batched convolutions.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from torch import Tensor, nn

from nst.errors import NSTError
from nst.images import save_image
from nst.numerics.projection import project
from nst.run import run_dirs
from nst.run.animation import Animation
from nst.run.checkpoints import AtomicCheckpointIO, RunCheckpoint, steps_counted_by_hand
from nst.run.console import quiet_lightning
from nst.run.data import StyleTransferData, _PairIndices
from nst.run.engine import interruption_in, reraise_for_user
from nst.run.imagewise import ImageWise
from nst.run.lightning_private import HookNameSetDirectly, inert_hooks_left_out
from nst.run.module import StyleTransfer, step_by_hand
from nst.run.outputs import FinalImage, ImageLogger, add_image, add_inputs, result_image
from nst.run.pacing import Pacing
from nst.run.schedule import Schedule
from nst.run.settings import Builder, Layer
from nst.run.stopping import RunInterrupted, Stop, StopAtStepBoundary
from nst.run.tensorboard import HparamsSummary, flat_settings, write_summary


@dataclass
class Picture:
    """One picture of a batch: its name (in messages) and its settings, as for a run of its own."""

    name: str
    layers: list[Layer]


class PicturesData(LightningDataModule):
    """The pictures' own datamodules, loaded together."""

    def __init__(self, pictures: Sequence[StyleTransferData]) -> None:
        super().__init__()
        self.pictures = list(pictures)

    def prepare_data(self) -> None:
        for data in self.pictures:
            data.prepare_data()

    def setup(self, stage: str) -> None:
        for data in self.pictures:
            data.setup(stage)

    def train_dataloader(self) -> Iterable[Tensor]:
        return _PairIndices(pairs=len(self.pictures))


class Pictures(HookNameSetDirectly, LightningModule):
    """The pictures' own modules (their images, targets, losses and phases), stepped together."""

    def __init__(self, pictures: Sequence[StyleTransfer], names: Sequence[str], seed: int | None) -> None:
        super().__init__()
        self.pictures = nn.ModuleList(pictures)
        self.names = list(names)
        self.seed = seed
        self.strict_loading = False  # the network is rebuilt, never stored
        self.automatic_optimization = False  # see training_step
        # Each picture's losses as last computed, on the host: at the steps whose losses are
        # shown or logged, as a run of its own logs them.
        self.losses: list[dict[str, float]] = [{} for _ in pictures]
        self.logged_step: int | None = None

    @property
    def schedule(self) -> Schedule | None:
        return self.pictures[0].schedule

    @property
    def phase(self) -> int:
        return self.pictures[0].phase

    def setup(self, stage: str) -> None:
        first = self.pictures[0]
        for picture in self.pictures:
            picture.trainer = self.trainer
            picture.vgg = first.vgg  # one network for all (set by the first picture's setup)
            if self.seed is not None:  # a noise start as the picture's own run draws it
                seed_everything(self.seed, workers=True, verbose=False)
            picture.setup(stage)
        shapes = {tuple(picture.image.shape) for picture in self.pictures}
        if len(shapes) > 1:
            raise NSTError(f"pictures of different sizes cannot be optimised together: {sorted(shapes)}")

    def on_fit_start(self) -> None:
        for picture in self.pictures:
            picture.on_fit_start()

    def on_train_start(self) -> None:
        for picture in self.pictures:
            picture.on_train_start()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        for picture in self.pictures:
            picture.on_train_batch_start(batch, batch_idx)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """One step of every picture, by hand, as StyleTransfer.training_step takes one."""
        optimizer = self.optimizers()
        before = [  # what project() needs to tell each L-BFGS the step taken; Adam needs nothing
            p.image.detach().clone() if p.schedule[p.phase].optimizer == "lbfgs" else None
            for p in self.pictures
        ]
        loss = step_by_hand(self, optimizer, self.pictures[0].image, self._loss, self._free_held_pixels)
        for picture, own, image in zip(self.pictures, optimizer.optimizer.optimizers, before, strict=True):
            project(picture.image, own, image)
        return loss

    def _loss(self) -> Tensor:
        pictures = list(self.pictures)
        seen = [picture.as_seen(picture.image) for picture in pictures]
        features = pictures[0].vgg(torch.cat(seen))
        weighted = []
        for i, picture in enumerate(pictures):
            made: dict[str, Tensor] = {}
            for name, maps in features.items():
                made.update(picture.layer_terms(name, maps[i : i + 1]))
            weighted.append(picture.weigh(made, seen[i]))
        totals = [terms.sum() for terms in weighted]
        restarted = [p.restart_due(total) for p, total in zip(pictures, totals, strict=True)]
        if pictures[0]._metrics_written_this_step():
            self._keep([p.loss_dict(w) for p, w in zip(pictures, weighted, strict=True)], restarted)
        scaled = [p.scaled(total) for p, total in zip(pictures, totals, strict=True)]
        return sum(loss * 0.0 if r else loss for loss, r in zip(scaled, restarted, strict=True))

    def _free_held_pixels(self) -> None:
        for picture in self.pictures:
            picture.free_held_pixels()

    def _keep(self, losses: list[dict[str, Tensor]], restarted: list[bool]) -> None:
        keys = [*losses[0], "best"]
        rows = [
            [*(loss[k].float() for k in keys[:-1]), p.best_loss]
            for p, loss in zip(self.pictures, losses, strict=True)
        ]
        values = torch.stack([torch.stack(row) for row in rows]).tolist()
        self.losses = [dict(zip(keys, row, strict=True)) for row in values]
        self.logged_step = self.global_step
        for name, loss, restart in zip(self.names, self.losses, restarted, strict=True):
            if not restart and not all(_finite(v) for k, v in loss.items() if k != "best"):
                raise NSTError(
                    f"{name}: the loss became NaN or infinite by step {self.global_step}: the optimisation "
                    "diverged; lower model.lr or the loss weights (checkpoints from before are kept)"
                )
        mean = sum(loss["total"] for loss in self.losses) / len(self.losses)
        self.log("loss/mean", mean, prog_bar=True, logger=False)

    def configure_optimizers(self) -> ImageWise:
        return ImageWise([picture.configure_optimizers() for picture in self.pictures])

    def check_finite(self) -> None:
        for name, picture in zip(self.names, self.pictures, strict=True):
            try:
                picture.check_finite()
            except NSTError as error:
                raise NSTError(f"{name}: {error}") from error

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # What each picture's own checkpoint holds besides the trainer's state (see PicturesCheckpointIO).
        state = checkpoint.pop("state_dict")
        optimizer = checkpoint.pop("optimizer_states")[0]["pictures"]
        parts = []
        for i, picture in enumerate(self.pictures):
            part = {"state_dict": {"image": state[f"pictures.{i}.image"]}, "optimizer_states": [optimizer[i]]}
            picture.on_save_checkpoint(part)
            part |= {
                "hparams_name": "kwargs",
                "hyper_parameters": dict(picture.hparams),
                "datamodule_hparams_name": "kwargs",
                "datamodule_hyper_parameters": dict(picture.pair_data.hparams),
            }
            parts.append(part)
        checkpoint["nst_pictures"] = parts

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        steps_counted_by_hand(checkpoint)
        for picture, part in zip(self.pictures, checkpoint["nst_pictures"], strict=True):
            picture.on_load_checkpoint(part)


def _on_cpu(storage: Any, location: Any) -> Any:
    return storage


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


class PicturesCheckpointIO(AtomicCheckpointIO):
    """Writes one checkpoint per picture, each what a run of its own would have written, and
    reads them back as one; so a picture continues alone or in any batch, on any process."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self.paths = list(paths)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        shared = {k: v for k, v in checkpoint.items() if k not in ("nst_pictures", "callbacks")}
        for own, part in zip(self.paths, checkpoint["nst_pictures"], strict=True):
            super().save_checkpoint({**shared, **part, "callbacks": {}}, own, storage_options)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        read = super().load_checkpoint
        parts = [read(own, map_location or _on_cpu, weights_only) for own in self.paths]
        steps = {part["global_step"] for part in parts}
        if len(steps) > 1:  # nst.many.batches batches pictures at one step only
            raise NSTError(f"pictures stopped at different steps ({sorted(steps)}) cannot continue together")
        shared = {k: v for k, v in parts[0].items() if k not in ("state_dict", "optimizer_states")}
        return {
            **shared,
            "state_dict": {
                f"pictures.{i}.image": part["state_dict"]["image"] for i, part in enumerate(parts)
            },
            "optimizer_states": [{"pictures": [part["optimizer_states"][0] for part in parts]}],
            "nst_pictures": parts,
        }


class PicturesOutputs(Callback):
    """What each picture's run of its own would leave in its run directory: config.yaml,
    hparams.yaml, TensorBoard curves and images, and final.png."""

    def __init__(self, builders: Sequence[Builder], module: Pictures) -> None:
        self.builders = list(builders)
        self.module = module
        settings = builders[0].config
        self.image_every = settings.image_log.every_n_steps
        self.image_pacing = Pacing(settings.image_log.max_time_share, "image_log.max_time_share")
        self._shown: int | None = None  # the last step whose images were shown
        self.colours = settings.output.original_colours
        self.savers = [
            next(c for c in b.trainer.callbacks if isinstance(c, SaveConfigCallback)) for b in self.builders
        ]

    @property
    def loggers(self) -> list[Any]:
        return [builder.trainer.logger for builder in self.builders]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for builder, saver in zip(self.builders, self.savers, strict=True):
            saver.setup(builder.trainer, builder.model, stage)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for saver in self.savers:
            saver.on_train_start(trainer, pl_module)
        if trainer.global_step > 0:  # a resumed run has shown these already
            return
        for logger, builder, picture in zip(self.loggers, self.builders, self.module.pictures, strict=True):
            logger.log_hyperparams(_hparams(picture, builder.datamodule))
            add_inputs([logger], builder.datamodule)
            add_image([logger], "image/current", picture.image, 0)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        step = trainer.global_step  # counts the step that just ended
        every = trainer.log_every_n_steps
        if self.module.logged_step == step - 1 and every and step % every == 0:  # as Lightning writes them
            for logger, losses, picture in zip(
                self.loggers, self.module.losses, self.module.pictures, strict=True
            ):
                restarts = {"lbfgs/restarts": float(picture.restarts)} if picture.restarts else {}
                logger.log_metrics({**{f"loss/{k}": v for k, v in losses.items()}, **restarts}, step - 1)
        if self.image_pacing.due(step, self.image_every):
            with self.image_pacing.writing():
                for logger, picture in zip(self.loggers, self.module.pictures, strict=True):
                    add_image([logger], "image/current", picture.image, step)
            self._shown = step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.module.check_finite()  # never a NaN or black final.png
        step = trainer.global_step
        fresh = self.module.logged_step == step - 1
        for logger, builder, picture in zip(self.loggers, self.builders, self.module.pictures, strict=True):
            if self._shown != step:
                add_image([logger], "image/current", picture.image, step)
            save_image(
                result_image(picture.result(), builder.datamodule, self.colours),
                Path(logger.log_dir) / run_dirs.RESULT,
            )
            if fresh:
                settings = flat_settings(
                    picture.hparams, builder.datamodule.hparams, trainer.max_steps, trainer.precision
                )
                write_summary(logger, settings, picture.result_losses, step)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        for saver in self.savers:
            saver.on_exception(trainer, pl_module, exception)

    def close(self, status: str) -> None:
        for logger in self.loggers:
            logger.finalize(status)


def _hparams(picture: StyleTransfer, data: StyleTransferData) -> dict[str, Any]:
    # What Lightning logs for a run of its own: the model's and the data's settings as given.
    merged = {**picture.hparams_initial, **data.hparams_initial}
    return {k: v for k, v in merged.items() if k != "_class_path"}


class Together:
    """Pictures of one size run as one Lightning fit (see the module's docstring).

    Args:
        pictures: Each picture's settings, as a run of its own takes them, with its own run
            directory (``trainer.logger.init_args.version``) and, to continue it, its own
            ``ckpt_path``; all of them continue, or none.
        stop: Shared with other runs, so that one request stops them all.
        callbacks: Lightning callbacks added to the trainer.
    """

    def __init__(
        self, pictures: Sequence[Picture], *, stop: Stop | None = None, callbacks: Sequence[Callback] = ()
    ) -> None:
        quiet_lightning()
        self.stop_requests = stop or Stop()
        try:
            self.builders = [Builder(p.layers, stop=self.stop_requests) for p in pictures]
            batch = Builder(
                [*pictures[0].layers, {"ckpt_path": None}],
                in_memory=True,
                stop=self.stop_requests,
                callbacks=callbacks,
            )
        except BaseException as error:
            self.stop_requests.ignoring = True
            reraise_for_user(error)
        resumed = {builder.config.ckpt_path is not None for builder in self.builders}
        if len(resumed) > 1:
            raise ValueError("pictures run together either all continue from checkpoints or all start")
        models = [builder.model for builder in self.builders]
        for model, builder in zip(models, self.builders, strict=True):
            model.pair_data = builder.datamodule
        self.module = Pictures(models, [p.name for p in pictures], self.builders[0].config.seed_everything)
        self.data = PicturesData([builder.datamodule for builder in self.builders])
        self.outputs = PicturesOutputs(self.builders, self.module)
        self.trainer = batch.trainer
        own = (FinalImage, ImageLogger, Animation, SaveConfigCallback, HparamsSummary, ModelCheckpoint)
        settings = self.builders[0].config.checkpoint
        checkpoint = RunCheckpoint(settings.every_n_steps, settings.max_time_share)
        paths = [run_dirs.checkpoint_of(Path(builder.trainer.log_dir)) for builder in self.builders]
        checkpoint.dirpath = str(paths[0].parent)  # where the first picture's file is, as named on a stop
        kept = [c for c in self.trainer.callbacks if not isinstance(c, own)]
        stops = [c for c in kept if isinstance(c, StopAtStepBoundary)]  # last, as in a run of its own
        self.trainer.callbacks = [*(c for c in kept if c not in stops), checkpoint, self.outputs, *stops]
        self.trainer.strategy.checkpoint_io = PicturesCheckpointIO(paths)
        self.ckpt_path = str(paths[0]) if resumed == {True} else None

    @property
    def run_dirs(self) -> list[Path]:
        return [Path(builder.trainer.log_dir) for builder in self.builders]

    def fit(self) -> RunInterrupted | None:
        """Run every picture to the end; returns the stop request that ended them early, if
        one did. Raises as :meth:`nst.run.engine.Run.fit` does."""
        self.stop_requests.ignoring = False
        status = "failed"
        with self.stop_requests.signals():
            try:
                with inert_hooks_left_out(self.trainer, self.module):
                    self.trainer.fit(self.module, datamodule=self.data, ckpt_path=self.ckpt_path)
                status = "success"
            except BaseException as error:
                self.stop_requests.ignoring = True  # the clean-up is not to be interrupted
                stopped = interruption_in(error)
                if stopped is None:
                    reraise_for_user(error)
                if stopped.step is None:
                    raise stopped from None
                status = "success"
                return stopped
            finally:
                self.stop_requests.training = False
                self.outputs.close(status)
        return None
