"""Loss terms of Gatys et al. (2016), as pure functions on feature maps.

Conventions follow the torchvision-weight implementations of the paper: the Gram
matrix is normalised by C·H·W, content and style losses are mean squared errors,
so the paper's balance is content weight 1 against style weight 1e6.
"""

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


def full_precision(features: Tensor) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``features``' device, where it is on (nothing to do on the meta
    device, where nst.numerics.memory rehearses a step)."""
    kind = features.device.type
    if kind == "meta" or not torch.is_autocast_enabled(kind):
        return contextlib.nullcontext()
    return torch.autocast(kind, enabled=False)


def gram(features: Tensor) -> Tensor:
    """Gram matrix of a batch of feature maps: [B, C, H, W] -> [B, C, C], in fp32.

    Computed outside autocast because bf16 sums over H·W products lose the small
    differences between Gram entries that the style loss is made of.
    """
    b, c, h, w = features.shape
    with full_precision(features):
        # A view in the NCHW layout and in channels-last alike (there its channels run fastest).
        flat = features.float().reshape(b, c, h * w)
        return _Gram.apply(flat, 1 / (c * h * w))


class _Gram(torch.autograd.Function):
    """F·Fᵀ·scale, whose backward makes one map of F's size, (G + Gᵀ)·F·scale, where autograd's
    matmul makes three (a gradient for each side of the product, then their sum): at 2048 px
    the first layer's are 0.8 GB each, and this is where a step's memory peaks. The scale is
    applied inside the matrix products (their alpha and beta), not as a pass over G or F of its
    own: on a deep layer of a small picture G is the largest tensor of the loss."""

    @staticmethod
    def forward(ctx: Any, flat: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(flat)
        ctx.scale = scale
        return torch.baddbmm(flat.new_empty(()), flat, flat.transpose(1, 2), beta=0, alpha=scale)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (flat,) = ctx.saved_tensors
        scale = ctx.scale
        # Channels-last maps: the gradient is made as its transpose, so that it comes out in
        # their layout, as the convolution before wants it; made as below, it would be NCHW, and
        # copied there (at 512 px ~0.1 GB more at the step's peak, bench/memory.py). Either way
        # the numbers are (G + Gᵀ)·F·scale; only the memory order of the result differs.
        rows = flat.stride(1) == 1
        f = flat.transpose(1, 2)
        channels, positions = flat.shape[1:]
        if positions < channels:
            # A map of fewer positions than channels (the deep layers of a small picture) is
            # smaller than G: two products with it, in the shapes autograd's own backward uses,
            # cost less than the sum G + Gᵀ (~0.3 ms less a step at 32 px on a CPU).
            if rows:
                first = torch.bmm(f, grad.transpose(1, 2))
                return torch.baddbmm(first, f, grad, beta=scale, alpha=scale).transpose(1, 2), None
            first = torch.bmm(grad, flat)
            return torch.baddbmm(first, grad.transpose(1, 2), flat, beta=scale, alpha=scale), None
        both = grad + grad.transpose(1, 2)
        if rows:
            return torch.baddbmm(flat.new_empty(()), f, both, beta=0, alpha=scale).transpose(1, 2), None
        return torch.baddbmm(flat.new_empty(()), both, flat, beta=0, alpha=scale), None


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
