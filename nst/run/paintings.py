"""The pictures a run paints, stepped together: one VGG pass for all of them at each step, each
judged by its own objective and moved by its own optimizer, so that each comes out as it would
alone. A run of one picture is the case of one. Plain PyTorch; nst.run.module drives it."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from nst.errors import NSTError
from nst.numerics.vgg import VGGFeatures
from nst.run.imagewise import ImageWise
from nst.run.painting import Painting


class Paintings(nn.ModuleList):
    """Paintings (nst.run.painting) stepped together.

    Args:
        paintings: One per picture, in order.
        names: Each picture's name, put in front of its errors where there are several.
    """

    def __init__(self, paintings: Sequence[Painting] = (), names: Sequence[str | None] = ()) -> None:
        super().__init__(paintings)
        self.names = list(names) or [None] * len(paintings)
        shapes = {tuple(painting.image.shape) for painting in paintings}
        if len(shapes) > 1:
            raise NSTError(f"pictures of different sizes cannot be optimised together: {sorted(shapes)}")

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer Lightning steps: the painting's own, or with several pictures one that
        steps each picture's own optimizer (see nst.run.imagewise)."""
        optimizers = [painting.make_optimizer() for painting in self]
        return optimizers[0] if len(optimizers) == 1 else ImageWise(optimizers)

    def before_step(self) -> list[Tensor | None]:
        return [painting.before_step() for painting in self]

    def after_backward(self) -> None:
        for painting in self:
            painting.after_backward()

    def after_step(self, before: list[Tensor | None]) -> None:
        for painting, image in zip(self, before, strict=True):
            painting.after_step(image)

    def minimised(self, vgg: VGGFeatures, keep_losses_at: int | None) -> Tensor:
        """What the optimizers minimise at the current images: each painting's total loss in its
        own units (see Painting.minimised), summed; with ``keep_losses_at`` (the step), each
        painting also keeps its losses on the host."""
        terms = self.weighted_terms(vgg)
        if len(terms) == 1:
            return self[0].minimised(terms[0], keep_losses_at)
        losses = []
        for i, (painting, weighted) in enumerate(zip(self, terms, strict=True)):
            with self.named(i):
                losses.append(painting.minimised(weighted, keep_losses_at))
        return sum(losses)

    def weighted_terms(self, vgg: VGGFeatures) -> list[Tensor]:
        """Each painting's weighted terms, from one VGG pass over all of them; each layer's
        terms are made as the layer is computed (see VGGFeatures.forward)."""
        if len(self) == 1:
            return [self[0].objective.evaluate(vgg, self[0].image)]
        objectives = [painting.objective for painting in self]
        seen = [objective.seen(painting.image) for objective, painting in zip(objectives, self, strict=True)]
        made: list[dict[str, Tensor]] = [{} for _ in objectives]

        def each(name: str, maps: Tensor) -> None:
            for i, objective in enumerate(objectives):
                made[i].update(objective.layer_terms(name, maps[i : i + 1]))

        vgg(torch.cat(seen), each=each, keep=False)
        return [o.weigh(m, s) for o, m, s in zip(objectives, made, seen, strict=True)]

    def check_finite(self, step: int, index: int | None = None, value: Tensor | None = None) -> None:
        """Stop a diverged run with a reason (see Painting.check_finite)."""
        for i in range(len(self)) if index is None else [index]:
            with self.named(i):
                self[i].check_finite(step, value)

    @contextmanager
    def named(self, index: int) -> Iterator[None]:
        """Puts picture ``index``'s name in front of a one-line error raised within, where
        there are several pictures."""
        try:
            yield
        except NSTError as error:
            if len(self) == 1 or self.names[index] is None:
                raise
            raise NSTError(f"{self.names[index]}: {error}") from error

    # -- checkpoints ------------------------------------------------------------------------
    # Each picture's part of a checkpoint is what a run of its own would have saved: with several
    # pictures the module saves the parts under ``nst_pictures`` and nst.run.checkpoint_files
    # writes each, with the trainer's state, to its picture's own file.

    def save_parts(
        self, checkpoint: dict[str, Any], settings: dict[str, Any], images: Sequence[dict[str, Any]]
    ) -> None:
        """Put each painting's part into ``checkpoint`` (Lightning's, as it saves it);
        ``settings`` are the model's, ``images`` each picture's datamodule settings."""
        parts = [
            {"state_dict": {"image": painting.image.detach()}, **painting.checkpoint_state()}
            for painting in self
        ]
        if len(parts) == 1:  # the layout of a run's checkpoint, which Lightning wrote around it
            checkpoint.update(parts[0])
            return
        del checkpoint["state_dict"]
        optimizers = checkpoint.pop("optimizer_states")[0]["pictures"]
        for part, optimizer, data in zip(parts, optimizers, images, strict=True):
            part |= {
                "optimizer_states": [optimizer],
                "hparams_name": "kwargs",
                "hyper_parameters": settings,
                "datamodule_hparams_name": "kwargs",
                "datamodule_hyper_parameters": data,
            }
        checkpoint["nst_pictures"] = parts

    def load_parts(
        self,
        checkpoint: dict[str, Any],
        load: Callable[[Painting, dict[str, Any], int], None],
        unpack: Callable[[dict[str, Any]], Any],
        prefix: str,
    ) -> None:
        """Continue from ``checkpoint``: ``load(painting, part, index)`` takes each picture's
        part (outside a run, paintings are made in the shape of the checkpoint's images), and the
        images and optimizer states are left where Lightning loads them from (the images under
        ``prefix``, this object's name in the module). ``unpack`` readies each part's
        optimizer state."""
        parts = checkpoint.get("nst_pictures") or [checkpoint]
        saved = [part.get("state_dict", {}).get("image") for part in parts]
        if any(image is None for image in saved):
            raise NSTError("the checkpoint holds no image: it was not written by nst")
        for part in parts:
            unpack(part)
        if not len(self):  # loading outside a run (exporting its image): no settings to check
            self.extend(Painting(torch.empty_like(image)) for image in saved)
            self.names = [None] * len(saved)
        else:
            for i, (painting, part) in enumerate(zip(self, parts, strict=True)):
                load(painting, part, i)
        checkpoint["state_dict"] = {f"{prefix}{i}.image": image for i, image in enumerate(saved)}
        if len(parts) > 1:
            checkpoint["optimizer_states"] = [{"pictures": [part["optimizer_states"][0] for part in parts]}]
