"""What a run shows and leaves behind: TensorBoard images, the progress bar, the final image."""

import math
import os
from collections.abc import Sequence
from pathlib import Path
from time import monotonic
from typing import Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from nst.errors import NSTError, brief
from nst.images import OUTPUT_FORMATS, save_image
from nst.numerics.colour import original_colours
from nst.run import run_dirs
from nst.run.data import Images, StyleTransferData
from nst.run.pacing import Pacing
from nst.run.tensorboard import add_summary, image_summary


def add_image(loggers: Sequence[Logger], tag: str, image: Tensor, step: int) -> None:
    """Show ``image`` (the first of a batch) in the Images tab of the TensorBoard loggers."""
    tensorboards = [logger for logger in loggers if isinstance(logger, TensorBoardLogger)]
    if tensorboards:
        summary = image_summary(tag, image.detach()[0])
        for logger in tensorboards:
            add_summary(logger, summary, step)


def add_inputs(loggers: Sequence[Logger], data: StyleTransferData) -> None:
    """Show a run's content and style images, as the run sees them, at step 0."""
    if data.content is not None:  # absent in texture synthesis
        add_image(loggers, "image/content", data.content, 0)
    for i, style in enumerate(data.styles):  # none in reconstruction; several when blended
        add_image(loggers, "image/style" if i == 0 else f"image/style_{i + 1}", style, 0)


class ImageLogger(Callback):
    """Shows the optimisation in TensorBoard's Images tab.

    Args:
        every_n_steps: Log the current image every this many steps (0: only at the start and the end).
        max_time_share: Periodic images take at most this share of the run's time, as
            checkpoint.max_time_share has it for checkpoints (0: none waits).
    """

    def __init__(self, every_n_steps: int = 50, max_time_share: float = 0.05) -> None:
        if every_n_steps < 0:
            raise NSTError(f"image_log.every_n_steps must be ≥ 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.pacing = Pacing(max_time_share, "image_log.max_time_share")
        self._last_logged: int | None = None

    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == 0:  # a resumed run has shown these already
            add_inputs(trainer.loggers, trainer.datamodule)
            self._log_current(trainer, pl_module)

    @rank_zero_only
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        # global_step already counts the step that just ended
        if self.pacing.due(trainer.global_step, self.every_n_steps):
            with self.pacing.writing():
                self._log_current(trainer, pl_module)

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._last_logged != trainer.global_step:
            self._log_current(trainer, pl_module)

    def _log_current(self, trainer: Trainer, pl_module: LightningModule) -> None:
        add_image(trainer.loggers, "image/current", pl_module.image, trainer.global_step)
        self._last_logged = trainer.global_step


class FinalImage(Callback):
    """Writes the result of a finished run as ``final.png`` in the run directory.

    Args:
        path: Also write the result here, in the format of its extension: .png, .jpg, .webp
            or .tif (16 bits per channel); tagged sRGB.
        overwrite: Replace an existing file at ``path`` (otherwise the run refuses to start).
        quality: JPEG and WebP quality, 1-100 (WebP 100 is lossless).
        original_colours: Keep the content's colours: the result's luminance with the content
            image's chroma, in ``yiq`` or ``ycbcr`` (applied to the written images; checkpoints
            keep the optimised image).
    """

    def __init__(
        self,
        path: str | None = None,
        overwrite: bool = False,
        quality: int = 95,
        original_colours: Literal["yiq", "ycbcr"] | None = None,
    ) -> None:
        self.original_colours = original_colours
        self.result: Tensor | None = None  # the picture, once the run has finished
        self.path = path
        self.overwrite = overwrite
        self.quality = quality
        if not 1 <= quality <= 100:
            raise NSTError(f"output.quality must be between 1 and 100, got {quality}")
        if path is not None and Path(path).suffix.lower() not in OUTPUT_FORMATS:
            raise NSTError(f"output.path {path} must end in .png, .jpg, .webp or .tif")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Checked before the run, not after it: a long run must not end in a refusal.
        if not self.path:
            return
        path = Path(self.path)
        if path.exists() and not self.overwrite:
            raise NSTError(f"output.path {path} exists; choose another path or pass --output.overwrite true")
        folder = next(p for p in [path.parent, *path.parent.parents] if p.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise NSTError(f"output.path {path} cannot be written: {folder} is not a writable folder")

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        best = pl_module.result()  # the best image seen, never a later leap away from it
        pl_module.check_finite(best)  # never a NaN or black final.png
        self.result = result_image(best, trainer.datamodule, self.original_colours)
        # Without a logger Lightning's log_dir is the working directory: not ours to write into.
        if trainer.logger is not None and trainer.log_dir is not None:
            save_image(self.result, Path(trainer.log_dir) / run_dirs.RESULT)
        if self.path:
            try:
                save_image(self.result, self.path, self.quality)
            except OSError as error:
                raise NSTError(f"cannot write output.path {self.path} ({brief(error)})") from error


def result_image(image: Tensor, data: StyleTransferData | Images, colours: str | None) -> Tensor:
    """The picture a run's image makes: with the content's colours where asked for, and always
    for a luminance-only run, whose optimised image is grey. ``data`` has the image's size."""
    colour = data.colour_content  # a luminance-only run: colours come back here
    content = colour if colour is not None else data.content
    space = colours or ("yiq" if colour is not None else None)
    if space and content is not None:
        return original_colours(image.detach(), content, space)
    return image.detach()


REDRAW_S = 0.1  # the progress bar's fastest redraw, as tqdm's own mininterval


class StepProgressBar(TQDMProgressBar):
    """One bar over all steps of the run, with the losses.

    A run is one endless Lightning epoch (see nst.run.data), so the stock bar would count batches
    of an epoch without end; this one counts steps towards trainer.max_steps, from where a
    resumed run starts.
    """

    _drawn_at = -math.inf

    @property
    def train_description(self) -> str:
        return "step"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = bar.n = trainer.global_step

    def on_train_epoch_start(self, *_: object) -> None:
        pass

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        # Redrawn at most every REDRAW_S (and at the last step): a redraw costs ~0.15 ms, a
        # share of a small picture's step on a CPU and of most steps on a GPU, and more than a
        # few a second cannot be read anyway.
        bar, step, now = self.train_progress_bar, trainer.global_step, monotonic()
        if self._should_update(step, bar.total) and (now - self._drawn_at >= REDRAW_S or step == bar.total):
            self._draw(trainer, pl_module)
            self._drawn_at = now

    def on_train_epoch_end(self, *_: object) -> None:
        pass

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = self.train_progress_bar
        if bar is not None and bar.n != trainer.global_step:  # ended early, between redraws
            self._draw(trainer, pl_module)
        super().on_train_end(trainer, pl_module)

    def _draw(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, int | str | float]:
        metrics = super().get_metrics(trainer, pl_module)
        logged = getattr(pl_module, "logged", None) or {}  # see StyleTransfer._log_losses
        metrics |= {k: v for k, v in logged.items() if k in ("loss/total", "loss/content", "loss/style")}
        schedule = getattr(pl_module, "schedule", None)
        if schedule is not None and schedule.multi_scale:  # which phase, at which size
            index = pl_module.phase
            metrics["phase"] = f"{index + 1}/{len(schedule)} at {schedule[index].size} px"
        return metrics
