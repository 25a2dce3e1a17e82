"""Autograd for a frozen network: keep only what the input's gradient needs.

PyTorch's autograd keeps what every gradient could need: a convolution keeps its input (for
the weights' gradient), a ReLU its output, a max pooling its input and its indices. VGG19's
weights are frozen here and only the image's gradient is wanted, for which a convolution
needs its weights alone, a ReLU where its output is positive (one byte a value instead of
four) and a max pooling only its indices. These are the same backward kernels PyTorch runs,
given the same gradients and weights, so the numbers are the same; what is kept for a 64-channel
layer drops from two float maps to two byte maps.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        # Under autocast the convolution runs in the autocast type: its backward must too.
        out = F.conv2d(x, weight, bias, 1, padding)
        ctx.save_for_backward(weight)
        ctx.dtype, ctx.padding = x.dtype, padding
        ctx.out_dtype = out.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (weight,) = ctx.saved_tensors
        grad = grad.to(ctx.out_dtype)
        # The convolution's gradient with respect to its input is the transposed convolution
        # of the gradient (PyTorch's backward kernel computes the same, reading the input's size).
        result = F.conv_transpose2d(grad, weight.to(grad.dtype), padding=ctx.padding)
        return result.to(ctx.dtype), None, None, None


class _ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, inplace: bool) -> Tensor:
        out = torch.relu_(x) if inplace else torch.relu(x)
        ctx.save_for_backward(out > 0)
        if inplace:
            ctx.mark_dirty(x)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (positive,) = ctx.saved_tensors
        return grad * positive, None


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        out, indices = F.max_pool2d(x, 2, 2, return_indices=True)
        ctx.save_for_backward(indices)
        ctx.shape = x.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor]:
        (indices,) = ctx.saved_tensors
        like = _stand_in(grad, ctx.shape)
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad, like, [2, 2], [2, 2], [0, 0], [1, 1], False, indices
        )


class _AvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return F.avg_pool2d(x, 2, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor]:
        like = _stand_in(grad, ctx.shape)
        return torch.ops.aten.avg_pool2d_backward(grad, like, [2, 2], [2, 2], [0, 0], False, True, None)


def _stand_in(grad: Tensor, shape: torch.Size) -> Tensor:
    """A tensor of ``shape`` for backward kernels that read only their input's size: a
    broadcast of one value, which occupies no memory."""
    return grad.new_empty(1).expand(shape)


def apply(layer: nn.Module, x: Tensor, inplace: bool = False) -> Tensor:
    """``layer(x)`` (a VGG19 layer: a 3x3 convolution, a ReLU or a 2x2 pooling) keeping only what the
    gradient with respect to ``x`` needs."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":  # the pad's backward needs no values either
            x = F.pad(x, (1, 1, 1, 1), mode=layer.padding_mode)
            return _Conv.apply(x, layer.weight, layer.bias, (0, 0))
        return _Conv.apply(x, layer.weight, layer.bias, tuple(layer.padding))
    if isinstance(layer, nn.ReLU):
        return _ReLU.apply(x, inplace)
    if isinstance(layer, nn.MaxPool2d):
        return _MaxPool.apply(x)
    if isinstance(layer, nn.AvgPool2d):
        return _AvgPool.apply(x)
    return layer(x)
