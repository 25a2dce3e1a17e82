"""Where VGG19's weights come from: ImageNet (torchvision's cache), a local file, or seeded random."""

import http.client
import os
import urllib.error
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import VGG19_Weights

from nst.download import Unreachable, is_unreachable
from nst.errors import NSTError, brief


class MissingLayers(NSTError):
    """A weights file without some of the layers asked for: one holding only the first layers
    is enough for a network cut above them (nst.numerics.reuse asks again for fewer)."""


RANDOM_SEED = 0  # "random" always means the same network, so runs stay comparable


def imagenet_cache_file() -> Path:
    """Where torchvision keeps the ImageNet VGG19 file: ``$TORCH_HOME/hub/checkpoints/``."""
    url = VGG19_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def check_weights_option(weights: str) -> None:
    """Refuse a ``model.weights`` value that is neither a keyword nor looks like a file path."""
    if weights not in ("imagenet", "random") and not _is_path(weights):
        raise NSTError(f"unknown model.weights {weights!r}: use imagenet, random, or a path to a .pth file")


def _is_path(weights: str) -> bool:
    return weights.endswith((".pth", ".pt")) or os.sep in weights or Path(weights).exists()


def load_weights(features: nn.Sequential, weights: str) -> nn.Sequential:
    """Materialise a (meta-device) feature stack on the CPU with the chosen weights."""
    check_weights_option(weights)
    features = features.to_empty(device="cpu")
    if weights == "random":
        _init_random(features)
    elif weights == "imagenet":
        _load_into(features, _imagenet_state_dict(), "the ImageNet VGG19 file")
    else:
        _load_into(features, _read_state_dict(Path(weights)), weights)
    return features


def _init_random(features: nn.Sequential) -> None:
    # torchvision's VGG initialisation, drawn layer by layer from a private generator:
    # a layer's weights do not depend on how deep the stack is cut, nor on global RNG state.
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            nn.init.zeros_(layer.bias)


def fetch_imagenet() -> Path:
    """The ImageNet VGG19 file in torchvision's cache, downloaded into it first if it is not
    there (as torchvision's own ``VGG19_Weights.get_state_dict`` would, with its progress bar)."""
    cached = imagenet_cache_file()
    if cached.is_file():
        return cached
    url = VGG19_Weights.IMAGENET1K_V1.url
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NSTError(
            f"cannot write torchvision's cache {cached.parent} ({error.strerror or error}); "
            "set TORCH_HOME to a writable directory"
        ) from error
    print(f'Downloading: "{url}" to {cached}')  # on stdout, as torch.hub says it
    try:
        # Looked up here, not imported: the tests replace it to stand for a machine offline.
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    except Exception as error:
        reason = getattr(error, "reason", None) or brief(error)
        message = (
            f"cannot download the ImageNet VGG19 weights {url} ({reason}); "
            f"{imagenet_offline_fix()}; {TRY_RANDOM}"
        )
        if is_unreachable(error):
            raise Unreachable(message, reason) from error
        if isinstance(error, urllib.error.URLError | http.client.HTTPException):
            raise NSTError(message) from error
        raise
    return cached


def imagenet_offline_fix() -> str:
    """What to do without the network: where the file goes, or what to pass instead."""
    cached = imagenet_cache_file()
    return f"put {cached.name} into {cached.parent} (or pass --model.weights /path/to/{cached.name})"


TRY_RANDOM = "--model.weights random tries the machinery with a random network"


def _imagenet_state_dict() -> dict[str, Tensor]:
    cached = fetch_imagenet()
    try:
        return torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean the same here
        raise NSTError(
            f"cannot read the ImageNet VGG19 weights at {cached} ({brief(error)}); delete the file to download it again"
        ) from error


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise NSTError(
            f"weights file not found: {path} (model.weights takes imagenet, random or a .pth path)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean the same here
        raise NSTError(
            f"{path} is not a PyTorch state dict that can be loaded safely ({brief(error)})"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise NSTError(
            f"{path} does not hold a state dict of tensors; save one with torch.save(model.state_dict())"
        )
    return state


def _load_into(features: nn.Sequential, state: dict[str, Tensor], source: str) -> None:
    """Accept torchvision's whole-model keys (``features.0.weight``) or features-only keys (``0.weight``)."""
    if any(key.startswith("features.") for key in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    wanted = features.state_dict()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise MissingLayers(
            f"{source} is not a VGG19 state dict: it lacks {missing[0]}"
            f"{f' and {len(missing) - 1} more keys' if len(missing) > 1 else ''}; "
            "expected torchvision's vgg19 file or vgg19().features.state_dict()"
        )
    for key, tensor in wanted.items():
        if state[key].shape != tensor.shape:
            raise NSTError(
                f"{source} does not match VGG19: {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    features.load_state_dict({key: state[key] for key in wanted})
