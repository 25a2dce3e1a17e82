"""Colour control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017): keep the content's colours after the run, or give the style
image the content's colours before it."""

from typing import Literal

import torch
from torch import Tensor

# RGB -> (luminance, two chroma channels). YIQ as in the paper; YCbCr (BT.601) as in JPEG.
_SPACES = {
    "yiq": torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]),
    "ycbcr": torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]),
}


def to_space(image: Tensor, space: str) -> Tensor:
    """[B, 3, H, W] RGB -> the same layout in ``space`` (channel 0 is luminance)."""
    return torch.einsum("ij,bjhw->bihw", _SPACES[space].to(image), image)


def from_space(image: Tensor, space: str) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_SPACES[space].double()).to(image), image)


def original_colours(result: Tensor, content: Tensor, space: Literal["yiq", "ycbcr"] = "yiq") -> Tensor:
    """The result's luminance with the content's chroma: the style's strokes, the photo's colours."""
    mixed = to_space(content.to(result), space)
    mixed[:, 0] = to_space(result, space)[:, 0]
    return from_space(mixed, space).clamp(0, 1)


def match_colours(style: Tensor, content: Tensor) -> Tensor:
    """The style image with the content's colour mean and covariance (a linear transfer: the
    style's pixel cloud is whitened, then coloured with the content's statistics)."""
    x = style[0].flatten(1).double()
    y = content[0].flatten(1).double().to(x.device)
    mean_x, mean_y = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=x.dtype, device=x.device) * 1e-8  # a flat image has a singular covariance
    cov_x, cov_y = torch.cov(x) + eye, torch.cov(y) + eye
    transfer = _sqrtm(cov_y) @ torch.linalg.inv(_sqrtm(cov_x))
    matched = transfer @ (x - mean_x) + mean_y
    return matched.reshape(style.shape).to(style).clamp(0, 1)


def luminance(image: Tensor, like: Tensor | None = None) -> Tensor:
    """The image's YIQ luminance as a grey RGB image; with ``like``, its mean and spread matched
    to ``like``'s luminance (so a dark painting does not darken the photo)."""
    y = to_space(image, "yiq")[:, :1]
    if like is not None:
        target = to_space(like.to(image), "yiq")[:, :1]
        y = (y - y.mean()) / y.std().clamp(min=1e-8) * target.std() + target.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def _sqrtm(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
