"""A trained style network as a painter, and its file, ``network.pt``::

    network = nst.Network.load("logs/train/version_0/network.pt")
    painting = network.paint(photo)   # a PIL image, or a [3, H, W] / [N, 3, H, W] tensor in [0, 1]

The file holds the network's settings (width, residual blocks) with its weights, and what it
was trained on, so painting needs no config. It is read with ``weights_only`` (no code runs on
loading), and anything else given as a network (a Gatys run's checkpoint, a training run's
checkpoint, any other file) is refused in one line that says which file to give.
"""

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, overload

import torch
from PIL import Image
from torch import Tensor

from nst.errors import NSTError, brief
from nst.files import atomic_write
from nst.images import from_memory, to_pil, to_tensor
from nst.train.architecture import TransformNet

FORMAT = "nst-network"  # the file's mark; VERSION counts changes to what it holds
VERSION = 1
FILE = "network.pt"  # in a training run's directory
MIN_SIDE = 16  # smaller sides are shorter than the network's two downsamplings and 9×9 kernels


class Network:
    """A trained style network: a photo in, the painting out, in one pass (no optimisation).

    ``Network.load("network.pt")`` reads the file nst train writes; ``paint`` (or calling the
    network) paints a PIL image or a tensor. The photo can be any size of at least
    ``MIN_SIDE`` px a side (odd sides too): the painting has the photo's size.

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
        """Where the network's weights are, and where its paintings come out."""
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> "Network":
        """Move the network to ``device`` (in place); returns the network."""
        device = torch.device(device)
        # Convolutions on CUDA run fastest on channels-last tensors (cuDNN's NHWC kernels);
        # elsewhere the default layout is the fast one.
        layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.net.to(device, memory_format=layout)
        return self

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Network":
        """The network in ``path`` (a ``network.pt`` that nst train wrote), on ``device``.

        Raises NSTError, in one line that names the file to give, for anything else: a Gatys
        run's checkpoint, a training run's ``last.ckpt``, a file that is not a network."""
        held = read_network_file(path)
        net = TransformNet(**held["architecture"])
        net.load_state_dict(held["state_dict"])
        return cls(net, held.get("about")).to(device)

    def save(self, path: str | Path) -> None:
        """Write the network file (weights, shape settings and ``about``) whole, or not at all."""
        held = {
            "format": FORMAT,
            "version": VERSION,
            "architecture": self.architecture,
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            "about": self.about,
        }
        with atomic_write(path) as (file, _):
            torch.save(held, file)

    @overload
    def paint(self, photo: Image.Image) -> Image.Image: ...
    @overload
    def paint(self, photo: Tensor) -> Tensor: ...

    @torch.inference_mode()
    def paint(self, photo: Image.Image | Tensor) -> Image.Image | Tensor:
        """``photo`` painted, at its own size.

        Args:
            photo: A PIL image (any mode; turned upright by its EXIF orientation and
                converted to sRGB by its ICC profile, as nst reads a photo file), or a float
                tensor in [0, 1], RGB, [3, H, W] or a batch [N, 3, H, W], on any device. Each
                picture of a batch is painted as it would be alone (the network normalises
                each picture on its own).

        Returns:
            A PIL image (RGB, 8 bit) for a PIL image; for a tensor, a float32 tensor of the same
            shape in [0, 1] on the network's device.

        Raises:
            NSTError: for a side under ``MIN_SIDE`` px, or anything but the inputs above.
        """
        if isinstance(photo, Image.Image):
            return to_pil(self._paint(to_tensor(from_memory(photo, "photo")))[0])
        if (
            not isinstance(photo, Tensor)
            or photo.dim() not in (3, 4)
            or photo.shape[-3] != 3
            or not photo.is_floating_point()
        ):
            got = f"{photo.dtype} {list(photo.shape)}" if isinstance(photo, Tensor) else type(photo).__name__
            raise NSTError(
                "a network paints a PIL image or a float RGB tensor [3, H, W] or [N, 3, H, W] in [0, 1]; "
                f"got {got}"
            )
        painted = self._paint(photo if photo.dim() == 4 else photo[None])
        return painted if photo.dim() == 4 else painted[0]

    @overload
    def __call__(self, photo: Image.Image) -> Image.Image: ...
    @overload
    def __call__(self, photo: Tensor) -> Tensor: ...

    def __call__(self, photo: Image.Image | Tensor) -> Image.Image | Tensor:
        """The same as :meth:`paint`."""
        return self.paint(photo)

    def _paint(self, photos: Tensor) -> Tensor:
        check_side(photos.shape[-2:])
        weight = next(self.net.parameters())
        photos = photos.to(weight.device, weight.dtype)
        if weight.device.type == "cuda":  # the layout `to` gave the weights
            photos = photos.contiguous(memory_format=torch.channels_last)
        return self.net(photos).float().contiguous()


def architecture_of(net: TransformNet) -> dict[str, int]:
    return {"width": net.down[0][1].out_channels, "blocks": len(net.residual)}


def check_side(size: Any, source: Any = None) -> None:
    """Refuse a picture with a side under ``MIN_SIDE``, in one line (``source``, where given,
    names it first). ``size`` ends in (height, width), as a tensor's shape does."""
    height, width = size[-2], size[-1]
    if min(height, width) < MIN_SIDE:
        of = f"{source}: " if source is not None else ""
        raise NSTError(
            f"{of}a picture of {width}×{height} px is too small for a style network; "
            f"give one at least {MIN_SIDE} px on each side"
        )


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (what ``nst export --format torchscript`` and
    torch.jit.save write): a zip with ``<top>/constants.pkl`` or ``<top>/code/`` inside, which
    a file torch.save wrote never holds. Read from the zip's directory only."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    for name in names:
        _, _, inner = name.partition("/")
        if inner == "constants.pkl" or inner.startswith("code/"):
            return True
    return False


def read_network_file(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """What a ``network.pt`` holds; one line naming the fix for anything else.

    With ``mmap``, the weights are mapped from the file rather than read (they are read when
    touched): what the file says of itself (``about``) comes at little cost."""
    path = Path(path)
    if path.is_dir():
        inside = f"{path / FILE}" if (path / FILE).is_file() else f"the {FILE} of an nst train run"
        raise NSTError(f"network {path} is a folder; give {inside}")
    if not path.is_file():
        raise NSTError(f"network {path} does not exist; give the network.pt of an nst train run")
    if is_torchscript(path):  # before torch.load, which warns about such a file in many lines
        raise NSTError(
            f"{path} is a TorchScript export of a network; give the network.pt it was exported from "
            "(or load it with torch.jit.load)"
        )
    try:
        held = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
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
