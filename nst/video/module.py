"""A video frame's LightningModule: a picture painted as every other, whose objective has one
more term, the temporal one (nst.video.temporal), and which may start from the frame before,
warped. Nothing else in the run changes: the frame's run is a run like any other."""

from typing import Any

from torch import Tensor

from nst.errors import NSTError
from nst.numerics.objective import Term
from nst.numerics.targets import Images
from nst.run.module import StyleTransfer
from nst.video.temporal import Temporal


class VideoStyleTransfer(StyleTransfer):
    """StyleTransfer with the temporal term of Ruder et al. (2016).

    Args:
        temporal_weight: Weight of the temporal term: the squared difference (a mean over
            pixels and channels) between the frame and the earlier stylised frames warped into
            it, where their flow can be trusted. 0 turns it off (each frame on its own).
    """

    def __init__(self, temporal_weight: float = 200.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not temporal_weight >= 0:  # (NaN too)
            raise NSTError(
                f"model.temporal_weight must be 0 or more (0: each frame on its own), got {temporal_weight}"
            )
        self.temporal: Temporal | None = None  # this frame's, set by nst.video.run before fit
        self.start: Tensor | None = None  # where the frame starts, if not at model.init

    def extra_terms(self, index: int) -> list[Term]:
        weight = self.hparams.temporal_weight
        if self.temporal is None or not weight:
            return []
        return [Term("temporal", weight, self.temporal)]

    def loss_names(self) -> list[str]:
        names = super().loss_names()
        # Every frame's curves have the same names, the first frame's too (a flat 0 there).
        return names if "loss/temporal" in names else [*names, "loss/temporal"]

    def initial(self, images: Images) -> Tensor:
        if self.start is not None and tuple(self.start.shape[-2:]) == images.shape:
            return self.start.clone()
        return super().initial(images)
