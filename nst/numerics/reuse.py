"""What one process computes once and hands to every run it makes: the loaded VGG19 stack and
the style and content targets. A sweep runs many cells in one process; cells that share a
network, an image and layers share these instead of loading and computing them again.
A plain ``fit`` makes one run, so for it this changes nothing."""

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from nst.numerics.vgg import LAYER_NAMES, build_features
from nst.numerics.weights import MissingLayers, load_weights

_FEATURES: dict[tuple[Any, ...], nn.Sequential] = {}  # (pooling, weights) -> the deepest stack loaded
_TARGETS: dict[tuple[Any, ...], dict[str, Tensor]] = {}


def features(depth: int, pooling: str, weights: str, padding: str = "zeros") -> nn.Sequential:
    """The first ``depth`` layers of VGG19 with ``weights``: a fresh float32 copy for each run.

    The file is read once per process (the whole stack, so runs of any depth share it);
    each run gets its own copy, because Lightning converts a run's modules in place
    (64-true makes them float64, bf16-true rounds them) and that must not reach other runs.
    """
    key = (pooling, padding, weights_identity(weights))
    if key not in _FEATURES or len(_FEATURES[key]) < depth:
        try:
            _FEATURES[key] = load_weights(build_features(len(LAYER_NAMES), pooling, padding), weights)
        except MissingLayers:  # a file holding only the first layers: enough if it reaches this depth
            # (only then: any other failure, a download above all, would just fail again)
            _FEATURES[key] = load_weights(build_features(depth, pooling, padding), weights)
    return copy.deepcopy(_FEATURES[key][:depth])


def weights_identity(weights: str) -> Any:
    """A weights file is known by where it is and when it was written, not by how it was named."""
    path = Path(weights)
    if weights in ("imagenet", "random") or not path.is_file():
        return weights
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def targets(
    key: tuple[Any, ...], image: Tensor, compute: Callable[[], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """``compute()``'s result for ``key`` and this exact image (its pixels, not its file name)."""
    digest = hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    full_key = (*key, tuple(image.shape), digest)
    if full_key not in _TARGETS:
        _TARGETS[full_key] = compute()
    return _TARGETS[full_key]


def clear() -> None:
    """Forget everything (tests; or to free memory between unrelated sweeps)."""
    _FEATURES.clear()
    _TARGETS.clear()
