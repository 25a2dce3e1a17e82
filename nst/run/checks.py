"""Every rule a run's settings must follow, each checked here and only here.

``check_model_options`` runs when the model is made (before any image is read);
``check_against_data`` once the images are loaded, before any network is built, so that
a run that cannot work stops in a second with one line instead of failing later.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import EarlyStopping

from nst.errors import NSTError
from nst.numerics.vgg import layer_index, min_side
from nst.numerics.weights import check_weights_option
from nst.run.data import StyleTransferData
from nst.run.schedule import Schedule, check_phases

_FULL_PRECISION = ("32-true", "64-true")
INIT_KEYWORDS = ("content", "noise", "style")


def check_model_options(h: Mapping[str, Any]) -> None:
    """The model's own settings (``model.*``), on their own."""
    check_layers(h["content_layers"], h["style_layers"], h["style_layer_weights"])
    for name in ("content_weight", "style_weight", "tv_weight"):
        check_weight(f"model.{name}", h[name])
    if (
        h["content_weight"] == 0
        and h["tv_weight"] == 0
        and (h["style_weight"] == 0 or not any(h["style_layer_weights"] or [1]))
    ):
        raise NSTError(
            "every loss weight is zero, so there is nothing to optimise; "
            "set model.content_weight or model.style_weight above 0"
        )
    check_weights_option(h["weights"])
    lr = h["lr"]
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise NSTError(f"model.lr must be a positive number, got {lr}")
    if h["lbfgs_history"] < 1:
        raise NSTError(f"model.lbfgs_history must be at least 1, got {h['lbfgs_history']}")
    restart = h.get("lbfgs_restart")
    if restart is not None and not (math.isfinite(restart) and restart > 1):
        raise NSTError(f"model.lbfgs_restart must be a number above 1 (or null: never), got {restart}")
    if h["phases"] is not None:
        check_phases(h["phases"])


def check_layers(content: list[str], style: list[str], style_weights: list[float] | None) -> None:
    for option, layers in (("model.content_layers", content), ("model.style_layers", style)):
        for name in layers:
            layer_index(name)
        if len(set(layers)) != len(layers):
            raise NSTError(f"{option} lists a layer twice: {layers}")
    if not content and not style:
        raise NSTError(
            "model.content_layers and model.style_layers are both empty: there is nothing to optimise"
        )
    if style_weights is not None:
        if len(style_weights) != len(style):
            raise NSTError(
                f"model.style_layer_weights has {len(style_weights)} entries for {len(style)} style layers"
            )
        for weight in style_weights:
            check_weight("model.style_layer_weights", weight)


def check_weight(option: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise NSTError(f"{option} must be a finite number ≥ 0, got {value}")


def check_trainer_options(trainer: Mapping[str, Any]) -> None:
    """The Lightning options that a run's shape rules out: a run is one epoch of steps
    (nst.run.data), each one optimizer step taken by hand (StyleTransfer.training_step)."""
    for unit in ("min", "max"):
        if trainer.get(f"{unit}_epochs") is not None:
            raise NSTError(
                f"trainer.{unit}_epochs does not apply: a run is one epoch of steps; use trainer.{unit}_steps"
            )
    if trainer.get("gradient_clip_val"):
        raise NSTError(
            "trainer.gradient_clip_val does not apply: nst does not clip the image's gradient; leave it out"
        )
    if trainer.get("accumulate_grad_batches") not in (None, 1):
        raise NSTError(
            "trainer.accumulate_grad_batches does not apply: every step is one whole picture; leave it out"
        )


def check_early_stopping(callbacks: Sequence[Any]) -> None:
    """Settings of Lightning's EarlyStopping that it takes but that make no sense: a negative
    patience stops a run at the first step that does not improve, as 0 does, which is not what
    whoever wrote it meant; a min_delta that is not finite (Lightning flips its sign by mode, so
    a negative one is a tolerance, and allowed) makes no step count as an improvement."""
    for callback in callbacks:
        if not isinstance(callback, EarlyStopping):
            continue
        if callback.patience < 0:
            raise NSTError(
                f"EarlyStopping's patience must be 0 or more (the checks without improvement it "
                f"waits before stopping the run), got {callback.patience}"
            )
        if not math.isfinite(callback.min_delta):
            raise NSTError(
                f"EarlyStopping's min_delta must be a finite number (the change that counts as an "
                f"improvement), got {abs(callback.min_delta)}"
            )


def check_length(h: Mapping[str, Any], max_steps: int) -> None:
    """A multi-scale run lasts as long as its phases (the command line sets trainer.max_steps)."""
    phases = h["phases"]
    if phases and max_steps != sum(phase["steps"] for phase in phases):
        total = sum(phase["steps"] for phase in phases)
        raise NSTError(
            f"trainer.max_steps is {max_steps} but model.phases add up to {total} steps; "
            f"set trainer.max_steps to {total}"
        )


def check_precision(schedule: Schedule, precision: str) -> None:
    if any(phase.optimizer == "lbfgs" for phase in schedule) and precision not in _FULL_PRECISION:
        raise NSTError(
            f"L-BFGS needs full precision, but trainer.precision is {precision}: its line of descent "
            "breaks down under reduced precision; use trainer.precision=32-true or model.optimizer=adam"
        )


def check_against_data(h: Mapping[str, Any], schedule: Schedule, data: StyleTransferData) -> None:
    """These settings against loaded images: layers and weights for the losses the images
    give, the size of every phase, and the starting image."""
    has_content, has_style = data.content is not None, data.style is not None
    for option, image, layers in (
        ("content", has_content, h["content_layers"]),
        ("style", has_style, h["style_layers"]),
    ):
        if image and not layers:
            raise NSTError(
                f"model.{option}_layers is empty but data.{option} is given; name at least one "
                f"VGG19 layer, or leave data.{option} out"
            )
    style_layer_weights = h["style_layer_weights"] or [1.0] * len(h["style_layers"])
    for i, phase in enumerate(schedule):
        weights = [phase.tv_weight]
        weights += [phase.content_weight] if has_content else []
        weights += [phase.style_weight * w for w in style_layer_weights] if has_style else []
        if not any(weights):
            raise NSTError(
                f"every loss weight of {schedule.where(i)} is zero, so there is nothing to optimise; "
                "set model.content_weight or model.style_weight above 0"
            )
    if schedule.multi_scale and schedule[-1].size != data.long_side:
        raise NSTError(
            f"the last of model.phases has size {schedule[-1].size} but data.size's long side is "
            f"{data.long_side}; the last phase makes the result, so give it that size"
        )
    layers = [*(h["content_layers"] if has_content else []), *(h["style_layers"] if has_style else [])]
    for i, phase in enumerate(schedule):
        images = data.at(phase.size)
        sized = f"model.phases[{i}].size" if schedule.multi_scale else None
        _check_large_enough(layers, images.shape, "result", sized or "data.size")
        for style in images.styles:
            _check_large_enough(layers, tuple(style.shape[-2:]), "style image", sized or "data.style_size")
    if data.hparams.get("content_masks") is not None and h["style_loss"] != "gram":
        raise NSTError("region masks work with model.style_loss gram (guided Gram matrices); set it to gram")
    init = h["init"]
    if init in ("content", "style") and getattr(data, init) is None:
        raise NSTError(f"model.init is {init} but there is no data.{init}; use noise or an image file")
    if init not in (None, *INIT_KEYWORDS) and not Path(init).is_file():
        raise NSTError(f"model.init {init!r} is not content, noise, style or an existing image file")


def _check_large_enough(layers: Sequence[str], shape: tuple[int, ...], role: str, option: str) -> None:
    deepest = max(layers, key=layer_index)
    need = min_side(deepest)
    if min(shape) < need:
        raise NSTError(
            f"the {role} is {shape[-1]}×{shape[-2]} px, too small for {deepest}, which needs "
            f"at least {need} px on each side; raise {option}"
        )
