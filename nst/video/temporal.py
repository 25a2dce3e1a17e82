"""The temporal term of a video frame (Ruder, Dosovitskiy & Brox 2016): the frame's squared
difference to the earlier stylised frames warped into it by the optical flow, each pixel weighted
by whether its flow can be trusted, and tied only to the nearest earlier frame it can trust
(long-term consistency). It enters the frame's objective as a Term (nst.numerics.objective)."""

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from nst.numerics.colour import luminance
from nst.video.flow import closest_trusted, warp


class Temporal:
    """The unweighted temporal loss of a picture ([1, 3, H, W]) against earlier frames.

    Args:
        warped: The earlier stylised frames warped into this one, [J, 3, H, W] in [0, 1].
        weights: Each one's per-pixel weight, [J, 1, H, W] (0 where its flow cannot be trusted).

    Normalised as the content loss is, by the number of values (3·H·W), so that its weight
    (model.temporal_weight) does not depend on the size.
    """

    def __init__(self, warped: Tensor, weights: Tensor) -> None:
        self.warped, self.weights = warped, weights
        self._on: tuple[torch.device, torch.dtype] | None = None

    def __call__(self, picture: Tensor) -> Tensor:
        if self._on != (picture.device, picture.dtype):
            self.warped = self.warped.to(picture.device, picture.dtype)
            self.weights = self.weights.to(picture.device, picture.dtype)
            self._on = (picture.device, picture.dtype)
        difference = (picture[:1] - self.warped) ** 2 * self.weights
        return difference.sum() / picture[0].numel()


def tie(
    earlier: Mapping[int, np.ndarray],
    flows: Mapping[int, tuple[np.ndarray, np.ndarray]],
    grey: bool = False,
) -> tuple[Tensor, Temporal] | None:
    """A frame's start and temporal term from the stylised frames ``earlier`` ({offset: [H, W, 3]
    uint8}) and its ``flows`` back to them ({offset: (backward flow, reliability)}): the start is
    the nearest earlier frame warped into this one (Ruder et al.'s init), [1, 3, H, W]. ``grey``:
    the run paints luminance only, so the term compares luminance. None for a first frame."""
    offsets = sorted(offset for offset in flows if offset in earlier)
    if not offsets:
        return None
    warped = []
    for offset in offsets:
        frame = torch.from_numpy(np.array(earlier[offset])).permute(2, 0, 1)[None].float() / 255
        image = warp(frame, torch.from_numpy(flows[offset][0]))
        warped.append(luminance(image) if grey else image)
    weights = closest_trusted([flows[offset][1] for offset in offsets])
    stacked = torch.cat(warped)
    term = Temporal(stacked, torch.from_numpy(np.stack(weights))[:, None])
    return warped[0].clamp(0, 1), term
