"""How good a picture is: the objective that every way of painting minimises, as a plain object.

Gatys, Ecker & Bethge (2016): the picture's VGG19 features at the content layers should be the
content image's (mean squared error), and a statistic of its features at the style layers
(nst.numerics.style_stats; Gram matrices by default) the style images'; each term has a weight.
Terms computed on the picture itself (total variation; next, a video frame's distance to the
frame before) come in as :class:`Term` objects, without a change here::

    objective = Objective(targets, content_layers=["conv4_2"], style_layers=STYLE, style_weight=1e6)
    weighted = objective.evaluate(vgg, picture)   # [T]: the weighted terms, in objective.names order
    objective.losses(weighted)                     # {"content", "style", "tv", "total", "style/conv1_1", ...}

A run of one picture and pictures optimised together in one VGG pass (which call
``layer_terms`` and ``weigh`` on their share of each layer's maps) call this object, and so do
video frames (with a temporal Term) and a style network in training (on its paintings of a
batch of photos, their own features as the content targets); no Lightning here.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from nst.numerics.losses import content_loss, tv_loss
from nst.numerics.regions import guided_distance
from nst.numerics.style_stats import distance
from nst.numerics.targets import Targets
from nst.numerics.vgg import VGGFeatures

T = TypeVar("T", Tensor, float)
SUMMARY = ("total", "content", "style", "tv")  # the losses a result reports (final/* in TensorBoard)


@dataclass(frozen=True)
class Term:
    """A term of the objective computed on the picture as the losses see it ([B, 3, H, W]),
    unweighted, as a scalar: total variation, or a video frame's distance to the frame before.
    Its curve is ``loss/<name>``."""

    name: str
    weight: float
    loss: Callable[[Tensor], Tensor]


class Objective:
    """The weighted loss terms of a picture against its targets.

    Args:
        targets: The content features and the style statistics (and the regions, where the
            picture is painted region by region) that the picture is compared with.
        content_layers: Layers whose features the picture must share with the content image
            (none: no content term).
        style_layers: Layers whose style statistic the picture must share with the style.
        content_weight: Weight of each content layer's term.
        style_weight: Weight of the style terms, times ``style_layer_weights`` (default 1 each).
        tv_weight: Weight of the total-variation term (0: none).
        style_loss: The style statistic (nst.numerics.style_stats.KINDS).
        grey: The losses see the picture in grey (a luminance-only run: see ``seen``).
        terms: More terms, after the total variation.
    """

    def __init__(
        self,
        targets: Targets,
        *,
        content_layers: Sequence[str] = (),
        style_layers: Sequence[str] = (),
        content_weight: float = 1.0,
        style_weight: float = 1e6,
        style_layer_weights: Sequence[float] | None = None,
        tv_weight: float = 0.0,
        style_loss: str = "gram",
        grey: bool = False,
        terms: Sequence[Term] = (),
    ) -> None:
        self.targets = targets
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)
        self.style_loss, self.grey = style_loss, grey
        self.terms = [*([Term("tv", tv_weight, tv_loss)] if tv_weight else []), *terms]
        layer_weights = style_layer_weights or [1.0] * len(self.style_layers)
        named = [(f"content/{name}", content_weight) for name in self.content_layers]
        named += [
            (f"style/{name}", style_weight * w)
            for name, w in zip(self.style_layers, layer_weights, strict=False)
        ]
        self._feature_names = [name for name, _ in named]
        self.names = [*self._feature_names, *(term.name for term in self.terms)]
        self._weights = [weight for _, weight in named] + [term.weight for term in self.terms]
        self._weights_on: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    @property
    def layers(self) -> list[str]:
        """Every VGG19 layer a term reads."""
        return [*self.content_layers, *self.style_layers]

    def seen(self, picture: Tensor) -> Tensor:
        """``picture`` as the losses see it."""
        if not self.grey:
            return picture
        # A luminance-only run sees its image through the orthogonal projection onto grey
        # (each pixel's channel mean). Its gradient is then grey too, so an image that starts
        # grey stays grey under every optimizer step, exactly, with no projection afterwards
        # that would leave L-BFGS's curvature pairs describing steps not taken.
        return picture.mean(dim=1, keepdim=True).expand_as(picture)

    def evaluate(self, vgg: VGGFeatures, picture: Tensor) -> Tensor:
        """The weighted terms of ``picture`` (in ``names`` order; their sum is the total loss),
        each layer's made as the layer is computed (see VGGFeatures.forward)."""
        seen = self.seen(picture)
        made: dict[str, Tensor] = {}
        vgg(seen, each=lambda name, maps: made.update(self.layer_terms(name, maps)), keep=False)
        return self.weigh(made, seen)

    def __call__(self, features: Mapping[str, Tensor], seen: Tensor) -> Tensor:
        """The weighted terms of a picture whose feature maps are ``features`` (every layer of
        ``layers``) and which the losses see as ``seen``."""
        made: dict[str, Tensor] = {}
        for name, maps in features.items():
            made.update(self.layer_terms(name, maps))
        return self.weigh(made, seen)

    def layer_terms(self, name: str, maps: Tensor) -> dict[str, Tensor]:
        """The unweighted terms that layer ``name``'s feature maps make."""
        terms = {}
        if name in self.content_layers:
            terms[f"content/{name}"] = content_loss(maps, self.targets.content[name])
        if name in self.style_layers:
            target = self.targets.style[name]
            if self.targets.masks is not None:  # regions painted separately (nst.numerics.regions)
                terms[f"style/{name}"] = guided_distance(
                    maps, target["regions"], self.targets.masks_at(maps), self.targets.shares
                )
            else:
                terms[f"style/{name}"] = distance(self.style_loss, maps, target)
        return terms

    def weigh(self, made: Mapping[str, Tensor], seen: Tensor) -> Tensor:
        """The terms ``made`` by layer_terms and those computed on ``seen``, weighted, in
        ``names`` order. (One stacked tensor rather than a sum of terms: at small sizes and on
        GPUs each extra operation in the graph is a measurable share of a step, forward and back.)"""
        values = [made[name] for name in self._feature_names] + [term.loss(seen) for term in self.terms]
        return torch.stack(values) * self._weights_at(seen.device)

    def _weights_at(self, device: torch.device) -> Tensor:
        # Made at first use, in the default dtype then (float64 in a 64-true run), as the
        # weighted terms' dtype follows it.
        key = (device, torch.get_default_dtype())
        if key not in self._weights_on:
            self._weights_on[key] = torch.tensor(self._weights, device=device)
        return self._weights_on[key]

    def losses(self, weighted: Tensor) -> dict[str, Tensor]:
        """``weighted`` (from weigh) as named losses: content, style, tv, total, style/<layer>
        and each further term's (the curves' names, without ``loss/``)."""
        parts = dict(zip(self.names, weighted.unbind(), strict=True))
        return summed(parts, weighted.sum(), weighted.new_zeros(()))

    @property
    def summary(self) -> tuple[str, ...]:
        """The losses a result reports: total, content, style, tv and each further term's."""
        return (*SUMMARY, *(term.name for term in self.terms if term.name != "tv"))


def summed(parts: Mapping[str, T], total: T, zero: T) -> dict[str, T]:
    """Weighted terms (``content/<layer>``, ``style/<layer>``, ``tv``, further terms) as the
    curves name them: content, style, tv, total, style/<layer> and the further terms; as
    tensors or as numbers."""
    content = sum((v for k, v in parts.items() if k.startswith("content/")), zero)
    per_layer = {k: v for k, v in parts.items() if k.startswith("style/")}
    style = sum(per_layer.values(), zero)
    further = {k: v for k, v in parts.items() if "/" not in k and k != "tv"}
    return {
        "content": content,
        "style": style,
        "tv": parts.get("tv", zero),
        "total": total,
        **per_layer,
        **further,
    }
