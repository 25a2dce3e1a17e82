"""TensorBoard as a run writes it: loss curves without Lightning's ``epoch`` line (a run is
one epoch, so it would be a flat line at 0), and each run's settings in the HPARAMS
tab with its final losses, so that runs and sweep cells can be compared there."""

import io
import time
from collections.abc import Sequence
from typing import Any

import google_crc32c
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer import record_writer
from torch import Tensor
from torch.utils.tensorboard.summary import hparams

from nst.errors import NSTError
from nst.run.lightning_private import event_writer, prefixed

LOSSES = ("total", "content", "style", "tv")


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C of a TFRecord (TensorBoard's event files), computed in C."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# Without TensorFlow, TensorBoard's writer checksums every record in pure Python: 0.16 µs a
# byte, ~30 ms for a 200 kB image, on its writer thread but holding the GIL, so the training
# loop waits for it. On a GPU, where a 512 px step takes milliseconds, the images of a run then
# cost more than its steps.
record_writer.masked_crc32c = masked_crc32c


class RunTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger without the ``epoch`` curve, writing a step's scalars as one event."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        if not metrics:
            return
        if any(isinstance(v, dict) for v in metrics.values()):  # grouped curves: Lightning's way
            super().log_metrics(metrics, step)
            return
        # Lightning writes one event per value (add_scalar); a logged step of a dozen losses
        # then costs a dozen protobufs, queue handoffs and writes. TensorBoard reads an event's
        # values each under its own tag, so one event carries them all.
        metrics = prefixed(self, metrics)
        values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
        add_summary(self, Summary(value=values), step)


def add_summary(logger: TensorBoardLogger, summary: Summary, step: int | None = None) -> None:
    """Write a ready-made ``summary`` to the logger's event file."""
    event_writer(logger).add_summary(summary, step)


def image_summary(tag: str, image: Tensor) -> Summary:
    """A [3, H, W] image in [0, 1] as a TensorBoard image summary.

    As a JPEG of quality 95 without chroma subsampling (on a 512 px photo, 1.5 levels in 255
    off on average): TensorBoard's own ``add_image`` writes PNG, ~60 ms to encode at 512 px
    against ~1 ms, with three times the bytes; on a GPU a run's PNGs would take longer than
    its steps. The result and the checkpoints keep the image losslessly."""
    pixels = image.float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().cpu()
    picture = Image.fromarray(pixels.numpy())
    encoded = io.BytesIO()
    picture.save(encoded, format="JPEG", quality=95, subsampling=0)
    jpeg = Summary.Image(
        height=picture.height, width=picture.width, colorspace=3, encoded_image_string=encoded.getvalue()
    )
    return Summary(value=[Summary.Value(tag=tag, image=jpeg)])


class MetricsWriter:
    """Writes scalars to a run's loggers, and has them save to disk at most every ``every_s``
    seconds (Lightning saves after every write; TensorBoard rereads its files every 30 s)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._saved = 0.0

    def write(self, loggers: Sequence[Logger], metrics: dict[str, float], step: int) -> None:
        now = time.monotonic()
        save = now - self._saved >= self.every_s
        for logger in loggers:
            logger.log_metrics(metrics, step)
            if save:
                logger.save()
        if save:
            self._saved = now


def monitored_losses(callbacks: Sequence[Callback], available: Sequence[str]) -> list[str]:
    """The losses that ``callbacks`` (EarlyStopping, ModelCheckpoint, …) monitor, which the
    module must hand to Lightning's ``self.log``; one line if one monitors what no run logs."""
    monitored = []
    for callback in callbacks:
        key = getattr(callback, "monitor", None)
        if not isinstance(key, str) or key in monitored:
            continue
        if key not in available:
            raise NSTError(
                f"{type(callback).__name__} monitors {key!r}, which this run does not log; "
                f"monitor one of {', '.join(available)}"
            )
        monitored.append(key)
    return monitored


def write_summary(logger: Any, settings: dict[str, Any], metrics: dict[str, float], step: int) -> None:
    """Write a run's ``settings`` and final losses to a TensorBoard logger (others are skipped)."""
    if not isinstance(logger, TensorBoardLogger) or not metrics:
        return
    for summary in hparams(settings, {f"final/{k}": v for k, v in metrics.items()}):
        add_summary(logger, summary)
    writer = logger.experiment
    for name, value in metrics.items():
        writer.add_scalar(f"final/{name}", value, step)
    writer.flush()


def final_losses(painting: Any) -> dict[str, float]:
    """The losses of the picture a painting handed back (its best image), or else those kept at
    its last logged step (weighted, as on the curves)."""
    if painting.result_losses:
        return dict(painting.result_losses)
    logged = painting.losses
    return {k: logged[f"loss/{k}"] for k in LOSSES if f"loss/{k}" in logged}


def flat_settings(model: Any, data: Any, max_steps: int, precision: Any) -> dict[str, Any]:
    """``model.*``, ``data.*``, ``trainer.max_steps`` and ``trainer.precision``, as HPARAMS shows them."""
    flat = {f"model.{k}": v for k, v in model.items()}
    flat |= {f"data.{k}": v for k, v in data.items()}
    flat |= {"trainer.max_steps": max_steps, "trainer.precision": str(precision)}
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in flat.items()}
