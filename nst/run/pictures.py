"""The pictures of a run: one, or several optimised together (``nst sweep --batch_size``),
each with its own images, loggers and run directory.

A run of several pictures is one Lightning fit of one module (nst.run.module, one painting per
picture, one VGG pass for all) with one datamodule holding each picture's images and one logger
per picture, in the same order. Everything that writes a picture's files (the module's curves,
nst.run.outputs, nst.run.animation) finds them here, so each picture's run directory gets the
files a run of its own would have.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from torch import Tensor

from nst.errors import NSTError
from nst.run.data import StyleTransferData, _PairIndices
from nst.run.tensorboard import MetricsWriter


class PicturesData(LightningDataModule):
    """The images of pictures optimised together: each picture's own datamodule, loaded together.

    Args:
        pictures: Each picture's images, as a run of its own loads them.
        names: Each picture's name, in messages (a sweep's cell, say).
        seed: The seed of their runs (seed_everything), with which each picture draws its
            noise start as its own run would.
    """

    def __init__(self, pictures: Sequence[StyleTransferData], names: Sequence[str], seed: int | None) -> None:
        super().__init__()
        self.pictures, self.names, self.seed = list(pictures), list(names), seed

    def prepare_data(self) -> None:
        for data in self.pictures:
            data.prepare_data()

    def setup(self, stage: str) -> None:
        for data in self.pictures:
            data.setup(stage)

    def train_dataloader(self) -> Iterable[Tensor]:
        return _PairIndices(pairs=len(self.pictures))


def images_of(datamodule: object) -> list[StyleTransferData]:
    """Each picture's images, from a run's datamodule."""
    pictures = datamodule.pictures if isinstance(datamodule, PicturesData) else [datamodule]
    if not all(isinstance(data, StyleTransferData) and data.shape is not None for data in pictures):
        raise NSTError("StyleTransfer needs a StyleTransferData datamodule passed to trainer.fit")
    return pictures


def count_of(datamodule: object) -> int:
    """How many pictures a run's datamodule holds."""
    return len(datamodule.pictures) if isinstance(datamodule, PicturesData) else 1


def seed_of(datamodule: object) -> int | None:
    """The seed each picture's start is drawn with, where several are optimised together
    (None for the one picture of a run, which draws it as the run's seed left it)."""
    return datamodule.seed if isinstance(datamodule, PicturesData) else None


def names_of(datamodule: object) -> list[str | None]:
    """Each picture's name in messages (None for the one picture of a run)."""
    return list(datamodule.names) if isinstance(datamodule, PicturesData) else [None]


def loggers_of(trainer: Trainer, index: int, count: int) -> list[Logger]:
    """The loggers of picture ``index`` of ``count``: the trainer's, or with several pictures
    its logger of that picture."""
    loggers = trainer.loggers
    if count == 1:
        return list(loggers)
    return [loggers[index]] if index < len(loggers) else []


def run_dir_of(trainer: Trainer, index: int, count: int) -> Path | None:
    """Where picture ``index`` of ``count`` writes its files; None for a run kept in memory
    (Lightning's log_dir is then the working directory: not ours to write into)."""
    loggers = loggers_of(trainer, index, count)
    if not loggers:
        return None
    # The logger's own directory, as trainer.log_dir finds it, but without the broadcast from
    # the first process that trainer.log_dir makes: a collective that only some processes of a
    # training run reach (those that write) would wait for the others for ever.
    logger = loggers[0]
    log_dir = getattr(logger, "log_dir", None) or logger.save_dir
    return Path(log_dir) if log_dir is not None else None


class Curves:
    """What a run writes to each picture's loggers beside its images: the settings (as
    Lightning logs a run's, in TensorBoard's hparams.yaml), the losses at the steps Lightning
    would write them, and the phases' sizes.

    Args:
        trainer: The run's trainer.
        model: The model's settings, which every picture shares.
        pictures: Each picture's images, whose settings are its own.
    """

    def __init__(
        self, trainer: Trainer, model: dict[str, object], pictures: Sequence[StyleTransferData]
    ) -> None:
        self.count = len(pictures)
        self._writers = [MetricsWriter() for _ in pictures]
        for i, data in enumerate(pictures):
            settings = {**model, **data.hparams_initial}
            for logger in loggers_of(trainer, i, self.count):
                logger.log_hyperparams({k: v for k, v in settings.items() if k != "_class_path"})

    def losses(self, trainer: Trainer, losses: Sequence[dict[str, float]], step: int) -> None:
        """Each picture's ``losses`` of step ``step`` (counted from 0), if its curves take that step."""
        every = trainer.log_every_n_steps
        if every > 0 and (step + 1) % every == 0:
            for i, (values, writer) in enumerate(zip(losses, self._writers, strict=True)):
                writer.write(loggers_of(trainer, i, self.count), values, step)

    def phase(self, trainer: Trainer, size: int, step: int) -> None:
        """The size of the phase at ``step``."""
        for i in range(self.count):
            for logger in loggers_of(trainer, i, self.count):
                logger.log_metrics({"phase/size": float(size)}, step=step)
