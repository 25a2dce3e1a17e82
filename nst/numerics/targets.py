"""The content and style targets of a phase: VGG features of the content image and the style
statistic (nst.numerics.style_stats: Gram matrices by default) of the style images, computed once per phase and shared between runs of one process
(see nst.numerics.reuse) that use the same network, image, layers, device and precision."""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from nst.numerics import reuse
from nst.numerics.regions import at_layer, guided_grams
from nst.numerics.style_stats import Stat, blend, statistic


@dataclass(frozen=True)
class Images:
    """The images of a run at one size (a multi-scale run has one such set per phase)."""

    shape: tuple[int, int]  # (height, width) of the result
    content: Tensor | None = None
    style: Tensor | None = None  # the (first) style image
    styles: list[Tensor] = field(default_factory=list)  # every style image, as the style loss sees them
    colour_content: Tensor | None = None  # the content in colour, when the run sees it grey
    content_masks: Tensor | None = None  # [R, H, W] regions of the result (see nst.numerics.regions)
    style_masks: Tensor | None = None  # [R, h, w] the same regions of the style image


# (image, make) -> {layer: make(layer, feature maps)} without gradients, made layer by layer
Features = Callable[[Tensor, Callable[[str, Tensor], Any]], dict[str, Any]]


@dataclass
class Targets:
    content: dict[str, Tensor] = field(default_factory=dict)  # layer -> features
    style: dict[str, Stat] = field(default_factory=dict)  # layer -> (blended) style statistic
    masks: Tensor | None = None  # [R, H, W] the result's regions, when the run paints regions
    shares: Tensor | None = None  # [R] each region's share of the result
    _masks_at: dict[tuple[int, ...], Tensor] = field(default_factory=dict)

    def masks_at(self, features: Tensor) -> Tensor:
        """The regions averaged down to ``features``' resolution once per layer size, not per step."""
        size = tuple(features.shape[-2:])
        if size not in self._masks_at:
            self._masks_at[size] = at_layer(self.masks.to(features.device), features)
            self.shares = self.shares.to(features.device)
        return self._masks_at[size]


def compute_targets(
    features: Features,
    images: Images,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    blend_weights: Sequence[float],
    key: tuple[Any, ...],
    kind: str = "gram",
) -> Targets:
    """Targets for ``images``; ``key`` says what else they depend on (network, device, precision)."""
    targets = Targets()
    if content_layers and images.content is not None:
        targets.content = reuse.targets(
            ("content", *key, *content_layers),
            images.content,
            lambda: features(images.content, lambda n, f: f.float() if n in content_layers else None),
        )
    if style_layers and images.style_masks is not None:
        # One style, region by region: each layer's target is one Gram matrix per region.
        masks = images.style_masks
        targets.style = reuse.targets(
            ("regions", *key, *style_layers, hashlib.sha1(masks.numpy().tobytes()).hexdigest()),
            images.styles[0],
            lambda: features(
                images.styles[0],
                lambda n, f: {"regions": guided_grams(f, masks)} if n in style_layers else None,
            ),
        )
        targets.masks = images.content_masks
        targets.shares = images.content_masks.mean(dim=(1, 2))
    elif style_layers and images.styles:
        # Several styles: the weighted mean of their statistics (one style: weight 1, unchanged).
        stats = [
            reuse.targets(
                ("style", kind, *key, *style_layers),
                image,
                lambda image=image: features(
                    image, lambda n, f: statistic(kind, f) if n in style_layers else None
                ),
            )
            for image in images.styles
        ]
        targets.style = {n: blend(kind, [s[n] for s in stats], blend_weights) for n in style_layers}
    return targets
