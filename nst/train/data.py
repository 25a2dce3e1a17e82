"""The photos a style network learns from: folders of photos, cropped at random, in batches.

The order of the crops is a function of the seed and the step alone (see Crops), so a run
continued from a checkpoint sees the same crops in the same order as one that never stopped,
and 2 processes with a batch of 2 each see the 4 crops that 1 process with a batch of 4 sees.
"""

import glob
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from nst.errors import NSTError, brief
from nst.images import check_painted_size, long_side_size, read_image, resize_long_side, to_tensor

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
_MAX_SKIPS = 100  # a sample tries this many photos after an unreadable one before giving up


def list_photos(sources: Sequence[str]) -> list[Path]:
    """The photo files in ``sources`` (folders, searched recursively; files; globs), sorted,
    each once."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()]
        elif path.is_file():
            found.append(path)
        elif any(c in source for c in "*?["):
            found += [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
        else:
            raise NSTError(f"data.photos: {source} does not exist; give folders of photos, files or globs")
    return sorted(set(found))


def crop(photo: Image.Image, size: int, generator: torch.Generator | None) -> Tensor:
    """A ``size``×``size`` crop of ``photo`` after its short side is scaled to ``size``: at a
    place drawn from ``generator``, or the centre (None). [3, size, size] in [0, 1]."""
    w, h = photo.size
    scale = size / min(w, h)
    # JPEG decoding at a reduced scale (draft) is several times faster for large photos.
    photo.draft("RGB", (max(size, math.ceil(w * scale)), max(size, math.ceil(h * scale))))
    photo = ImageOps.exif_transpose(photo).convert("RGB")  # upright, as the camera held it
    w, h = photo.size
    scale = size / min(w, h)
    sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
    photo = photo.resize((sw, sh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if generator is None:
        left, top = (sw - size) // 2, (sh - size) // 2
    else:
        left = int(torch.randint(sw - size + 1, (), generator=generator))
        top = int(torch.randint(sh - size + 1, (), generator=generator))
    return to_tensor(photo.crop((left, top, left + size, top + size)))[0]


class Photos(Dataset):
    """Crops of photo files: item ``(index, key)`` is photo ``index`` cropped where ``key``
    (an integer) draws, with the unreadable photos skipped to find a readable one (the next ones).
    ``key`` None: the centre crop (the validation photos)."""

    def __init__(self, files: Sequence[Path], size: int) -> None:
        self.files, self.size = list(files), size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[Tensor, list[str]]:
        index, key = item
        generator = None if key is None else torch.Generator().manual_seed(key)
        skipped: list[str] = []
        for offset in range(min(_MAX_SKIPS, len(self.files))):
            path = self.files[(index + offset) % len(self.files)]
            try:
                with Image.open(path) as photo:
                    return crop(photo, self.size, generator), skipped
            except Exception as error:  # a damaged or non-image file among thousands: skip it
                skipped.append(f"{path} ({brief(error, 80)})")
        # Said by the training process (check_batch): an error raised in a worker process would
        # reach the user wrapped in the worker's traceback.
        return torch.empty(0), skipped


class Crops(Sampler):
    """The training items of one process: an endless sequence of epochs, each a shuffle of the
    photos drawn from ``seed`` and the epoch's number; global batch ``j`` is positions
    [j·B·W, (j+1)·B·W) of it and process ``rank`` of ``world`` takes its ``B`` in turn; each
    item carries the key its crop is drawn with (the seed and its position).

    It starts at the trainer's step (``start``, read when an epoch's iteration begins), so a
    resumed run goes on where it stopped rather than at the start of an epoch.
    """

    def __init__(self, count: int, batch: int, rank: int, world: int, seed: int, start: Any) -> None:
        self.count, self.batch, self.rank, self.world, self.seed = count, batch, rank, world, seed
        self.start = start  # () -> the global step the next item belongs to
        self.per_epoch = count // (batch * world)  # batches; the rest of a shuffle is not used

    def __len__(self) -> int:
        return self.per_epoch * self.batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start()
        epoch, first = divmod(step, self.per_epoch)
        order = torch.randperm(
            self.count, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        )
        for j in range(first, self.per_epoch):
            at = j * self.batch * self.world + self.rank * self.batch
            for position in range(at, at + self.batch):
                key = (self.seed * 1_000_003 + epoch) * 10_000_019 + position
                yield int(order[position]), key % 2**63


def _collate(items: list[tuple[Tensor, list[str]]]) -> tuple[Tensor | None, list[str]]:
    photos, skipped = zip(*items, strict=True)
    paths = [path for paths in skipped for path in paths]
    return (None if any(not p.numel() for p in photos) else torch.stack(photos)), paths


def check_batch(photos: Tensor | None, skipped: list[str], anywhere: bool = False) -> Tensor:
    """The batch's photos; one line if a sample found no readable photo (here, or in another
    process's batch: ``anywhere``)."""
    if photos is None or anywhere:
        first = f" (the first: {skipped[0]})" if photos is None else ""
        raise NSTError(
            f"data.photos: {_MAX_SKIPS if photos is None else 'many'} photos in a row could not be read{first}; "
            "give folders of photos (JPEG, PNG, WebP, ...)"
        )
    return photos


class PhotoData(LightningDataModule):
    """Folders of photos for training a style network, and the style it learns.

    Args:
        photos: Folders of photos (searched recursively), photo files or globs: any photos,
            e.g. COCO 2014's train2014 folder (docs/trained-networks.md). Unreadable files are
            skipped, and counted in the log.
        style: The style image (a path or an http(s) URL), or a list of them, whose statistics
            are blended by ``style_blend``.
        style_blend: One weight per style image (default: equal).
        size: Side of the square crops the network learns from (the paper's 256).
        style_size: Long side of the style image (default: ``size``); larger makes the
            strokes the network learns finer relative to a crop.
        batch_size: Crops per step and process (the paper's 4); with several processes each
            takes this many, so the step's batch is batch_size × processes.
        val_photos: Photos held out of training, on which the loss is measured and (the first
            ``show`` of them) painted into TensorBoard at each validation.
        show: How many of the held-out photos are painted into TensorBoard.
        workers: Worker processes reading and cropping photos (0: in the training process).
    """

    def __init__(
        self,
        photos: str | list[str] = "photos",
        style: str | list[str] = "",
        style_blend: list[float] | None = None,
        size: int = 256,
        style_size: int | None = None,
        batch_size: int = 4,
        val_photos: int = 8,
        show: int = 4,
        workers: int = 2,
    ) -> None:
        super().__init__()
        for name, value, least in [
            ("data.size", size, 32),
            ("data.batch_size", batch_size, 1),
            ("data.val_photos", val_photos, 0),
            ("data.show", show, 0),
            ("data.workers", workers, 0),
        ]:
            if value < least:
                raise NSTError(f"{name} must be at least {least}, got {value}")
        if style_size is not None and style_size < 32:
            raise NSTError(f"data.style_size must be at least 32 px, got {style_size}")
        check_painted_size((size, size), f"data.size {size} makes each crop", "lower data.size")
        styles = style if isinstance(style, list) else [style] if style else []
        if not styles:
            raise NSTError("give data.style: the painting whose style the network learns")
        if style_blend is not None and (
            len(style_blend) != len(styles) or any(w < 0 for w in style_blend) or not any(style_blend)
        ):
            raise NSTError(
                f"data.style_blend must be {len(styles)} weights ≥ 0, not all zero; got {style_blend}"
            )
        self.save_hyperparameters()
        self.styles_sources = styles
        self.train_files: list[Path] = []
        self.val_files: list[Path] = []
        self.styles: list[Tensor] = []  # [1, 3, h, w] each
        self.blend: list[float] = []
        self.seed = 0  # the run's seed (seed_everything), which draws the order and the crops

    def setup(self, stage: str) -> None:
        if self.styles:
            return
        h = self.hparams
        files = list_photos(h.photos if isinstance(h.photos, list) else [h.photos])
        if not files:
            raise NSTError(
                f"data.photos: no photos in {', '.join(map(str, _as_list(h.photos)))} "
                f"(looked for {', '.join(sorted(PHOTO_SUFFIXES))}); give a folder of photos"
            )
        if len(files) < h.val_photos + 1:
            raise NSTError(
                f"data.photos holds {len(files)} photos ({', '.join(map(str, _as_list(h.photos)))}); "
                f"training needs more than data.val_photos={h.val_photos}: give a folder of photos"
            )
        # Held out once and for all: the same photos whatever the run's seed or processes.
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
        held = set(order[: h.val_photos])
        self.val_files = [files[i] for i in sorted(held)]
        self.train_files = [f for i, f in enumerate(files) if i not in held]
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:
            self._check_same_photos(len(files))
        if len(self.train_files) < h.batch_size * world:
            raise NSTError(
                f"data.photos holds {len(self.train_files)} training photos, fewer than one step's batch "
                f"({h.batch_size} × {world} processes); give more photos or a smaller data.batch_size"
            )
        style_side = h.style_size or h.size
        setting = "data.style_size" if h.style_size else "data.size"
        self.styles = []
        for source in self.styles_sources:
            style = read_image(source, "style image")
            made_by = f"{setting} {style_side} makes the style image"
            check_painted_size(long_side_size(style.size, style_side), made_by, f"lower {setting}")
            self.styles.append(to_tensor(resize_long_side(style, style_side)))
        weights = h.style_blend or [1.0] * len(self.styles)
        self.blend = [w / sum(weights) for w in weights]

    def _check_same_photos(self, count: int) -> None:
        # Each process lists the folders itself; the order of the crops is only the same for
        # all when the lists are (folders still being filled, or different on each machine).
        strategy = self.trainer.strategy
        differs = strategy.broadcast(count) != count
        if strategy.reduce_boolean_decision(differs, all=False):
            raise NSTError(
                "data.photos: the processes found different numbers of photos; give folders that "
                "no one is changing, on a filesystem every machine shares"
            )

    def train_dataloader(self) -> DataLoader:
        h, trainer = self.hparams, self.trainer
        sampler = Crops(
            len(self.train_files),
            h.batch_size,
            trainer.global_rank,
            trainer.world_size,
            self.seed,
            start=lambda: trainer.global_step,
        )
        return self._loader(Photos(self.train_files, h.size), sampler, h.batch_size)

    def val_dataloader(self) -> DataLoader:
        # Read in this process: a few photos now and then need no worker processes kept idle.
        items = [(i, None) for i in range(len(self.val_files))]
        return self._loader(Photos(self.val_files, self.hparams.size), items, self.hparams.batch_size, 0)

    def _loader(self, photos: Photos, sampler: Any, batch: int, workers: int | None = None) -> DataLoader:
        workers = self.hparams.workers if workers is None else workers
        return DataLoader(
            photos,
            batch_size=batch,
            sampler=sampler,
            num_workers=workers,
            collate_fn=_collate,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def fixed_photos(self) -> Tensor:
        """The held-out photos painted into TensorBoard, [show, 3, size, size]."""
        photos = Photos(self.val_files[: self.hparams.show], self.hparams.size)
        return (
            torch.stack([photos[(i, None)][0] for i in range(len(photos))]) if len(photos) else torch.empty(0)
        )


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]
