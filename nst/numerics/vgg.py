"""The frozen VGG19 feature extractor: layer names, truncation, pooling, normalisation.

Layers are named as in Simonyan & Zisserman and Gatys et al.: ``convB_L`` and
``reluB_L`` for layer L of block B, ``poolB`` at the end of block B. Their positions
equal the indices of torchvision's ``vgg19().features``, so torchvision state dicts
load without renaming.
"""

import difflib
import re
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from nst.errors import NSTError
from nst.numerics import frozen

_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)  # VGG19, configuration "E"
_CHANNELS = (64, 128, 256, 512, 512)

# From this size of the first layer's maps on (about 360 x 360 px in fp32) the backward keeps
# only what the image's gradient needs (see nst.numerics.frozen and VGGFeatures._lean).
LEAN_FROM_BYTES = 32 * 2**20

# ImageNet statistics the torchvision weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate(_CONVS_PER_BLOCK, start=1):
        for layer in range(1, convs + 1):
            names += [f"conv{block}_{layer}", f"relu{block}_{layer}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _layer_names()
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def layer_index(name: str) -> int:
    """Index of a named layer in torchvision's ``vgg19().features``."""
    if name not in _INDEX:
        close = difflib.get_close_matches(name, LAYER_NAMES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise NSTError(
            f"unknown VGG19 layer {name!r}: {hint}names are conv1_1 … conv5_4, relu1_1 … relu5_4, pool1 … pool5"
        )
    return _INDEX[name]


_CONVS = [name for name in LAYER_NAMES if name.startswith("conv")]
_POOLS = [name for name in LAYER_NAMES if name.startswith("pool")]
_FLAT = re.compile(r"(conv|relu|pool)_(\d+)")


def canonical_layer(name: str) -> str:
    """The canonical name of a layer given in the PyTorch tutorial's flat names, where
    ``conv_N`` is the N-th convolution (``conv_4`` is conv2_2), ``relu_N`` the ReLU after it
    and ``pool_N`` the pooling after it; other names are returned as they are."""
    match = _FLAT.fullmatch(name)
    if match is None:
        return name
    kind, n = match.group(1), int(match.group(2))
    if not 1 <= n <= len(_CONVS):
        raise NSTError(
            f"unknown VGG19 layer {name!r}: VGG19 has {len(_CONVS)} convolutions, conv_1 … conv_16 "
            "in the PyTorch tutorial's flat names (conv1_1 … conv5_4 in nst's)"
        )
    conv = _CONVS[n - 1]
    if kind != "pool":
        return conv.replace("conv", kind)
    after = LAYER_NAMES[_INDEX[conv] + 2]  # the conv, its ReLU, then what follows
    if not after.startswith("pool"):
        pools = ", ".join(f"pool_{_CONVS.index(LAYER_NAMES[_INDEX[p] - 2]) + 1}" for p in _POOLS)
        raise NSTError(
            f"unknown VGG19 layer {name!r}: in the PyTorch tutorial's flat names the pooling layers are {pools}"
        )
    return after


def canonical_layers(names: list[str], option: str, quiet: bool = False) -> list[str]:
    """``names`` with the tutorial's flat names replaced by the canonical ones, saying so once each."""
    canonical = [canonical_layer(name) for name in names]
    for given, name in zip(names, canonical, strict=True):
        if given != name and not quiet:
            print(f"{option}: {given} is {name} (the PyTorch tutorial's flat name for it)")
    return canonical


def build_features(depth: int, pooling: str = "max", padding: str = "zeros") -> nn.Sequential:
    """The first ``depth`` layers of VGG19's feature stack, uninitialised (on the meta device).

    ReLUs are not in-place: an in-place ReLU would overwrite a conv output that a
    loss has kept. ``padding`` is that of the first convolution, the one that sees pixels.
    """
    if pooling not in ("max", "avg"):
        raise NSTError(f"unknown pooling {pooling!r}: use max or avg")
    if padding not in ("zeros", "replicate"):
        raise NSTError(f"unknown padding {padding!r}: use zeros or replicate")
    layers: list[nn.Module] = []
    channels = 3
    with torch.device("meta"):
        for convs, width in zip(_CONVS_PER_BLOCK, _CHANNELS, strict=True):
            for _ in range(convs):
                # Zero padding of the first convolution frames the image in the mean ImageNet
                # colour (zero after normalisation), which the style loss then paints as a
                # border; replicating the edge pixels instead removes that edge artifact.
                mode = padding if not layers else "zeros"
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1, padding_mode=mode), nn.ReLU()]
                channels = width
            # Gatys et al. prefer average pooling for smoother gradients; max is torchvision's.
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*layers[:depth])


class VGGFeatures(nn.Module):
    """Maps [B, 3, H, W] RGB images in [0, 1] to the feature maps of the named layers.

    It owns the ImageNet normalisation, so callers never see normalised pixels, and it
    is cut after the deepest requested layer. Its parameters are frozen.

    With ``checkpointing``, the stack runs in segments that end at each requested layer and
    each pooling layer, and only the segments' ends are kept for the backward pass; each
    segment's inside is computed again there (about one more forward pass in all), which
    takes the memory of the activations from the sum over all layers to about that of the
    largest segment.
    """

    def __init__(self, layers: Iterable[str], features: nn.Sequential, checkpointing: bool = False) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(layers))
        self._wanted = {layer_index(name): name for name in self.layers}
        # Frozen. Train/eval mode makes no difference: the stack has no dropout or batch norm.
        self.features = features.requires_grad_(False)
        self.checkpointing = checkpointing
        self.channels_last = False  # the maps' memory layout (see use_channels_last)
        self.lean = True  # may keep only what the image's gradient needs, where maps are large (_lean)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, image: Tensor, each: Callable[[str, Tensor], None] | None = None, keep: bool = True
    ) -> dict[str, Tensor]:
        """The feature maps of the named layers; ``each(name, features)`` is called for each
        of them in the order of the layers (with ``keep`` False the maps are not kept, and the
        result is empty).

        Where the maps are large, ``each`` is called as each layer is computed. A loss made
        there is made in the order of the layers; autograd, which goes back through a graph
        latest-made first, then takes a layer's loss back just before the layer itself, so each
        layer's maps are freed in turn rather than all held at once. Where they are small, it is
        called after the pass: made between the layers, the losses cost ~1 ms more a step at
        32 px on a CPU (their matrix products and the convolutions take turns with the threads,
        forward and backward), and what they save is memory that only large maps need."""
        x = (image - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not (self.checkpointing and torch.is_grad_enabled() and x.requires_grad):
            if each is None or self._first_maps(x) >= LEAN_FROM_BYTES:
                out = _Features(each, keep)
                self._run(x, 0, len(self.features), out, self._lean(x))
                return dict(out)
            features = self._run(x, 0, len(self.features), {})
            for name, maps in features.items():
                each(name, maps)
            return features if keep else {}
        out = _Features(each, keep)
        for start, end in self.segments():
            if all(isinstance(layer, nn.Conv2d) for layer in self.features[start:end]):
                x = self._run(x, start, end, None, True)  # a convolution keeps nothing (nst.numerics.frozen)
            else:
                x = checkpoint(self._run, x, start, end, None, True, use_reentrant=False)
            if end - 1 in self._wanted:
                out[self._wanted[end - 1]] = x
        return dict(out)

    def use_channels_last(self) -> None:
        """Run in the channels-last memory layout (NHWC), which GPUs' Tensor Cores read directly
        and oneDNN's CPU convolutions work in (see nst.run.speed.prepare)."""
        self.features.to(memory_format=torch.channels_last)
        self.channels_last = True

    def segments(self) -> list[tuple[int, int]]:
        """The [start, end) layer ranges that ``checkpointing`` keeps only the ends of."""
        ends = [i + 1 for i, layer in enumerate(self.features) if i in self._wanted or _is_pool(layer)]
        ends = sorted({*ends, len(self.features)})
        return list(zip([0, *ends[:-1]], ends, strict=True))

    def _lean(self, x: Tensor) -> bool:
        """Whether to keep only what the image's gradient needs (nst.numerics.frozen): where the maps are
        large. On small pictures PyTorch's own backward is faster (one fused kernel per layer,
        no Python in between) and what it keeps is a few megabytes."""
        return (
            self.lean
            and x.requires_grad
            and torch.is_grad_enabled()
            and self._first_maps(x) >= LEAN_FROM_BYTES
        )

    @staticmethod
    def _first_maps(x: Tensor) -> int:
        """Bytes of the first layer's maps (64 channels) of input ``x``."""
        return x.numel() // x.shape[1] * 64 * x.element_size()

    def _run(
        self, x: Tensor, start: int, end: int, out: dict[str, Tensor] | None = None, lean: bool = False
    ) -> Tensor | dict[str, Tensor]:
        """Layers [start, end) on ``x``: the last one's output, or ``out`` with the named ones."""
        made_here = False  # whether x was computed in this call (and so may be overwritten)
        layers = list(self.features)  # Sequential's indexing walks the modules from the first
        for i in range(start, end):
            layer = layers[i]
            # A ReLU overwrites a conv output that nothing else keeps: one activation less.
            inplace = isinstance(layer, nn.ReLU) and made_here and i - 1 not in self._wanted
            if lean:
                x = frozen.apply(layer, x, inplace)
            elif inplace:
                x = torch.relu_(x)
            else:
                x = layer(x)
            made_here = True
            if out is not None and i in self._wanted:
                out[self._wanted[i]] = x
        return x if out is None else out


class _Features(dict):
    def __init__(self, each: Callable[[str, Tensor], None] | None, keep: bool) -> None:
        super().__init__()
        self.each, self.keep = each, keep

    def __setitem__(self, name: str, features: Tensor) -> None:
        if self.keep:
            super().__setitem__(name, features)
        if self.each is not None:
            self.each(name, features)


def _is_pool(layer: nn.Module) -> bool:
    return isinstance(layer, nn.MaxPool2d | nn.AvgPool2d)


def depth_for(layers: Sequence[str]) -> int:
    """How many layers of the feature stack are needed to reach all of ``layers``."""
    return max(layer_index(name) for name in layers) + 1


def min_side(name: str) -> int:
    """Smallest image side for which layer ``name`` still has at least one pixel."""
    pools = sum(1 for other in LAYER_NAMES[: layer_index(name) + 1] if other.startswith("pool"))
    return 2**pools
