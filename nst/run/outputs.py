"""What a run leaves in each picture's run directory: config.yaml, TensorBoard images and the
final picture, made by the one function that makes the picture as written."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from nst.errors import NSTError, brief
from nst.images import OUTPUT_FORMATS, save_image
from nst.numerics.colour import original_colours
from nst.run.data import StyleTransferData
from nst.run.pacing import Pacing
from nst.run.pictures import images_of, loggers_of, run_dir_of
from nst.run.run_dirs import RESULT
from nst.run.stopping import RunInterrupted
from nst.run.tensorboard import add_summary, final_losses, flat_settings, image_summary, write_summary


def picture_as_written(module: LightningModule, index: int, colours: str | None, best: bool = True) -> Tensor:
    """Picture ``index`` of a run as it is written: its best image so far (``best``; else the
    current one, as a live view shows it), with the content's colours where asked for, and
    always for a luminance-only run, whose optimised image is grey."""
    image = module.result(index) if best else module.paintings[index].image.detach()
    data = images_of(module.trainer.datamodule)[index].at(max(image.shape[-2:]))  # a phase's size
    colour = data.colour_content  # a luminance-only run: colours come back here
    content = colour if colour is not None else data.content
    space = colours or ("yiq" if colour is not None else None)
    if space and content is not None:
        return original_colours(image.detach(), content, space)
    return image.detach()


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
            count = len(pl_module.paintings)
            for i, data in enumerate(images_of(trainer.datamodule)):
                add_inputs(loggers_of(trainer, i, count), data)
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
        paintings = pl_module.paintings
        for i, painting in enumerate(paintings):
            add_image(
                loggers_of(trainer, i, len(paintings)), "image/current", painting.image, trainer.global_step
            )
        self._last_logged = trainer.global_step


class FinalImage(Callback):
    """Writes the result of a finished run as ``final.png`` in the run directory (each
    picture's, where several are optimised together).

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
        self.results: list[Tensor] = []  # each picture, once the run has finished
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
        count = len(pl_module.paintings)
        self.results = []
        for i in range(count):
            # The best image seen, never a later leap away from it; never a NaN or black picture.
            picture = picture_as_written(pl_module, i, self.original_colours)
            pl_module.check_finite(i, picture)
            self.results.append(picture)
            run_dir = run_dir_of(trainer, i, count)
            if run_dir is not None:
                save_image(picture, run_dir / RESULT)
        if self.path:
            try:
                save_image(self.results[0], self.path, self.quality)
            except OSError as error:
                raise NSTError(f"cannot write output.path {self.path} ({brief(error)})") from error


class SaveRunConfig(Callback):
    """Saves each picture's settings as ``config.yaml`` in its run directory, as given (without
    its run directory's version and checkpoint, so that running it again starts a new run); a
    resumed run adds ``config.resumeN.yaml``.

    Args:
        parser: The parser that read the settings (it writes them back).
        configs: Each picture's settings, in order.
    """

    def __init__(self, parser: Any, configs: Sequence[Any]) -> None:
        self.parser, self.configs = parser, list(configs)
        self._written: list[Path] = []
        self._start_step: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or self._written:
            return
        for i, config in enumerate(self.configs):
            run_dir = run_dir_of(trainer, i, len(self.configs))
            if run_dir is None:  # kept in memory: no run directory to write into
                continue
            path, n = run_dir / "config.yaml", 0
            while path.exists():
                n += 1
                path = run_dir / f"config.resume{n}.yaml"
            run_dir.mkdir(parents=True, exist_ok=True)
            self.parser.save(config, path, skip_unset=False, multifile=False)
            self._written.append(path)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start_step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # A resume that failed before its first step leaves no config behind to describe it.
        if self._start_step in (None, trainer.global_step) and not isinstance(exception, RunInterrupted):
            for path in self._written:
                if path.name != "config.yaml":
                    path.unlink(missing_ok=True)


class HparamsSummary(Callback):
    """Writes each picture's settings and final losses (``final/total``, ...) for the HPARAMS tab."""

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        paintings = pl_module.paintings
        for i, (painting, data) in enumerate(zip(paintings, images_of(trainer.datamodule), strict=True)):
            metrics = final_losses(painting)
            if not metrics:  # resumed at its last step: nothing new to report
                continue
            settings = flat_settings(pl_module.hparams, data.hparams, trainer.max_steps, trainer.precision)
            for logger in loggers_of(trainer, i, len(paintings)):
                write_summary(logger, settings, metrics, trainer.global_step)
