"""A trained style network as a painter, and its file, ``network.pt``::

    paint = nst.Network.load("logs/train/version_0/network.pt")
    picture = paint(photo)          # a PIL image, or a [3, H, W] / [N, 3, H, W] tensor in [0, 1]

The file holds the network's settings (width, residual blocks) with its weights, and what it
was trained on, so painting needs no config. It is read with ``weights_only`` (no code runs on
loading), and anything else given as a network (a Gatys run's checkpoint, a training run's
checkpoint, any other file) is refused in one line that says which file to give.
"""

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst.errors import NSTError, brief
from nst.files import atomic_write
from nst.images import to_pil, to_tensor
from nst.train.architecture import TransformNet

FORMAT = "nst-network"  # the file's mark; VERSION counts changes to what it holds
VERSION = 1
FILE = "network.pt"  # in a training run's directory
MIN_SIDE = 16  # smaller sides are shorter than the network's two downsamplings and 9×9 kernels


class Network:
    """A trained style network: call it on a photo to paint it.

    Args:
        net: The image transformation network (nst.train.architecture.TransformNet).
        about: What it was trained on and how (the training settings, the style's name, the
            steps taken), as the file keeps it.
    """

    def __init__(self, net: TransformNet, about: Mapping[str, Any] | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.about = dict(about or {})

    @property
    def architecture(self) -> dict[str, int]:
        """The network's shape settings, as TransformNet takes them."""
        return architecture_of(self.net)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> "Network":
        self.net.to(device)
        return self

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Network":
        """The network in ``path`` (a ``network.pt`` that nst train wrote), on ``device``."""
        held = read_network_file(path)
        net = TransformNet(**held["architecture"])
        net.load_state_dict(held["state_dict"])
        return cls(net, held.get("about")).to(device)

    def save(self, path: str | Path) -> None:
        """Write the network file whole, or not at all."""
        held = {
            "format": FORMAT,
            "version": VERSION,
            "architecture": self.architecture,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "about": self.about,
        }
        with atomic_write(path) as (file, _):
            torch.save(held, file)

    @torch.inference_mode()
    def paint(self, photos: Tensor) -> Tensor:
        """``photos`` [N, 3, H, W] in [0, 1] (any device) painted, on the network's device.
        float32 in, float32 out; the network's own dtype inside."""
        check_side(photos.shape[-2:])
        dtype = next(self.net.parameters()).dtype
        return self.net(photos.to(self.device, dtype)).float()

    def __call__(self, photo: Image.Image | Tensor) -> Image.Image | Tensor:
        """``photo`` painted: a PIL image gives a PIL image, a tensor ([3, H, W] or [N, 3, H, W]
        in [0, 1]) a tensor of the same shape, on the network's device."""
        if isinstance(photo, Image.Image):
            return to_pil(self.paint(to_tensor(photo.convert("RGB")))[0].cpu())
        if not isinstance(photo, Tensor) or photo.dim() not in (3, 4) or photo.shape[-3] != 3:
            raise NSTError(
                "a network paints a PIL image or an RGB tensor [3, H, W] or [N, 3, H, W] in [0, 1]; "
                f"got {type(photo).__name__}{list(photo.shape) if isinstance(photo, Tensor) else ''}"
            )
        painted = self.paint(photo if photo.dim() == 4 else photo[None])
        return painted if photo.dim() == 4 else painted[0]


def architecture_of(net: TransformNet) -> dict[str, int]:
    return {"width": net.down[0][1].out_channels, "blocks": len(net.residual)}


def check_side(size: Any) -> None:
    if min(size) < MIN_SIDE:
        raise NSTError(
            f"a picture of {size[-1]}×{size[-2]} px is too small for a style network; "
            f"give one at least {MIN_SIDE} px on each side"
        )


def read_network_file(path: str | Path) -> dict[str, Any]:
    """What a ``network.pt`` holds; one line naming the fix for anything else."""
    path = Path(path)
    if not path.is_file():
        raise NSTError(f"network {path} does not exist; give the network.pt of an nst train run")
    try:
        held = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        why = "not a file torch.save wrote" if not zipfile.is_zipfile(path) else brief(error)
        raise NSTError(
            f"{path} is not a style network ({why}); give the network.pt of an nst train run"
        ) from error
    if isinstance(held, dict) and held.get("format") == FORMAT:
        if held.get("version", 0) > VERSION:
            raise NSTError(
                f"{path} was written by a newer nst (network file version {held['version']}); update nst"
            )
        return held
    if isinstance(held, dict) and "pytorch-lightning_version" in held:
        kind = "a training run's checkpoint" if _is_training(held) else "the checkpoint of a picture's run"
        fix = (
            "give the network.pt beside its checkpoints folder"
            if _is_training(held)
            else "export its picture with nst export CHECKPOINT OUT.png, or give the network.pt of an nst train run"
        )
        raise NSTError(f"{path} is {kind}, not a style network; {fix}")
    raise NSTError(f"{path} is not a style network; give the network.pt of an nst train run")


def _is_training(checkpoint: dict[str, Any]) -> bool:
    return any(key.startswith("net.") for key in checkpoint.get("state_dict", {}))
