"""Each picture's objective in each phase of a run: its targets, made with the run's network in
the run's precision, and the phase's weights (nst.numerics.objective)."""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from nst.numerics import reuse
from nst.numerics.objective import Objective, Term
from nst.numerics.targets import compute_targets
from nst.numerics.vgg import VGGFeatures
from nst.run.data import StyleTransferData
from nst.run.schedule import PhaseSettings


class Objectives:
    """Makes the objectives of a run's pictures. Targets are computed once per phase (and shared
    by the runs of one process that use the same network and images, nst.numerics.reuse), under
    the same autocast as the steps, and kept out of checkpoints (cheap to compute, large to store).

    Args:
        settings: The model's settings (weights, pooling, padding, style_loss, style_layer_weights).
        vgg: The run's network.
        content_layers, style_layers: The layers of the losses the images give.
        pictures: Each picture's images.
        device: Where the run steps.
        precision: The run's precision (Lightning's name for it) and its ``forward_context``.
        terms: Each picture's terms besides content, style and TV (see StyleTransfer.extra_terms).
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        vgg: VGGFeatures,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        pictures: Sequence[StyleTransferData],
        device: torch.device,
        precision: tuple[str, Callable[[], AbstractContextManager]],
        terms: Callable[[int], list[Term]],
    ) -> None:
        self.settings, self.vgg, self.pictures, self.device, self.terms = (
            settings,
            vgg,
            pictures,
            device,
            terms,
        )
        self.layers = {"content_layers": list(content_layers), "style_layers": list(style_layers)}
        self.precision, self.forward_context = precision
        h = settings
        self._network = (
            reuse.weights_identity(h["weights"]),
            h["pooling"],
            h["padding"],
            str(device),
            self.precision,
        )

    def of(self, index: int, phase: PhaseSettings) -> Objective:
        """Picture ``index``'s objective in ``phase``."""
        h, data = self.settings, self.pictures[index]
        images = data.at(phase.size)
        targets = compute_targets(
            self.features_of, images, *self.layers.values(), data.blend, self._network, h["style_loss"]
        )
        weights = {"content_weight": phase.content_weight, "style_weight": phase.style_weight}
        weights |= {"tv_weight": phase.tv_weight, "style_layer_weights": h["style_layer_weights"]}
        grey = data.colour_content is not None  # a luminance-only run (see Objective.seen)
        return Objective(
            targets, **self.layers, **weights, style_loss=h["style_loss"], grey=grey, terms=self.terms(index)
        )

    def features_of(self, image: Tensor, make: Callable[[str, Tensor], Any]) -> dict[str, Any]:
        """``make(layer, maps)`` for each layer's VGG feature maps of ``image`` as the targets
        are made: no gradients, the run's precision, each layer's as it is computed (at 2048 px
        the maps of all layers at once would be the largest memory of the run); a None from
        ``make`` is left out."""
        made: dict[str, Any] = {}

        def each(name: str, maps: Tensor) -> None:
            if (value := make(name, maps)) is not None:
                made[name] = value

        with torch.no_grad(), self.forward_context():
            self.vgg(image.to(self.device), each=each, keep=False)
        return made
