"""The schedule of a run: its phases, coarse to fine, each at its own size with its own settings.

A plain run is a schedule of one phase at the result's size. A multi-scale run has several:
a phase optimises the image at one long side for a number of steps, and the next phase
starts from its result upscaled. Small sizes are cheap, and at a small size the style's
large structures are seen by VGG's receptive fields, so a run that settles them coarse and
refines them fine gets a lower loss in the same time and a picture with larger coherent
strokes (as in jcjohnson/neural-style's multires recipe and crowsonkb/style-transfer-pytorch).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Required, TypedDict

from nst.errors import NSTError


class Phase(TypedDict, total=False):
    """One phase of a multi-scale run.

    ``size`` (the long side in pixels) and ``steps`` are required; the other keys default
    to the model's own settings of the same name.
    """

    size: Required[int]
    steps: Required[int]
    optimizer: Literal["lbfgs", "adam"]
    lr: float
    lbfgs_history: int
    content_weight: float
    style_weight: float
    tv_weight: float


# The model settings a phase may set for itself.
SETTINGS = ("optimizer", "lr", "lbfgs_history", "content_weight", "style_weight", "tv_weight")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


@dataclass(frozen=True)
class PhaseSettings:
    """What one phase runs with, every default resolved."""

    size: int  # long side in pixels
    steps: int
    optimizer: str
    lr: float
    lbfgs_history: int
    content_weight: float
    style_weight: float
    tv_weight: float


class Schedule:
    """The phases of a run in order; ``where(i)`` names phase ``i`` in messages."""

    def __init__(self, phases: list[PhaseSettings], multi_scale: bool) -> None:
        self.phases = phases
        self.multi_scale = multi_scale  # given as model.phases (else one phase at data.size)

    @classmethod
    def of(cls, model: Mapping[str, Any], long_side: int, max_steps: int) -> "Schedule":
        """The schedule that model settings (``model.phases`` or none) give a run whose result
        has ``long_side`` pixels and which lasts ``max_steps`` steps."""
        given = model.get("phases") or [{"size": long_side, "steps": max_steps}]
        return cls([_resolve(phase, model) for phase in given], bool(model.get("phases")))

    def __len__(self) -> int:
        return len(self.phases)

    def __getitem__(self, index: int) -> PhaseSettings:
        return self.phases[index]

    @property
    def total_steps(self) -> int:
        return sum(phase.steps for phase in self.phases)

    def index_at(self, step: int) -> int:
        """Index of the phase that step ``step`` (0-based) belongs to; the last one after the end."""
        return phase_at([{"steps": phase.steps} for phase in self.phases], step)

    def where(self, index: int) -> str:
        return f"model.phases[{index}]" if self.multi_scale else "this run"


def _resolve(phase: Mapping[str, Any], model: Mapping[str, Any]) -> PhaseSettings:
    own = {name: phase.get(name) for name in SETTINGS}
    settings = {name: model[name] if own[name] is None else own[name] for name in SETTINGS}
    # A phase that changes optimizer does not inherit a learning rate set for the other one.
    inherited = model["lr"] if settings["optimizer"] == model["optimizer"] else None
    settings["lr"] = own["lr"] or inherited or DEFAULT_LR[settings["optimizer"]]
    return PhaseSettings(size=phase["size"], steps=phase["steps"], **settings)


def check_phases(phases: list[Any]) -> None:
    """Refuse a phase list that cannot run, naming the phase and the key (for Python callers;
    the command line has already checked the types)."""
    if not phases:
        raise NSTError("model.phases is an empty list; give at least one {size, steps}, or null for none")
    for i, phase in enumerate(phases):
        where = f"model.phases[{i}]"
        if not isinstance(phase, dict):
            raise NSTError(f"{where} must be a mapping such as {{size: 256, steps: 200}}, got {phase!r}")
        unknown = sorted(set(phase) - {"size", "steps", *SETTINGS})
        if unknown:
            raise NSTError(
                f"{where} has unknown key {unknown[0]!r}; a phase takes size, steps and {', '.join(SETTINGS)}"
            )
        for key in ("size", "steps"):
            value = phase.get(key)
            if value is None:
                raise NSTError(f"{where} needs {key}, e.g. {{size: 256, steps: 200}}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NSTError(f"{where}.{key} must be a whole number ≥ 1, got {value!r}")
        if phase.get("optimizer") not in (None, "lbfgs", "adam"):
            raise NSTError(f"{where}.optimizer must be lbfgs or adam, got {phase['optimizer']!r}")
        for key in ("content_weight", "style_weight", "tv_weight"):
            value = phase.get(key)
            if value is not None and not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise NSTError(f"{where}.{key} must be a finite number ≥ 0, got {value}")
        lr = phase.get("lr")
        if lr is not None and not (_is_number(lr) and math.isfinite(lr) and lr > 0):
            raise NSTError(f"{where}.lr must be a positive number, got {lr}")
        history = phase.get("lbfgs_history")
        if history is not None and not (isinstance(history, int) and history >= 1):
            raise NSTError(f"{where}.lbfgs_history must be at least 1, got {history}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def total_steps(phases: list[Any]) -> int:
    return sum(phase["steps"] for phase in phases)


def phase_at(phases: list[Any], step: int) -> int:
    """Index of the phase that step ``step`` (0-based) belongs to; the last one after the end."""
    at = 0
    for i, phase in enumerate(phases):
        at += phase["steps"]
        if step < at:
            return i
    return len(phases) - 1
