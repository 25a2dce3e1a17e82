"""The content and style images of a run, as a LightningDataModule."""

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nst import download
from nst.errors import NSTError
from nst.images import load_image


class _PairIndices(Dataset):
    """One item per step: the indices of the content/style pairs a step optimises.

    There is one pair today. Keeping the images out of the batch means nothing is
    copied to the device per step; the module reads the pairs once from the DataModule.
    One item per epoch means no epoch is ever cut by a checkpoint: Lightning warns that a
    longer epoch cut mid-way is not resumable, while these resume exactly.
    """

    def __init__(self, pairs: int) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Tensor:
        return torch.arange(self.pairs)


class StyleTransferData(LightningDataModule):
    """Content and style images, loaded once per run.

    Args:
        content: Content image: a local path or an http(s) URL (downloaded once into a cache).
        style: Style image: a local path or an http(s) URL.
        size: Long side of the content image (and so of the result) in pixels; aspect ratio is kept.
        style_size: Long side of the style image in pixels (default: the same as ``size``).
    """

    def __init__(self, content: str, style: str, size: int = 512, style_size: int | None = None) -> None:
        super().__init__()
        for name, value in (("data.size", size), ("data.style_size", style_size)):
            if value is not None and value <= 0:
                raise NSTError(f"{name} must be a positive number of pixels, got {value}")
        self.save_hyperparameters()
        self.content: Tensor | None = None
        self.style: Tensor | None = None

    def prepare_data(self) -> None:
        # Runs once per machine before setup: downloads URLs into the cache.
        for source in (self.hparams.content, self.hparams.style):
            if download.is_url(source):
                download.fetch(source)

    def setup(self, stage: str) -> None:
        if self.content is not None:
            return
        size = self.hparams.size
        self.content = load_image(self.hparams.content, size, "content image")
        self.style = load_image(self.hparams.style, self.hparams.style_size or size, "style image")

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_PairIndices(pairs=1), batch_size=None)
