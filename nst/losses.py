"""Loss terms of Gatys et al. (2016), as pure functions on feature maps.

Conventions follow the torchvision-weight implementations of the paper: the Gram
matrix is normalised by C·H·W, content and style losses are mean squared errors,
so the paper's balance is content weight 1 against style weight 1e6.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def gram(features: Tensor) -> Tensor:
    """Gram matrix of a batch of feature maps: [B, C, H, W] -> [B, C, C], in fp32.

    Computed outside autocast because bf16 sums over H·W products lose the small
    differences between Gram entries that the style loss is made of.
    """
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(b, c, h * w)
        return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps, in fp32."""
    return F.mse_loss(features.float(), target.float())


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared error between the Gram matrix of ``features`` and a target Gram matrix."""
    return F.mse_loss(gram(features), target_gram)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: mean squared difference between vertically and horizontally adjacent pixels."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()
