"""The content and style images of a run, as a LightningDataModule."""

import math
from collections.abc import Iterable, Iterator

import torch
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch import Tensor

from nst import download
from nst.errors import NSTError
from nst.images import (
    check_painted_size,
    from_memory,
    largest_long_side,
    long_side_size,
    read_image,
    resize_long_side,
    to_tensor,
)
from nst.numerics.colour import luminance, match_colours
from nst.numerics.regions import Regions, check_pair, read_regions
from nst.numerics.targets import Images


class _PairIndices(Iterable[Tensor]):
    """The items of a run's one endless epoch: at every step, the indices of the content/style
    pairs the step optimises.

    A run of one picture has one pair; pictures optimised together one each (nst.run.pictures).
    Keeping the images out of the batch means nothing is copied to
    the device per step; the module reads the pairs once from the DataModule. A run is a single
    epoch, ended by trainer.max_steps or a stop, because Lightning's work at each epoch's start
    and end costs as much as a small picture's losses: 0.3 ms a step at 32 px on a CPU. Every
    item is the same, so a run resumed in the middle of that epoch reads exactly what an
    uninterrupted one would, wherever its loader starts (and an endless loader has no length for
    Lightning to warn about as "not resumable"). It is the loader itself: wrapped in a torch
    DataLoader, which has nothing to do for it, each item cost 0.13 ms more.
    """

    def __init__(self, pairs: int) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[Tensor]:
        pairs = torch.arange(self.pairs)
        while True:
            yield pairs


class StyleTransferData(LightningDataModule):
    """Content and style images, loaded once per run.

    Either image may be left out: without a style image the run reconstructs the content
    from the features of its content layers; without a content image it synthesises a
    texture of the style at the size ``size`` gives.

    Args:
        content: Content image: a local path or an http(s) URL (downloaded once into a cache).
        style: Style image: a local path or an http(s) URL; or a list of them, whose style
            targets (Gram matrices) are blended by ``style_blend``.
        style_blend: One weight per style image (default: equal); normalised to sum to 1.
        match_colours: Give each style image the content's colour mean and covariance before
            the run, so the result takes the painting's strokes but keeps the photo's palette.
        luminance_only: Transfer style in luminance only (Gatys et al. 2017): the run sees grey
            content and style images (the style's luminance matched to the content's), and the
            written result takes its colours from the content image.
        size: The result's size in pixels: its long side (the content's aspect ratio is kept;
            a texture without content is square), or ``[width, height]``.
        style_size: Long side of the style image in pixels (default: the result's long side).
        style_scale: Long side of the style image relative to the result's (as jcjohnson's
            neural-style has it): below 1 the painting is seen smaller, so its brush strokes
            come out larger in the result; above 1, finer. Use this or ``style_size``.
        content_masks: Regions of the photo, each painted with the style of the same region of
            the painting (Gatys et al. 2017): a label image in flat colours, or a list of
            black-and-white masks, drawn at the photo's size. Needs ``style_masks``.
        style_masks: The painting's regions, with the same labels (colours, or the same number
            of masks), drawn at the painting's size.
    """

    def __init__(
        self,
        content: str | None = None,
        style: str | list[str] | None = None,
        size: int | list[int] = 512,
        style_size: int | None = None,
        style_scale: float | None = None,
        style_blend: list[float] | None = None,
        match_colours: bool = False,
        luminance_only: bool = False,
        content_masks: str | list[str] | None = None,
        style_masks: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        styles = style if isinstance(style, list) else [] if style is None else [style]
        if (content_masks is None) != (style_masks is None):
            raise NSTError("give data.content_masks and data.style_masks together: each region needs both")
        if content_masks is not None and (content is None or len(styles) != 1):
            raise NSTError("region masks need a content image and one style image")
        if isinstance(style, list) and not style:
            raise NSTError("data.style is an empty list; give at least one image, or null for none")
        if style_blend is not None:
            if len(style_blend) != len(styles):
                raise NSTError(
                    f"data.style_blend has {len(style_blend)} weights for {len(styles)} style images"
                )
            if not all(math.isfinite(w) and w >= 0 for w in style_blend) or not any(style_blend):
                raise NSTError(f"data.style_blend must be weights ≥ 0, not all zero, got {style_blend}")
        if content is None and style is None:
            raise NSTError("give data.content, data.style or both: there is nothing to start from")
        sizes = size if isinstance(size, list) else [size]
        if isinstance(size, list) and len(size) != 2:
            raise NSTError(f"data.size is a long side or [width, height], got {size}")
        for name, value in [*(("data.size", v) for v in sizes), ("data.style_size", style_size)]:
            if value is not None and value <= 0:
                raise NSTError(f"{name} must be a positive number of pixels, got {value}")
        if style_scale is not None and not (math.isfinite(style_scale) and style_scale > 0):
            raise NSTError(f"data.style_scale must be a positive number, got {style_scale}")
        if style_scale is not None and style_size is not None:
            raise NSTError("give data.style_size or data.style_scale, not both")
        self.save_hyperparameters()
        self.content: Tensor | None = None
        self.style: Tensor | None = None  # the (first) style image
        self.styles: list[Tensor] = []  # every style image, blended by self.blend
        self.blend: list[float] = []
        self.colour_content: Tensor | None = None  # the content in colour, when the run sees it grey
        self.shape: tuple[int, int] | None = None  # (height, width) of the result
        self._content: Image.Image | None = None  # as read, before any resizing
        self._styles: list[Image.Image] = []
        self._sized: dict[int, Images] = {}
        self._regions: tuple[Regions, Regions] | None = None
        self.region_labels: list[str] = []
        # Images handed over in memory (by the Python API), by the name that stands for them in
        # data.content and data.style; those names are never read as paths.
        self.given: dict[str, Image.Image] = {}

    def prepare_data(self) -> None:
        # Runs once per machine before setup: downloads URLs into the cache.
        for source in (self.hparams.content, *self._style_sources()):
            if source is not None and source not in self.given and download.is_url(source):
                download.fetch(source)

    def _read(self, source: str, role: str) -> Image.Image:
        return from_memory(self.given[source], role) if source in self.given else read_image(source, role)

    def setup(self, stage: str) -> None:
        if self.shape is not None:
            return
        if self.hparams.content is not None:
            self._content = self._read(self.hparams.content, "content image")
        self._styles = [self._read(s, "style image") for s in self._style_sources()]
        if self.hparams.content_masks is not None:
            regions = (
                read_regions(self.hparams.content_masks, "data.content_masks"),
                read_regions(self.hparams.style_masks, "data.style_masks"),
            )
            self.region_labels = check_pair(*regions, self._content.size, self._styles[0].size)
            self._regions = regions
        weights = self.hparams.style_blend or [1.0] * len(self._styles)
        self.blend = [w / sum(weights) for w in weights]
        images = self.at(self.long_side)
        self.shape, self.content, self.style = images.shape, images.content, images.style
        self.styles, self.colour_content = images.styles, images.colour_content

    @property
    def long_side(self) -> int:
        """The long side of the result in pixels."""
        size = self.hparams.size
        return max(size) if isinstance(size, list) else size

    def at(self, long_side: int) -> Images:
        """The images for a result of this long side (the run's own size gives the attributes
        ``content``, ``styles``, ...): the aspect ratio is kept, and the style image is scaled
        with the result, so that its strokes keep their size relative to the picture."""
        if long_side not in self._sized:
            self._sized[long_side] = self._images_at(long_side)
        return self._sized[long_side]

    def _images_at(self, long_side: int) -> Images:
        size, scale = self.hparams.size, long_side / self.long_side
        # What asks for this size, to name in a refusal: the run's own size, or a phase's.
        own = long_side == self.long_side
        asked = f"data.size {size}" if own else f"a model.phases size of {long_side}"
        lower_size = lower = "lower data.size" if own else "lower that phase's size"
        if isinstance(size, list):  # exactly as asked, even if that changes the aspect ratio
            wanted = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        elif self._content is not None:
            wanted = long_side_size(self._content.size, long_side)
            lower += f" (to {largest_long_side(self._content.size)} at most for this content image)"
        else:
            wanted = (long_side, long_side)
        check_painted_size(wanted, f"{asked} makes the result", lower)
        content = None
        if self._content is not None:
            content = to_tensor(self._content.resize(wanted, Image.Resampling.BICUBIC))
        shape = (wanted[1], wanted[0])
        colour_content = None
        if self.hparams.luminance_only and content is not None:
            colour_content, content = content, luminance(content)
        if not self._styles:
            return Images(shape, content, colour_content=colour_content)
        if self.hparams.style_size:
            style_side = max(1, round(self.hparams.style_size * scale))
        else:
            style_side = max(1, round((self.hparams.style_scale or 1.0) * max(shape)))
        if self.hparams.style_size:
            asked, lower = f"data.style_size {self.hparams.style_size}", "lower data.style_size"
        elif self.hparams.style_scale:
            asked, lower = f"data.style_scale {self.hparams.style_scale}", "lower data.style_scale"
        else:  # the style at the result's long side: larger than the result where the content is narrower
            lower = f"{lower_size}, or give data.style_scale below 1"
        for style in self._styles:
            check_painted_size(
                long_side_size(style.size, style_side), f"{asked} makes the style image", lower
            )
        styles = [to_tensor(resize_long_side(style, style_side)) for style in self._styles]
        if self.hparams.match_colours and content is not None:
            styles = [match_colours(style, content) for style in styles]
        style = styles[0]
        if self.hparams.luminance_only and content is not None:
            styles = [luminance(style, like=content) for style in styles]
        masks: tuple[Tensor | None, Tensor | None] = (None, None)
        if self._regions is not None:
            content_regions, style_regions = self._regions
            labels = self.region_labels
            masks = (
                content_regions.masks(shape, labels),
                style_regions.masks(tuple(style.shape[-2:]), labels),
            )
        return Images(shape, content, style, styles, colour_content, *masks)

    def _style_sources(self) -> list[str]:
        style = self.hparams.style
        return style if isinstance(style, list) else [] if style is None else [style]

    def train_dataloader(self) -> Iterable[Tensor]:
        return _PairIndices(pairs=1)
