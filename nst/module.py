"""The LightningModule: the generated image as a parameter, optimised against a frozen VGG19.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).
"""

import math
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from PIL import Image
from torch import Tensor, nn

from nst import reuse
from nst.colour import luminance
from nst.errors import NSTError
from nst.images import read_image, resize_tensor, to_tensor
from nst.losses import content_loss, gram, style_loss, tv_loss
from nst.phases import Phase, check_phases, phase_at, total_steps
from nst.vgg import VGGFeatures, depth_for, layer_index, min_side
from nst.weights import check_weights_option

INIT_KEYWORDS = ("content", "noise", "style")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
_FULL_PRECISION = ("32-true", "64-true")
_WEIGHTS = ("content_weight", "style_weight", "tv_weight")


class StyleTransfer(LightningModule):
    """Gatys-style optimisation of an image against content and style targets.

    Logged losses are weighted, so ``loss/total`` is the sum of ``loss/content``,
    ``loss/style`` and ``loss/tv``, and the ``loss/style/<layer>`` curves sum to ``loss/style``.

    Args:
        content_layers: VGG19 layers whose features the result must share with the content image.
        style_layers: VGG19 layers whose Gram matrices the result must share with the style image.
        style_layer_weights: One weight per style layer (default: 1 each).
        content_weight: Weight of the content loss (feature MSE).
        style_weight: Weight of the style loss (MSE of Gram matrices normalised by C·H·W).
        tv_weight: Weight of the total-variation smoothness term.
        init: Starting image: ``content``, ``noise`` (uniform, seeded by seed_everything), ``style``,
            or a path to an image (resized to the result's size). Default: ``content`` when
            there is a content image, else ``noise``.
        optimizer: ``lbfgs`` (one function evaluation per step, history kept across steps) or ``adam``.
        lr: Learning rate (default: 1.0 for L-BFGS, 0.02 for Adam).
        lbfgs_history: Number of past steps L-BFGS keeps to model curvature.
        weights: VGG19 weights: ``imagenet`` (torchvision's file in its TORCH_HOME cache, downloaded once),
            a path to a ``.pth`` state dict (torchvision's file or ``vgg19().features``), or ``random`` (seeded).
        pooling: ``max`` (torchvision's network) or ``avg`` (Gatys et al.'s choice, smoother results).
        padding: Padding of the first convolution: ``zeros`` (torchvision's) or ``replicate``,
            which avoids the frame that zero padding lets the style loss paint along the edges.
        phases: Multi-scale (coarse to fine): phases run in order, each at its own long side
            (``size``) for ``steps`` steps, each starting from the previous result upscaled, with
            the style image scaled along. A phase may set its own optimizer, lr, lbfgs_history,
            content_weight, style_weight and tv_weight (default: the settings above). The last
            phase makes the result, so its size is data.size's long side; trainer.max_steps is
            the phases' total (the command line sets it).
    """

    def __init__(
        self,
        content_layers: list[str] = ["conv4_2"],
        style_layers: list[str] = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],
        style_layer_weights: list[float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1e6,
        tv_weight: float = 0.0,
        init: str | None = None,
        optimizer: Literal["lbfgs", "adam"] = "lbfgs",
        lr: float | None = None,
        lbfgs_history: int = 100,
        weights: str = "imagenet",
        pooling: Literal["max", "avg"] = "max",
        padding: Literal["zeros", "replicate"] = "zeros",
        phases: list[Phase] | None = None,
    ) -> None:
        super().__init__()
        _check_layers(content_layers, style_layers, style_layer_weights)
        _check_weight("model.content_weight", content_weight)
        _check_weight("model.style_weight", style_weight)
        _check_weight("model.tv_weight", tv_weight)
        if (
            content_weight == 0
            and tv_weight == 0
            and (style_weight == 0 or not any(style_layer_weights or [1]))
        ):
            raise NSTError(
                "every loss weight is zero, so there is nothing to optimise; "
                "set model.content_weight or model.style_weight above 0"
            )
        check_weights_option(weights)
        if lr is not None and not (math.isfinite(lr) and lr > 0):
            raise NSTError(f"model.lr must be a positive number, got {lr}")
        if lbfgs_history < 1:
            raise NSTError(f"model.lbfgs_history must be at least 1, got {lbfgs_history}")
        if phases is not None:
            check_phases(phases)
        self.save_hyperparameters()
        # The frozen VGG19 is rebuilt from `weights`, never stored: checkpoints hold the image only.
        self.strict_loading = False
        self.register_parameter("image", None)
        self.vgg: VGGFeatures | None = None
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}
        # Which losses this run has: set from the data in setup (no style image: reconstruction;
        # no content image: texture synthesis).
        self.has_content = True
        self.has_style = True
        self.grey = False
        self.phase = 0  # index into phases; a run without phases has one, at data.size
        # What the optimizer sees is the loss divided by its value at the first step of the
        # phase (see training_step); None until that step.
        self.loss_scale: Tensor | None = None

    def setting(self, name: str, phase: int | None = None) -> Any:
        """A model setting as a phase (default: the current one) has it: its own value, else the model's."""
        phases = self.hparams.phases
        value = phases[self.phase if phase is None else phase].get(name) if phases else None
        return self.hparams[name] if value is None else value

    def _lr(self) -> float:
        # A phase that changes optimizer does not inherit a learning rate set for the other one.
        optimizer, phases = self.setting("optimizer"), self.hparams.phases
        own = phases[self.phase].get("lr") if phases else None
        inherited = self.hparams.lr if optimizer == self.hparams.optimizer else None
        return own or inherited or DEFAULT_LR[optimizer]

    def _phase_settings(self) -> list[dict[str, Any]]:
        """Every phase's settings (one for a run without phases), for checks before the run."""
        return [
            {name: self.setting(name, i) for name in ("optimizer", *_WEIGHTS)}
            for i in range(len(self.hparams.phases or [None]))
        ]

    def _long_side(self, data: Any, phase: int | None = None) -> int:
        phases = self.hparams.phases
        return phases[self.phase if phase is None else phase]["size"] if phases else data.long_side

    def _images(self) -> Any:
        """The images of the current phase."""
        data = self._data()
        return data.at(self._long_side(data))

    @property
    def content_layers(self) -> list[str]:
        return self.hparams.content_layers if self.has_content else []

    @property
    def style_layers(self) -> list[str]:
        return self.hparams.style_layers if self.has_style else []

    @property
    def layers(self) -> list[str]:
        """Every VGG19 layer a loss of this run reads."""
        return [*self.content_layers, *self.style_layers]

    @property
    def style_layer_weights(self) -> list[float]:
        return self.hparams.style_layer_weights or [1.0] * len(self.hparams.style_layers)

    # -- building ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Built here rather than in __init__ or configure_model (which load_from_checkpoint
        # also calls), so that reading an image out of a checkpoint needs no weights.
        data = self._data()
        self.check_data(data)
        phases = self.hparams.phases
        if phases and self.trainer.max_steps != total_steps(phases):
            raise NSTError(
                f"trainer.max_steps is {self.trainer.max_steps} but model.phases add up to "
                f"{total_steps(phases)} steps; set trainer.max_steps to {total_steps(phases)}"
            )
        for settings in self._phase_settings():
            if settings["optimizer"] == "lbfgs":
                _check_lbfgs_precision(str(self.trainer.precision))
        # A luminance-only run optimises a grey image: its colours come from the content at the end.
        self.grey = getattr(data, "colour_content", None) is not None
        if self.vgg is None:
            h = self.hparams
            stack = reuse.features(depth_for(self.layers), h.pooling, h.weights, h.padding)
            self.vgg = VGGFeatures(self.layers, stack)
        if self.image is None:
            start = self._initial_image(data.at(self._long_side(data, 0)))
            self.image = nn.Parameter((luminance(start) if self.grey else start).contiguous())

    def check_data(self, data: Any) -> None:
        """Check these settings against loaded images (a StyleTransferData after setup), before
        any network is built: layers and weights for the losses the images give, sizes, init."""
        self.has_content, self.has_style = data.content is not None, data.style is not None
        self._check_losses()
        phases = self.hparams.phases
        if phases and phases[-1]["size"] != data.long_side:
            raise NSTError(
                f"the last of model.phases has size {phases[-1]['size']} but data.size's long side is "
                f"{data.long_side}; the last phase makes the result, so give it that size"
            )
        for i, phase in enumerate(phases or [None]):
            images = data.at(self._long_side(data, i))
            where = f"model.phases[{i}].size" if phase else "data.size"
            self._check_large_enough(images.shape, "result", where)
            for style in images.styles:
                where = f"model.phases[{i}].size" if phase else "data.style_size"
                self._check_large_enough(tuple(style.shape[-2:]), "style image", where)
        init = self.hparams.init
        if init in ("content", "style") and getattr(data, init) is None:
            raise NSTError(f"model.init is {init} but there is no data.{init}; use noise or an image file")
        if init not in (None, "content", "style", "noise") and not Path(init).is_file():
            raise NSTError(f"model.init {init!r} is not content, noise, style or an existing image file")

    def _data(self) -> Any:
        data = self.trainer.datamodule
        if data is None or getattr(data, "shape", None) is None:
            raise NSTError("StyleTransfer needs a StyleTransferData datamodule passed to trainer.fit")
        return data

    def _check_losses(self) -> None:
        h = self.hparams
        for option, image, layers in (
            ("content", self.has_content, h.content_layers),
            ("style", self.has_style, h.style_layers),
        ):
            if image and not layers:
                raise NSTError(
                    f"model.{option}_layers is empty but data.{option} is given; name at least one "
                    f"VGG19 layer, or leave data.{option} out"
                )
        for i, weight in enumerate(self._phase_settings()):
            weights = [weight["tv_weight"]]
            weights += [weight["content_weight"]] if self.has_content else []
            weights += (
                [weight["style_weight"] * w for w in self.style_layer_weights] if self.has_style else []
            )
            if not any(weights):
                where = f"model.phases[{i}]" if h.phases else "this run"
                raise NSTError(
                    f"every loss weight of {where} is zero, so there is nothing to optimise; "
                    "set model.content_weight or model.style_weight above 0"
                )

    def _check_large_enough(self, shape: tuple[int, ...], role: str, option: str) -> None:
        deepest = max(self.layers, key=layer_index)
        need = min_side(deepest)
        if min(shape) < need:
            raise NSTError(
                f"the {role} is {shape[-1]}×{shape[-2]} px, too small for {deepest}, which needs "
                f"at least {need} px on each side; raise {option}"
            )

    def _initial_image(self, images: Any) -> Tensor:
        init = self.hparams.init or ("content" if self.has_content else "noise")
        height, width = images.shape
        if init == "content":
            return images.content.clone()
        if init == "noise":
            return torch.rand(1, 3, height, width)
        if init == "style":
            return resize_tensor(images.style, (height, width))
        return to_tensor(read_image(init, "init image").resize((width, height), Image.Resampling.BICUBIC))

    def on_fit_start(self) -> None:
        # Targets are computed once per run (per phase), under the same autocast as the training
        # step, and kept out of the state dict (they are cheap to recompute, large to store).
        self._compute_targets(self._images())
        if self.loss_scale is not None:  # from a checkpoint, which is loaded onto the CPU
            self.loss_scale = self.loss_scale.to(self.device)

    def _compute_targets(self, images: Any) -> None:
        # Same network, image, layers, device and precision: same targets (a sweep's cells share them).
        h = self.hparams
        key = (
            reuse.weights_identity(h.weights),
            h.pooling,
            h.padding,
            str(self.device),
            self.trainer.precision,
        )
        if self.has_content:
            self.content_targets = reuse.targets(
                ("content", *key, *self.content_layers),
                images.content,
                lambda: {
                    n: f.float()
                    for n, f in self._features_of(images.content).items()
                    if n in self.content_layers
                },
            )
        if self.has_style:
            # Several styles: the weighted mean of their Gram matrices (one style: weight 1, unchanged).
            grams = [
                reuse.targets(
                    ("style", *key, *self.style_layers),
                    image,
                    lambda image=image: {
                        n: gram(f) for n, f in self._features_of(image).items() if n in self.style_layers
                    },
                )
                for image in images.styles
            ]
            blend = self._data().blend
            self.style_targets = {
                n: sum(
                    (w * g[n] for w, g in zip(blend[1:], grams[1:], strict=True)),
                    blend[0] * grams[0][n],
                )
                for n in self.style_layers
            }

    def _features_of(self, image: Tensor) -> dict[str, Tensor]:
        with torch.no_grad(), self.trainer.precision_plugin.forward_context():
            return self.vgg(image.to(self.device))

    # -- optimisation -----------------------------------------------------------------------

    def compute_losses(self, image: Tensor) -> dict[str, Tensor]:
        """Weighted loss terms of ``image``: content, style, tv, total, and style/<layer>."""
        content_weight, style_weight, tv_weight = (self.setting(name) for name in _WEIGHTS)
        if self.grey:
            # A luminance-only run sees its image through the orthogonal projection onto grey
            # (each pixel's channel mean). Its gradient is then grey too, so an image that
            # starts grey stays grey under every optimizer step, exactly, with no projection
            # afterwards that would leave L-BFGS's curvature pairs describing steps not taken.
            image = image.mean(dim=1, keepdim=True).expand_as(image)
        features = self.vgg(image)
        zero = image.new_zeros((), dtype=torch.float32)
        content = sum((content_loss(features[n], self.content_targets[n]) for n in self.content_layers), zero)
        per_layer = {
            f"style/{name}": style_weight * weight * style_loss(features[name], self.style_targets[name])
            for name, weight in zip(self.style_layers, self.style_layer_weights, strict=False)
        }
        style = sum(per_layer.values(), zero)
        tv = tv_weight * tv_loss(image) if tv_weight else zero
        content = content_weight * content
        return {"content": content, "style": style, "tv": tv, "total": content + style + tv, **per_layer}

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        losses = self.compute_losses(self.image)
        if self._metrics_written_this_step():
            self.check_finite(losses["total"], "loss")
            shown = ("total", "content", "style")
            self.log_dict({f"loss/{k}": v for k, v in losses.items() if k in shown}, prog_bar=True)
            self.log_dict({f"loss/{k}": v for k, v in losses.items() if k not in shown})
        # The optimizer gets the loss in units of its value at the phase's first step. The
        # loss weights keep their meaning (and the logged losses their values), but a problem
        # of small scale, such as random VGG weights, a large image (whose losses are means
        # over more pixels) or a phase that starts near its optimum, no longer falls under the
        # absolute thresholds inside the optimizers: L-BFGS keeps no curvature pair whose
        # s·y is under 1e-10, and Adam's eps of 1e-8 swamps gradients of that size.
        total = losses["total"]
        if self.loss_scale is None:
            start = total.detach().float()
            usable = torch.isfinite(start) & (start > 0)  # a start at the optimum: plain units
            self.loss_scale = torch.where(usable, 1 / start.clamp_min(1e-30), torch.ones_like(start))
        return total * self.loss_scale.to(total.device)

    def check_finite(self, value: Tensor | None = None, what: str = "image") -> None:
        """Stop a diverged run with a reason. Checked where values reach the host anyway
        (logged steps, checkpoints, the final image) rather than with a sync every step."""
        value = self.image if value is None else value
        if not torch.isfinite(value).all():
            raise NSTError(
                f"the {what} became NaN or infinite by step {self.global_step}: the optimisation diverged; "
                "lower model.lr or the loss weights (checkpoints from before are kept)"
            )

    def _metrics_written_this_step(self) -> bool:
        # self.log costs ~0.3 ms a value, which adds up to percents of a step at small sizes
        # and on GPUs; so values are handed over only on the steps whose metrics the logger
        # writes (multiples of trainer.log_every_n_steps), plus the first and the last step
        # for the progress bar, which updates with them.
        trainer = self.trainer
        step = self.global_step + 1
        every = trainer.log_every_n_steps
        return (every > 0 and step % every == 0) or step in (1, trainer.max_steps)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # The image stays in [0, 1] by projection after every step (clamping), not by a sigmoid
        # reparametrisation, which would flatten gradients at saturated pixels. For L-BFGS the
        # projection makes the curvature pairs of clamped pixels slightly inexact; in exchange
        # every evaluation sees a valid image.
        with torch.no_grad():
            self.image.clamp_(0, 1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self.setting("optimizer")
        lr = self._lr()
        if optimizer == "adam":
            return torch.optim.Adam([self.image], lr=lr)
        _check_lbfgs_precision(str(self.trainer.precision))
        # max_iter=1: one function evaluation per Lightning step, so trainer.max_steps counts
        # iterations; L-BFGS keeps its history in the optimizer state across steps.
        # No tolerances (as jcjohnson's neural-style sets tolX = tolFun = -1): torch's defaults
        # are absolute, and a loss of small scale (a large image, whose losses are means over
        # more pixels, or an upscaled phase already near its optimum) has every pixel's gradient
        # under 1e-7, at which L-BFGS returns without a step, on every step, silently.
        history = self.setting("lbfgs_history")
        return torch.optim.LBFGS(
            [self.image], lr=lr, max_iter=1, history_size=history, tolerance_grad=0, tolerance_change=0
        )

    # -- phases of a multi-scale run --------------------------------------------------------

    def on_train_start(self) -> None:
        if self.hparams.phases and self.global_step == 0:
            self._mark_phase(0, self.phase)
        # A resumed run's optimizer state comes back with the learning rate it was saved with;
        # the lr asked for now applies from here on (unchanged, this changes nothing).
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self._lr()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # A phase begins before its first step, so a checkpoint taken at the end of a phase
        # holds that phase's image and optimizer, and a resumed run crosses the boundary
        # exactly where an uninterrupted one does.
        phases = self.hparams.phases
        if phases and (phase := phase_at(phases, self.global_step)) != self.phase:
            self._enter_phase(phase)

    def on_train_end(self) -> None:
        if self.hparams.phases and self.global_step > 0:
            self._mark_phase(self.global_step - 1, self.phase)

    def _enter_phase(self, phase: int) -> None:
        step = self.global_step
        self._mark_phase(step - 1, self.phase)
        self.phase = phase
        images = self._images()
        with torch.no_grad():
            image = self.image.detach()
            full = image.dtype in (torch.float32, torch.float64)  # 64-true keeps its precision
            start = resize_tensor(image if full else image.float(), images.shape).to(image.dtype)
        self.image = nn.Parameter(start.contiguous())
        self.loss_scale = None
        self._compute_targets(images)
        # A new optimizer for the new image: Adam's moments and L-BFGS's curvature pairs
        # belong to the old size, and the phase may choose its own optimizer and lr.
        self.trainer.strategy.setup_optimizers(self.trainer)
        self._mark_phase(step, phase)

    def _mark_phase(self, step: int, phase: int) -> None:
        # Written at each phase's first and last step, so that TensorBoard draws the phases as
        # an exact staircase beside the (continuous) loss curves.
        if self.logger is not None:
            self.logger.log_metrics({"phase/size": float(self.hparams.phases[phase]["size"])}, step=step)

    # -- checkpoints ------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("vgg.")}
        checkpoint["nst_phase"] = {"index": self.phase, "of": len(self.hparams.phases or [None])}
        checkpoint["nst_loss_scale"] = self.loss_scale

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("state_dict", {}).get("image")
        if saved is None:
            raise NSTError("the checkpoint holds no image: it was not written by nst")
        if self.image is None:  # loading outside fit: take the shape from the checkpoint
            self.image = nn.Parameter(torch.empty_like(saved))
            return
        self._check_same_run(checkpoint)
        phase = checkpoint.get("nst_phase", {}).get("index", 0)
        if not 0 <= phase < len(self.hparams.phases or [None]):
            raise NSTError(
                f"the checkpoint was taken in phase {phase + 1}, which this run does not have: "
                "resume with the model.phases the run was started with"
            )
        self.phase = phase
        # A checkpoint from before the loss was scaled holds an optimizer state in plain units.
        self.loss_scale = checkpoint.get("nst_loss_scale", torch.ones(()))
        shape = (*self.image.shape[:-2], *self._images().shape)
        if tuple(saved.shape) != shape:
            raise NSTError(
                f"the checkpoint's image is {_size(saved)} px but this run's is {shape[-1]}×{shape[-2]} px: "
                "resume with the data.size the run was started with"
            )
        # Shaped and typed as saved: a later phase's size, and a 64-true run's float64, which
        # the float32 image made in setup would round (the module is converted only later).
        self.image = nn.Parameter(torch.empty_like(saved, device=self.image.device))

    def _check_same_run(self, checkpoint: dict[str, Any]) -> None:
        data = self.trainer.datamodule
        check_same_run(checkpoint, dict(self.hparams), dict(data.hparams) if data is not None else {})


def check_same_run(checkpoint: dict[str, Any], model: Any, data: Any) -> None:
    """Refuse to continue a run with settings that would make it a different run.

    Weights and learning rate may change on resume (that is a user's experiment);
    images, sizes, layers, network and optimizer may not. ``model`` and ``data`` are the
    init arguments of this run (mappings or config namespaces).
    """
    saved_model = checkpoint.get("hyper_parameters", {})
    saved_data = checkpoint.get("datamodule_hyper_parameters", {})
    # A setting the checkpoint does not record is not compared; one it records as None
    # (no style image, say) is: adding the image would make it another run.
    pairs = [(f"model.{k}", saved_model, k, _get(model, k)) for k in _RUN_IDENTITY_MODEL]
    pairs += [(f"data.{k}", saved_data, k, _get(data, k)) for k in _RUN_IDENTITY_DATA]
    changed = [name for name, saved, k, now in pairs if k in saved and saved[k] != now]
    if _schedule(saved_model.get("phases"), saved_model) != _schedule(_get(model, "phases"), model):
        changed.append("model.phases")
    if changed:
        raise NSTError(
            f"the run being resumed was made with a different {', '.join(changed)}; "
            "resume with its settings (see its config.yaml) or start a fresh run without --ckpt_path"
        )


def _get(settings: Any, key: str) -> Any:
    return settings.get(key) if isinstance(settings, dict) else getattr(settings, key, None)


def _schedule(phases: list[Any] | None, model: Any) -> list[tuple[Any, ...]] | None:
    # What of the phases makes the run: their sizes, lengths and optimizers. Their weights and
    # learning rates may change on resume, as the model's own may.
    if not phases:
        return None
    optimizer = _get(model, "optimizer")
    return [(_get(p, "size"), _get(p, "steps"), _get(p, "optimizer") or optimizer) for p in phases]


def _check_lbfgs_precision(precision: str) -> None:
    if precision not in _FULL_PRECISION:
        raise NSTError(
            f"L-BFGS needs full precision, but trainer.precision is {precision}: its line of descent "
            "breaks down under reduced precision; use trainer.precision=32-true or model.optimizer=adam"
        )


_RUN_IDENTITY_MODEL = ("content_layers", "style_layers", "weights", "pooling", "padding", "optimizer")
_RUN_IDENTITY_DATA = (
    "content",
    "style",
    "size",
    "style_size",
    "style_scale",
    "style_blend",
    "match_colours",
    "luminance_only",
)


def _size(image: Tensor) -> str:
    return f"{image.shape[-1]}×{image.shape[-2]}"


def _check_layers(content: list[str], style: list[str], style_weights: list[float] | None) -> None:
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
            _check_weight("model.style_layer_weights", weight)


def _check_weight(option: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise NSTError(f"{option} must be a finite number ≥ 0, got {value}")
