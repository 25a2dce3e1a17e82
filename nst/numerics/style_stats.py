"""What a style loss compares (``model.style_loss``): a statistic of a layer's feature maps,
computed once for the style image (the target), blended over several styles, and a distance
between the picture's statistic and the target.

- ``gram``: Gram matrices normalised by C·H·W, compared by mean squared error (Gatys et al.).
- ``mean_std``: each channel's mean and standard deviation (the statistics AdaIN transfers),
  compared by mean squared error.
- ``wasserstein``: the squared 2-Wasserstein distance between Gaussian fits of the features
  (means and covariances), per channel: |μ-μ'|² + tr Σ + tr Σ' - 2 tr (Σ'^½ Σ Σ'^½)^½, over C.
  The target's square root is taken once; the picture's trace term comes from the eigenvalues
  of one symmetric CxC matrix per layer and step.
- ``histogram``: the Gram loss plus Risser et al.'s (2017) histogram loss: each channel's
  values are remapped, rank for rank, onto the target's distribution, and the picture is pulled
  towards that remapping (mean squared error, the remapping held fixed).

Blending several styles averages their statistics with the blend's weights: Gram matrices,
means and standard deviations, means and covariances, and for histograms the quantile
functions (which makes the blend their 1-D Wasserstein barycentre).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.numerics.losses import full_precision, gram

KINDS = ("gram", "mean_std", "wasserstein", "histogram")
_EPS = 1e-8
_QUANTILES = 1024  # resolution of a stored target histogram (its quantile function)

Stat = dict[str, Tensor]


def _flat(features: Tensor) -> Tensor:
    """[B, C, H, W] as [B, C, H·W] in fp32 (statistics lose their small differences in bf16)."""
    b, c, h, w = features.shape
    return features.float().reshape(b, c, h * w)


def statistic(kind: str, features: Tensor) -> Stat:
    """The statistic ``kind`` of a style image's feature maps, as a target."""
    with full_precision(features):
        flat = _flat(features)
        if kind == "gram":
            return {"gram": gram(features)}
        if kind == "mean_std":
            return {"mean": flat.mean(-1), "std": (flat.var(-1, unbiased=False) + _EPS).sqrt()}
        if kind == "wasserstein":
            mean = flat.mean(-1)
            centred = flat - mean[..., None]
            return {"mean": mean, "cov": centred @ centred.transpose(1, 2) / flat.shape[-1]}
        if kind == "histogram":
            positions = torch.linspace(0, 1, _QUANTILES, device=flat.device, dtype=flat.dtype)
            return {
                "gram": gram(features),
                "quantiles": torch.quantile(flat, positions, dim=-1).permute(1, 2, 0),
            }
    raise ValueError(f"unknown style statistic {kind!r}")


def blend(kind: str, statistics: Sequence[Stat], weights: Sequence[float]) -> Stat:
    """The weighted mean of several styles' statistics (weights summing to 1)."""
    out = {key: sum(w * s[key] for w, s in zip(weights, statistics, strict=True)) for key in statistics[0]}
    if kind == "wasserstein":  # the square root the distance needs, taken once per target
        out["cov_sqrt"] = _sqrtm(out["cov"])
    return out


def distance(kind: str, features: Tensor, target: Stat) -> Tensor:
    """How far the picture's ``features`` are from the ``target`` statistic (a scalar, fp32)."""
    with full_precision(features):
        if kind == "gram":
            return F.mse_loss(gram(features), target["gram"])
        flat = _flat(features)
        if kind == "mean_std":
            mean, std = flat.mean(-1), (flat.var(-1, unbiased=False) + _EPS).sqrt()
            return F.mse_loss(mean, target["mean"]) + F.mse_loss(std, target["std"])
        if kind == "wasserstein":
            return _wasserstein(flat, target)
        if kind == "histogram":
            return F.mse_loss(gram(features), target["gram"]) + F.mse_loss(
                flat, _remapped(flat, target["quantiles"])
            )
    raise ValueError(f"unknown style statistic {kind!r}")


def _wasserstein(flat: Tensor, target: Stat) -> Tensor:
    channels, count = flat.shape[1], flat.shape[-1]
    mean = flat.mean(-1)
    centred = flat - mean[..., None]
    cov = centred @ centred.transpose(1, 2) / count
    root = target["cov_sqrt"]
    middle = root @ cov @ root
    eigenvalues = torch.linalg.eigvalsh((middle + middle.transpose(1, 2)) / 2)
    cross = eigenvalues.clamp_min(_EPS).sqrt().sum(-1)
    trace = cov.diagonal(dim1=1, dim2=2).sum(-1) + target["cov"].diagonal(dim1=1, dim2=2).sum(-1)
    w2 = (mean - target["mean"]).pow(2).sum(-1) + trace - 2 * cross
    return (w2 / channels).mean()


def _remapped(flat: Tensor, quantiles: Tensor) -> Tensor:
    """Each channel's values replaced, rank for rank, by the target distribution's (held fixed)."""
    with torch.no_grad():
        count = flat.shape[-1]
        positions = torch.linspace(0, quantiles.shape[-1] - 1, count, device=flat.device, dtype=flat.dtype)
        low = positions.floor().long().clamp(max=quantiles.shape[-1] - 1)
        high = (low + 1).clamp(max=quantiles.shape[-1] - 1)
        frac = positions - low
        values = quantiles[..., low] * (1 - frac) + quantiles[..., high] * frac  # the target at count ranks
        order = flat.argsort(dim=-1)
        remapped = torch.empty_like(flat)
        remapped.scatter_(-1, order, values.expand_as(flat).contiguous())
    return remapped


def _sqrtm(matrix: Tensor) -> Tensor:
    """The square root of symmetric positive semi-definite matrices."""
    eigenvalues, vectors = torch.linalg.eigh((matrix + matrix.transpose(-1, -2)) / 2)
    return vectors @ torch.diag_embed(eigenvalues.clamp_min(0).sqrt()) @ vectors.transpose(-1, -2)
