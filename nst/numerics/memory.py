"""How much memory a run needs, worked out before it starts, and what to do when it will not fit.

The activations are not guessed from a formula: one step (forward, losses, backward) is
rehearsed on PyTorch's meta device, which has shapes but no data, and every tensor the step
makes is followed from its making to its freeing; the largest sum of live tensors is the
step's peak. The rest is counted: the network's weights, the image with its gradient, its
best copy and the optimizer's state (an L-BFGS history is two images a step it keeps), and
the targets. On the CPU the run's process also holds about 0.8 GB of libraries, which is
not counted: what it is compared with is the memory still free. bench/memory.py checks the
estimate against measured peaks.
"""

import math
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nst.errors import NSTError
from nst.numerics.losses import content_loss
from nst.numerics.style_stats import blend, distance, statistic
from nst.numerics.vgg import LAYER_NAMES, VGGFeatures, build_features, depth_for

GB = 1e9
# What the rehearsal does not see, measured on the CPU (bench/memory.py): the kernels' own
# buffers (oneDNN reorders a layer's maps to and from its blocked layout), about this many of
# the largest map (64 channels at full size), more when checkpointing recomputes the first
# block; and the allocator's and the run's own bookkeeping. Measured in NCHW (+5 to +12 % of the
# peak at 512-2048 px) and again with the channels-last layout CPUs now run in (-5 to +8 %); the
# rehearsal itself runs in NCHW.
KERNEL_MAPS = {False: 0.25, True: 1.0}
CPU_RUNTIME = 0.25 * GB


@dataclass
class Estimate:
    """Bytes a run needs, by what needs them."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def breakdown(self) -> str:
        return ", ".join(f"{k} {v / GB:.2f}" for k, v in self.parts.items() if v >= 0.005 * GB)

    def __str__(self) -> str:
        return f"{self.total / GB:.1f} GB ({self.breakdown()})"


@dataclass(frozen=True)
class Plan:
    """What a run will do about its memory: checkpointing, L-BFGS history, and why."""

    checkpointing: bool
    lbfgs_history: int
    estimate: Estimate
    note: str | None = None  # the one line that says what was changed, if anything


def estimate(
    height: int,
    width: int,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    *,
    style_loss: str = "gram",
    pooling: str = "max",
    padding: str = "zeros",
    optimizer: str = "lbfgs",
    lbfgs_history: int = 100,
    checkpointing: bool = False,
    precision: str = "32-true",
    pictures: int = 1,
    device: torch.device | None = None,
) -> Estimate:
    """The memory one step of a run at ``height`` by ``width`` pixels needs at its peak."""
    dtype = {"64-true": torch.float64, "bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16}.get(
        precision, torch.float32
    )
    weights_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    with torch.device("meta"):
        stack = build_features(depth_for(layers), pooling, padding)
        whole = build_features(len(LAYER_NAMES), pooling, padding)
    network = sum(p.numel() for p in stack.parameters()) * weights_dtype.itemsize
    if device is None or device.type == "cpu":  # nst.numerics.reuse keeps the whole network there as well
        network += sum(p.numel() for p in whole.parameters()) * 4
    if dtype == torch.bfloat16:  # autocast keeps a bf16 copy of the weights
        network += network // 2
    image = pictures * 3 * height * width * weights_dtype.itemsize
    shape = (pictures, 3, height, width)
    try:
        activations, targets = _rehearse(
            stack.to(dtype), content_layers, style_layers, style_loss, checkpointing, shape, dtype
        )
    except (NotImplementedError, RuntimeError):  # a statistic with no meta kernel (eigh, quantile)
        activations, targets = _rehearse(
            stack.to(dtype), content_layers, style_layers, "gram", checkpointing, shape, dtype
        )
    # Adam: two moments. L-BFGS: two images per remembered step, its direction, the previous
    # gradient and the copy nst takes before each step (see nst.numerics.projection).
    state = 2 * image if optimizer == "adam" else (2 * lbfgs_history + 3) * image
    # The image, its gradient, the best image so far, the content and style images.
    images = 5 * image
    largest = pictures * 64 * height * width * dtype.itemsize
    kernels = KERNEL_MAPS[checkpointing] * largest
    if device is None or device.type == "cpu":
        kernels += CPU_RUNTIME
    return Estimate(
        {
            "activations": activations,
            "kernels": kernels,
            "optimizer": state,
            "network": network,
            "targets": targets,
            "images": images,
        }
    )


def choose(
    needs: Callable[[bool, int], Estimate],
    free: float | None,
    checkpointing: bool | None,
    optimizer: str,
    lbfgs_history: int,
) -> Plan:
    """Checkpointing and history for a run that must fit in ``free`` bytes (None: unknown).

    ``needs(checkpointing, history)`` estimates the run with those settings. Checkpointing is
    switched on only if the settings leave it open (``None``), and the history is shortened only
    as far as needed; when nothing fits, the run is refused with what to change."""
    chosen = bool(checkpointing)
    first = needs(chosen, lbfgs_history)
    if free is None or first.total <= free:
        return Plan(chosen, lbfgs_history, first)
    # Checkpointing first (it costs time, not quality), then ever shorter histories with it.
    ckpt = True if checkpointing is None else chosen
    histories = [lbfgs_history]
    if optimizer == "lbfgs":
        histories += [h for h in (50, 20, 10, 5) if h < lbfgs_history]
    for on, history in [(ckpt, h) for h in histories if (ckpt, h) != (chosen, lbfgs_history)]:
        found = needs(on, history)
        if found.total <= free:
            changes = []
            if on and not chosen:
                changes.append("activation checkpointing on (about a quarter slower a step)")
            if history != lbfgs_history:
                changes.append(f"L-BFGS history {lbfgs_history} → {history}")
            note = (
                f"memory: the run needs {first.total / GB:.1f} GB and {free / GB:.1f} GB is free; "
                f"{' and '.join(changes)}: {found.total / GB:.1f} GB"
            )
            return Plan(on, history, found, note)
    least = needs(ckpt, histories[-1])
    scale = math.sqrt(free / least.total) if least.total > 0 else 1.0
    raise NSTError(
        f"the run needs {first.total / GB:.1f} GB ({first.breakdown()} GB) and even with every saving "
        f"{least.total / GB:.1f} GB, but {free / GB:.1f} GB is free; lower data.size (to about "
        f"{max(int(scale * 100), 1)}% of it) or free memory"
    )


def plan(
    settings: Mapping[str, Any],
    phases: Sequence[tuple[tuple[int, int], str, int]],
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    precision: str,
    device: torch.device,
) -> Plan:
    """What a run of one picture needs at its largest phase on ``device``, and what it will do
    to fit. ``phases`` are each phase's ((height, width), optimizer, L-BFGS history); ``settings``
    the model's (style_loss, pooling, padding, activation_checkpointing, memory_limit). The note
    of a plan that changed something is printed."""
    height, width = max((shape for shape, _, _ in phases), key=lambda s: s[0] * s[1])
    optimizer = "lbfgs" if any(kind == "lbfgs" for _, kind, _ in phases) else "adam"
    lbfgs_history = max(history for _, _, history in phases)

    def needs(checkpointing: bool, history: int) -> Estimate:
        h = settings
        model = {"style_loss": h["style_loss"], "pooling": h["pooling"], "padding": h["padding"]}
        return estimate(
            height, width, content_layers, style_layers, **model, optimizer=optimizer, lbfgs_history=history,
            checkpointing=checkpointing, precision=precision, device=device,
        )  # fmt: skip

    limit = settings["memory_limit"]
    free = limit * GB if limit is not None else free_memory(device)
    chosen = choose(needs, free, settings["activation_checkpointing"], optimizer, lbfgs_history)
    if chosen.note:
        print(chosen.note)
    return chosen


def free_memory(device: torch.device) -> float | None:
    """Bytes a run can still take on ``device`` (None where that cannot be known)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return float(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _rehearse(
    stack: torch.nn.Sequential,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    style_loss: str,
    checkpointing: bool,
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
) -> tuple[float, float]:
    """The peak of live tensors in one step on the meta device, and the targets' size."""
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    with torch.device("meta"):
        vgg = VGGFeatures(layers, stack, checkpointing=checkpointing).to(dtype)
        with torch.no_grad():
            features = vgg(torch.empty(shape, dtype=dtype))
        content = {n: features[n].float() for n in content_layers}
        style = {n: _statistic(style_loss, features[n]) for n in style_layers}
        del features
        targets = sum(t.nbytes for t in content.values())
        targets += sum(t.nbytes for stat in style.values() for t in stat.values())
        image = torch.empty(shape, dtype=dtype, requires_grad=True)
    terms: list[Tensor] = []

    def each(name: str, features: Tensor) -> None:
        if name in content:
            terms.append(content_loss(features, content[name]))
        if name in style:
            terms.append(distance(style_loss, features, style[name]))

    with _Live() as live:
        vgg(image, each=each)
        loss = torch.stack([t.float() for t in terms]).sum()
        terms.clear()
        loss.backward()
    return float(live.peak), float(targets)


def _statistic(kind: str, features: Tensor) -> dict[str, Tensor]:
    return blend(kind, [statistic(kind, features)], [1.0])  # as nst.numerics.targets makes it


class _Live(TorchDispatchMode):
    """Follows every tensor made under it until it is freed; ``peak`` is the most bytes alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, Tensor):
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key in self._seen:  # a view of a tensor already counted
                    continue
                self._seen.add(key)
                size = storage.nbytes()
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._freed, key, size)
        return out

    def _freed(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.discard(key)
