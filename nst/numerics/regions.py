"""Painting regions separately (Gatys et al. 2017, spatial control): the photo and the painting
each come with masks of their regions, and each region of the photo takes the style of the
region of the painting with the same label, through guided Gram matrices.

Masks come as a label image (each flat colour a region; the same colours in the photo's and
the painting's) or as a list of black-and-white images (region i of the photo with region i of
the painting). A mask is drawn at its image's size. At every style layer the masks are
averaged down to the layer's resolution, and each region's Gram matrix is taken over the
features weighted by its mask, normalised by the mask's mass, so that a region's statistic
is the mean over its own pixels.
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from nst.errors import NSTError
from nst.images import read_image
from nst.numerics.losses import full_precision

MAX_REGIONS = 16


class Regions:
    """The regions of one image: a label for each, and a function from a size to masks."""

    def __init__(self, labels: list[str], label_map: np.ndarray, source: str) -> None:
        self.labels = labels
        self.label_map = label_map  # [H, W] of indices into labels
        self.source = source

    @property
    def size(self) -> tuple[int, int]:
        return self.label_map.shape[1], self.label_map.shape[0]

    def masks(self, shape: tuple[int, int], order: Sequence[str]) -> Tensor:
        """[R, H, W] masks at ``shape`` (height, width), in the order of the labels ``order``."""
        height, width = shape
        resized = Image.fromarray(self.label_map.astype(np.uint8)).resize(
            (width, height), Image.Resampling.NEAREST
        )
        indices = torch.from_numpy(np.asarray(resized).astype(np.int64))
        return torch.stack([(indices == self.labels.index(label)).float() for label in order])


def read_regions(given: str | list[str], option: str) -> Regions:
    """The regions ``option`` gives: a label image, or a list of black-and-white masks."""
    if isinstance(given, str):
        image = np.asarray(read_image(given, f"{option} image").convert("RGB"))
        colours, label_map = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True)
        if len(colours) > MAX_REGIONS:
            raise NSTError(
                f"{option} {given} has {len(colours)} colours, over the {MAX_REGIONS} regions nst takes; "
                "draw it in a few flat colours and save it as PNG (JPEG blurs the edges into new colours)"
            )
        labels = ["#{:02x}{:02x}{:02x}".format(*c) for c in colours]
        return Regions(labels, label_map.reshape(image.shape[:2]), given)
    if not given:
        raise NSTError(f"{option} is an empty list; give a label image or black-and-white masks")
    maps = [np.asarray(read_image(path, f"{option} image").convert("L")) >= 128 for path in given]
    if len({m.shape for m in maps}) > 1:
        raise NSTError(f"the masks of {option} differ in size; draw them all at the image's size")
    label_map = np.full(maps[0].shape, len(maps), dtype=np.int64)  # uncovered: a region of its own
    for index, mask in reversed(list(enumerate(maps))):
        label_map[mask] = index
    labels = [str(i) for i in range(len(maps))]
    if (label_map == len(maps)).any():
        labels.append("uncovered")
    return Regions(labels, label_map, ", ".join(given))


def check_pair(
    content: Regions, style: Regions, content_size: tuple[int, int], style_size: tuple[int, int]
) -> list[str]:
    """Masks at their images' sizes and with the same labels; returns the labels in order."""
    for regions, size, option in (
        (content, content_size, "data.content_masks"),
        (style, style_size, "data.style_masks"),
    ):
        if regions.size != size:
            raise NSTError(
                f"{option} {regions.source} is {regions.size[0]}×{regions.size[1]} px but its image is "
                f"{size[0]}×{size[1]} px; draw the masks at the image's size"
            )
    only_content = [label for label in content.labels if label not in style.labels]
    only_style = [label for label in style.labels if label not in content.labels]
    if only_content or only_style:
        where = f"{', '.join(only_content)} only in the photo's" if only_content else ""
        where += ("; " if where else "") + (
            f"{', '.join(only_style)} only in the painting's" if only_style else ""
        )
        raise NSTError(
            f"the regions of data.content_masks and data.style_masks differ ({where}); "
            "give both the same labels"
        )
    return content.labels


def at_layer(masks: Tensor, features: Tensor) -> Tensor:
    """[R, H, W] masks averaged down to the feature maps' resolution: [R, 1, h, w]."""
    return F.interpolate(masks[:, None].to(features), size=features.shape[-2:], mode="area")


def guided_grams(features: Tensor, masks: Tensor) -> Tensor:
    """Each region's Gram matrix of [1, C, H, W] features under [R, H, W] masks (or masks
    already at the layer's resolution, [R, 1, h, w]): [R, C, C]."""
    with full_precision(features):
        weights = (masks if masks.dim() == 4 else at_layer(masks, features)).float()  # [R, 1, h, w]
        flat = (features.float() * weights).flatten(2)  # [R, C, h·w]
        mass = weights.flatten(1).pow(2).sum(-1).clamp_min(1e-8)  # the mask's mass at this layer
        return flat @ flat.transpose(1, 2) / (features.shape[1] * mass[:, None, None])


def guided_distance(features: Tensor, target: Tensor, masks: Tensor, shares: Tensor) -> Tensor:
    """The regions' Gram losses, weighted by each region's share of the picture (``masks`` as
    guided_grams takes them)."""
    per_region = (guided_grams(features, masks) - target).pow(2).mean(dim=(1, 2))
    return (per_region * shares.to(per_region)).sum()
