"""Optical flow between frames and where it can be trusted (Ruder, Dosovitskiy & Brox 2016).

Flow is OpenCV's DIS (Kroeger et al. 2016): no model weights, tens of milliseconds a frame on a
CPU. A flow field here is [H, W, 2] float32 in pixels, (dx, dy): ``flow_between(a, b)`` maps each
pixel x of ``a`` to where it is in ``b``, so ``b`` sampled at x + flow(x) looks like ``a``.
"""

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

PRESETS = ("ultrafast", "fast", "medium")


def flow_between(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """DIS flow from grey frame ``a`` to grey frame ``b`` (each [H, W] uint8): [H, W, 2] float32."""
    import cv2  # imported here: reading a config or a checkpoint should not load OpenCV

    code = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }[preset]
    dis = cv2.DISOpticalFlow_create(code)
    return dis.calc(a, b, None).astype(np.float32)


def grey(frame: np.ndarray) -> np.ndarray:
    """An RGB frame ([H, W, 3] uint8) as the grey image flow is computed on (ITU-R BT.601)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(frame.astype(np.float32) @ weights + 0.5, 0, 255).astype(np.uint8)


def sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` ([H, W] or [H, W, C]) read at x + flow(x), bilinearly, edges repeated outside."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    tensor = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    out = warp(tensor, torch.from_numpy(flow))[0]
    return out[0].numpy() if image.ndim == 2 else out.permute(1, 2, 0).numpy()


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` ([B, C, H, W]) read at x + flow(x) (flow [H, W, 2] in pixels), bilinearly; a
    position outside the frame takes the nearest edge pixel."""
    height, width = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    x = (xs + flow[..., 0].float()) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[..., 1].float()) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1)[None].expand(image.shape[0], -1, -1, -1).to(image.device)
    warped = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped.to(image.dtype)


def reliable(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Where the flow into a frame can be trusted: [H, W] float32, 1 or 0, in the later frame.

    ``forward`` is the flow from the earlier frame to the later one, ``backward`` the flow from
    the later frame to the earlier one. A pixel is 0 where it was disoccluded (or occluded)
    or lies on a motion boundary, by Ruder et al.'s rules:

    - with w̃(x) = forward(x + backward(x)), disoccluded where
      |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5 (ŵ = backward): the two flows do not undo each other;
    - motion boundary where |∇u|² + |∇v|² > 0.01 |ŵ|² + 0.002, (u, v) = ŵ;
    - and where x + ŵ(x) lies outside the earlier frame: what is warped there is its edge
      repeated, which the round trip above cannot tell from a true match (a pan's new strip).
    """
    there = sample(forward, backward)  # the forward flow of the point each pixel came from
    round_trip = np.sum((there + backward) ** 2, axis=-1)
    lengths = np.sum(there**2, axis=-1) + np.sum(backward**2, axis=-1)
    disoccluded = round_trip > 0.01 * lengths + 0.5
    gradient = sum(np.sum(np.stack(np.gradient(backward[..., c]), axis=-1) ** 2, axis=-1) for c in (0, 1))
    boundary = gradient > 0.01 * np.sum(backward**2, axis=-1) + 0.002
    height, width = backward.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def closest_trusted(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Long-term weights (Ruder et al.'s c_long): ``masks`` are the reliability of the flows
    from frames further and further back (the nearest first); frame j's weight is
    max(c_j - sum of the nearer c_k, 0), so each pixel keeps the weight of the nearest frame whose
    flow it can trust, and 0 for the others."""
    nearer = np.zeros_like(masks[0])
    weights = []
    for mask in masks:
        weights.append(np.maximum(mask - nearer, 0))
        nearer = nearer + mask
    return weights
