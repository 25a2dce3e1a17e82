"""The LightningModule: the generated image as a parameter, optimised against a frozen VGG19.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).
What the module owns: the image, the step, the optimizers, entering a phase and what goes
into a checkpoint. The phases are in nst.run.schedule, the targets in nst.numerics.targets, the rules
for settings in nst.run.checks and what a resume may not change in nst.run.identity.
"""

import math
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch
from lightning.pytorch import LightningModule
from PIL import Image
from torch import Tensor, nn

from nst.errors import NSTError
from nst.images import read_image, resize_tensor, to_tensor
from nst.numerics import reuse
from nst.numerics.colour import luminance
from nst.numerics.losses import content_loss, full_precision, tv_loss
from nst.numerics.memory import GB, Estimate, Plan, choose, estimate, free_memory
from nst.numerics.projection import free_gradient, project
from nst.numerics.regions import guided_distance
from nst.numerics.style_stats import distance
from nst.numerics.targets import Targets, compute_targets
from nst.numerics.vgg import VGGFeatures, canonical_layers, depth_for
from nst.run.checkpoints import steps_counted_by_hand, unpack_optimizer_lists
from nst.run.checks import check_against_data, check_length, check_model_options, check_precision
from nst.run.data import Images, StyleTransferData
from nst.run.identity import check_same_run
from nst.run.lightning_private import HookNameSetDirectly
from nst.run.schedule import Phase, Schedule
from nst.run.speed import prepare
from nst.run.tensorboard import MetricsWriter, monitored_losses

T = TypeVar("T", Tensor, float)


class StyleTransfer(HookNameSetDirectly, LightningModule):
    """Gatys-style optimisation of an image against content and style targets.

    Logged losses are weighted, so ``loss/total`` is the sum of ``loss/content``,
    ``loss/style`` and ``loss/tv``, and the ``loss/style/<layer>`` curves sum to ``loss/style``.

    Args:
        content_layers: VGG19 layers whose features the result must share with the content image
            (``conv4_2``; the PyTorch tutorial's flat names such as ``conv_4`` are taken too).
        style_layers: VGG19 layers whose Gram matrices the result must share with the style image.
        style_layer_weights: One weight per style layer (default: 1 each).
        content_weight: Weight of the content loss (feature MSE).
        style_weight: Weight of the style loss (MSE of Gram matrices normalised by C·H·W).
        style_loss: What the style loss compares at each style layer: ``gram`` (Gram matrices),
            ``mean_std`` (each channel's mean and standard deviation), ``wasserstein`` (the W2
            distance between Gaussian fits of the features) or ``histogram`` (Gram plus Risser et
            al.'s histogram matching); see nst.numerics.style_stats. Weigh with style_weight as for gram
            (their scales differ: a sweep over style_weight finds the balance).
        tv_weight: Weight of the total-variation smoothness term.
        init: Starting image: ``content``, ``noise`` (uniform, seeded by seed_everything), ``style``,
            or a path to an image (resized to the result's size). Default: ``content`` when
            there is a content image, else ``noise``.
        optimizer: ``lbfgs`` (one function evaluation per step, history kept across steps) or ``adam``.
        lr: Learning rate (default: 1.0 for L-BFGS, 0.02 for Adam).
        lbfgs_history: Number of past steps L-BFGS keeps to model curvature.
        lbfgs_restart: When the loss rises above this many times the best so far (or becomes NaN),
            L-BFGS forgets its history and starts again from the best image (null: never).
            Without a line search L-BFGS takes whole steps, which on a rugged loss (a high style
            weight) can leap orders of magnitude uphill; the result is the best image either way.
        line_search: ``strong_wolfe`` makes each L-BFGS step search along its direction (more
            evaluations per step, each step downhill); ``none`` takes the step L-BFGS proposes.
        weights: VGG19 weights: ``imagenet`` (torchvision's file in its TORCH_HOME cache, downloaded once),
            a path to a ``.pth`` state dict (torchvision's file or ``vgg19().features``), or ``random`` (seeded).
        pooling: ``max`` (torchvision's network) or ``avg`` (Gatys et al.'s choice, smoother results).
        padding: Padding of the first convolution: ``zeros`` (torchvision's) or ``replicate``,
            which avoids the frame that zero padding lets the style loss paint along the edges.
        activation_checkpointing: Keep only some of VGG19's activations for the backward pass and
            compute the others again there: about a quarter more time per step (512 px, CPU),
            for the memory of a larger picture (see nst.numerics.memory). ``null``: only when the run
            would not fit otherwise.
        memory_limit: GB the run may take on its device (default: what is free there when it
            starts). A run that would need more switches on activation checkpointing and then
            shortens the L-BFGS history, saying so; one that cannot fit is refused before it starts.
        tf32: On NVIDIA GPUs from Ampere on, let convolutions and matrix products use TF32
            (about twice as fast in fp32, results differ from the third significant digit on).
            Off: bit-stable fp32. bf16-mixed precision (with Adam) is faster still.
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
        style_loss: Literal["gram", "mean_std", "wasserstein", "histogram"] = "gram",
        tv_weight: float = 0.0,
        init: str | None = None,
        optimizer: Literal["lbfgs", "adam"] = "lbfgs",
        lr: float | None = None,
        lbfgs_history: int = 100,
        lbfgs_restart: float | None = 100.0,
        line_search: Literal["none", "strong_wolfe"] = "none",
        weights: str = "imagenet",
        pooling: Literal["max", "avg"] = "max",
        padding: Literal["zeros", "replicate"] = "zeros",
        activation_checkpointing: bool | None = None,
        memory_limit: float | None = None,
        tf32: bool = False,
        phases: list[Phase] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False  # see training_step
        # The tutorial's flat names (conv_4) become the canonical ones (conv2_2) they stand for.
        # (Set on hparams itself: under LightningCLI they are the config's, not these arguments.)
        for option in ("content_layers", "style_layers"):
            self.hparams[option] = canonical_layers(self.hparams[option], f"model.{option}")
        check_model_options(self.hparams)
        # The frozen VGG19 is rebuilt from `weights`, never stored: checkpoints hold the image only.
        self.strict_loading = False
        self.register_parameter("image", None)
        self.vgg: VGGFeatures | None = None
        self.targets = Targets()
        self.schedule: Schedule | None = None  # set in setup, when the result's size is known
        self.phase = 0  # index into the schedule
        # Which losses this run has: from the data in setup (no style image: reconstruction;
        # no content image: texture synthesis).
        self.has_content = True
        self.has_style = True
        self.grey = False
        # What the optimizer sees is the loss divided by its value at the first step of the
        # phase (see training_step); None until that step.
        self.loss_scale: Tensor | None = None
        # A picture optimised together with others (nst.run.batched) has its own images here; the
        # trainer's datamodule is then the batch's.
        self.pair_data: StyleTransferData | None = None
        # The best image of the phase by total loss, kept on the device and updated without a
        # host sync; it is what the run hands back (see result()).
        self.best: Tensor | None = None
        self.best_loss: Tensor | None = None
        self.restarts = 0
        self.result_losses: dict[str, float] = {}  # the losses of what result() last handed back
        # The losses of the last step whose losses reached the host (see _log_losses), weighted
        # as on the curves: what the progress bar, the studio and the Python API show.
        self.logged: dict[str, float] = {}
        self.logged_step = -1
        self._monitored: list[str] = []  # the losses that callbacks monitor (see on_fit_start)
        self._writer = MetricsWriter()
        # The names and weights of the loss terms, for the phase and device in the key (see weigh).
        self._weights_of: tuple[tuple[Any, ...], list[str], Tensor] | None = None
        self.memory: Plan | None = None  # what the run needs and does to fit (see plan_memory)

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

    def loss_names(self) -> list[str]:
        """What this run logs: ``loss/total``, ``loss/best``, ``loss/style/conv1_1``, …"""
        terms = ["total", "content", "style", "tv", "best", *(f"style/{n}" for n in self.style_layers)]
        return [f"loss/{term}" for term in terms]

    @property
    def style_layer_weights(self) -> list[float]:
        return self.hparams.style_layer_weights or [1.0] * len(self.hparams.style_layers)

    @property
    def content_targets(self) -> dict[str, Tensor]:
        return self.targets.content

    @property
    def style_targets(self) -> dict[str, Tensor]:
        return self.targets.style

    # -- building ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Built here rather than in __init__ or configure_model (which load_from_checkpoint
        # also calls), so that reading an image out of a checkpoint needs no weights.
        data = self._data()
        self.schedule = self.check_data(data, self.trainer.max_steps)
        check_length(self.hparams, self.trainer.max_steps)
        check_precision(self.schedule, str(self.trainer.precision))
        self.has_content, self.has_style = data.content is not None, data.style is not None
        # A luminance-only run optimises a grey image: its colours come from the content at the end.
        self.grey = data.colour_content is not None
        if self.vgg is None:
            h = self.hparams
            self.memory = self.plan_memory(data) if self.pair_data is None else None
            checkpointing = self.memory.checkpointing if self.memory else bool(h.activation_checkpointing)
            stack = reuse.features(depth_for(self.layers), h.pooling, h.weights, h.padding)
            self.vgg = VGGFeatures(self.layers, stack, checkpointing=checkpointing)
        if self.image is None:
            start = initial_image(self.hparams.init, data.at(self.schedule[0].size))
            self.image = nn.Parameter((luminance(start) if self.grey else start).contiguous())

    def plan_memory(self, data: StyleTransferData) -> Plan:
        """What this run needs at its largest phase, on its device, and what it will do to fit."""
        h = self.hparams
        height, width = max((data.at(p.size).shape for p in self.schedule), key=lambda s: s[0] * s[1])
        optimizers = {p.optimizer for p in self.schedule}
        optimizer = "lbfgs" if "lbfgs" in optimizers else "adam"
        history = max(p.lbfgs_history for p in self.schedule)

        def needs(checkpointing: bool, lbfgs_history: int) -> Estimate:
            return estimate(
                height, width, self.content_layers, self.style_layers,
                style_loss=h.style_loss, pooling=h.pooling, padding=h.padding, optimizer=optimizer,
                lbfgs_history=lbfgs_history, checkpointing=checkpointing,
                precision=str(self.trainer.precision), device=self.trainer.strategy.root_device,
            )  # fmt: skip

        device = self.trainer.strategy.root_device
        free = h.memory_limit * GB if h.memory_limit is not None else free_memory(device)
        plan = choose(needs, free, h.activation_checkpointing, optimizer, history)
        if plan.note:
            print(plan.note)
        return plan

    def check_data(self, data: StyleTransferData, max_steps: int = 1) -> Schedule:
        """Check these settings against loaded images (before any network is built) and return
        the run's schedule: layers and weights for the losses the images give, sizes, init."""
        schedule = Schedule.of(self.hparams, data.long_side, max_steps)
        check_against_data(self.hparams, schedule, data)
        if data.hparams.get("content_masks") is not None and self.hparams.style_loss != "gram":
            raise NSTError(
                "region masks work with model.style_loss gram (guided Gram matrices); set it to gram"
            )
        return schedule

    def _data(self) -> StyleTransferData:
        data = self.pair_data if self.pair_data is not None else self.trainer.datamodule
        if not isinstance(data, StyleTransferData) or data.shape is None:
            raise NSTError("StyleTransfer needs a StyleTransferData datamodule passed to trainer.fit")
        return data

    def _images(self) -> Images:
        """The images of the current phase."""
        return self._data().at(self.schedule[self.phase].size)

    def on_fit_start(self) -> None:
        if prepare(self.device, self.hparams.tf32) and not self.vgg.channels_last:
            self.vgg.use_channels_last()
        # Targets are computed once per run (per phase), under the same autocast as the training
        # step, and kept out of the state dict (they are cheap to recompute, large to store).
        self._compute_targets(self._images())
        # loss/total always, for callbacks that read trainer.callback_metrics without saying so.
        monitored = monitored_losses(self.trainer.callbacks, self.loss_names())
        self._monitored = list(dict.fromkeys(["loss/total", *monitored]))
        if self.loss_scale is not None:  # from a checkpoint, which is loaded onto the CPU
            self.loss_scale = self.loss_scale.to(self.device)
        if self.best is not None:
            self.best, self.best_loss = self.best.to(self.image), self.best_loss.to(self.device)

    def _compute_targets(self, images: Images) -> None:
        h = self.hparams
        key = (
            reuse.weights_identity(h.weights),
            h.pooling,
            h.padding,
            str(self.device),
            self.trainer.precision,
        )
        blend = self._data().blend
        self.targets = compute_targets(
            self.features_of, images, self.content_layers, self.style_layers, blend, key, h.style_loss
        )

    def features_of(self, image: Tensor, make: Callable[[str, Tensor], Any]) -> dict[str, Any]:
        """``make(layer, maps)`` for each layer's VGG feature maps of ``image`` as the targets
        are made: no gradients, the run's precision. Each layer's is made as the layer is
        computed, so that the maps of all layers need never be held at once (at 2048 px that
        would be the largest memory of the run); a None from ``make`` is left out."""
        made: dict[str, Any] = {}

        def each(name: str, maps: Tensor) -> None:
            if (value := make(name, maps)) is not None:
                made[name] = value

        with torch.no_grad(), self.trainer.precision_plugin.forward_context():
            self.vgg(image.to(self.device), each=each, keep=False)
        return made

    # -- optimisation -----------------------------------------------------------------------

    def compute_losses(self, image: Tensor) -> dict[str, Tensor]:
        """Weighted loss terms of ``image``: content, style, tv, total, and style/<layer>."""
        return self.loss_dict(self.weighted_terms(image))

    def weighted_terms(self, image: Tensor) -> Tensor:
        """The loss terms of ``image``, weighted, in the order of ``term_names()``; their sum is
        the total loss. (One stacked tensor rather than a sum of terms: at small sizes and on
        GPUs each extra operation in the graph is a measurable share of a step, forward and back.)"""
        seen = self.as_seen(image)
        made: dict[str, Tensor] = {}  # each layer's terms, made layer by layer (see VGGFeatures.forward)
        self.vgg(seen, each=lambda name, f: made.update(self.layer_terms(name, f)), keep=False)
        return self.weigh(made, seen)

    def layer_terms(self, name: str, features: Tensor) -> dict[str, Tensor]:
        """The unweighted loss terms that layer ``name``'s feature maps make."""
        terms = {}
        if name in self.content_layers:
            terms[f"content/{name}"] = content_loss(features, self.targets.content[name])
        if name in self.style_layers:
            target = self.targets.style[name]
            terms[f"style/{name}"] = self._style_distance(self.hparams.style_loss, features, target)
        return terms

    def as_seen(self, image: Tensor) -> Tensor:
        """``image`` as the losses see it."""
        if not self.grey:
            return image
        # A luminance-only run sees its image through the orthogonal projection onto grey
        # (each pixel's channel mean). Its gradient is then grey too, so an image that
        # starts grey stays grey under every optimizer step, exactly, with no projection
        # afterwards that would leave L-BFGS's curvature pairs describing steps not taken.
        return image.mean(dim=1, keepdim=True).expand_as(image)

    def weigh(self, made: dict[str, Tensor], seen: Tensor) -> Tensor:
        """The terms ``made`` by layer_terms (and the image's TV, as the phase asks), weighted,
        in the order of ``term_names()``."""
        names, weights = self._term_weights()
        terms = torch.stack([made[name] if name != "tv" else tv_loss(seen) for name in names])
        return terms * weights

    def term_names(self) -> list[str]:
        """The loss terms of this phase: ``content/<layer>``, ``style/<layer>`` and ``tv``."""
        return self._term_weights()[0]

    def _term_weights(self) -> tuple[list[str], Tensor]:
        key = (self.phase, self.has_content, self.has_style, self.image.device)
        if self._weights_of is None or self._weights_of[0] != key:
            phase = self.schedule[self.phase]
            names = [f"content/{n}" for n in self.content_layers]
            weights = [phase.content_weight] * len(names)
            for name, weight in zip(self.style_layers, self.style_layer_weights, strict=False):
                names.append(f"style/{name}")
                weights.append(phase.style_weight * weight)
            if phase.tv_weight:
                names.append("tv")
                weights.append(phase.tv_weight)
            self._weights_of = (key, names, torch.tensor(weights, device=self.image.device))
        return self._weights_of[1], self._weights_of[2]

    def loss_dict(self, weighted: Tensor) -> dict[str, Tensor]:
        """``weighted`` (from weighted_terms) as named losses: content, style, tv, total and
        style/<layer> (the curves' names, without ``loss/``)."""
        parts = dict(zip(self.term_names(), weighted.unbind(), strict=True))
        return summed(parts, weighted.sum(), weighted.new_zeros(()))

    def _style_distance(self, kind: str, features: Tensor, target: dict[str, Tensor]) -> Tensor:
        if self.targets.masks is not None:  # regions painted separately (nst.numerics.regions)
            return guided_distance(
                features, target["regions"], self.targets.masks_at(features), self.targets.shares
            )
        return distance(kind, features, target)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """One optimizer step: as many evaluations of the loss as the optimizer asks for (one,
        but for L-BFGS's line search), then the projection into [0, 1]. Returns the loss the
        optimizer minimises (see ``scaled``) at the image the step started from.

        The module optimises by hand (``automatic_optimization`` is off), as a step here is one
        optimizer step on one parameter: Lightning's automatic loop wraps each evaluation in
        closure and result objects and calls one more hook on every callback, a share of a small
        picture's step on a CPU and more of one on a GPU (see step_by_hand)."""
        optimizer = self.optimizers()
        # The image stays in [0, 1] by projection after every step (clamping), not by a sigmoid
        # reparametrisation, which would flatten gradients at saturated pixels; L-BFGS is told
        # the step the image took (see nst.numerics.projection).
        before = self.image.detach().clone() if self.schedule[self.phase].optimizer == "lbfgs" else None
        loss = step_by_hand(self, optimizer, self.image, self._loss, self.free_held_pixels)
        project(self.image, optimizer.optimizer, before)
        return loss

    def _loss(self) -> Tensor:
        """What the optimizer minimises at the current image (see scaled and restart_due)."""
        weighted = self.weighted_terms(self.image)
        total = weighted.sum()
        restart = self.restart_due(total)
        if self._metrics_written_this_step() and self.logged_step != self.global_step:
            self._log_losses(weighted, total, restart)
        loss = self.scaled(total)
        return loss * 0.0 if restart else loss

    def _log_losses(self, weighted: Tensor, total: Tensor, restart: bool) -> None:
        """Hand this step's losses to the host in one transfer and write them to the loggers.

        Lightning's ``self.log`` took ~1 ms a value a step (it builds a metric object for each
        value in each epoch, and every step was an epoch then): several percent of a step at
        small sizes and on GPUs. So the curves go straight to the loggers, at the steps
        Lightning would write them, and the values that callbacks monitor (and loss/total)
        straight into ``trainer.callback_metrics``, the dict that ``self.log`` fills and
        callbacks read. The progress bar and the studio read ``logged``."""
        *values, value, best = torch.cat(
            [weighted.detach(), total.detach()[None], self.best_loss[None]]
        ).tolist()
        parts = dict(zip(self.term_names(), values, strict=True))
        logged = {f"loss/{k}": v for k, v in (summed(parts, value, 0.0) | {"best": best}).items()}
        if not restart and not math.isfinite(logged["loss/total"]):
            raise self._diverged("loss")
        if self.restarts:
            logged["lbfgs/restarts"] = float(self.restarts)
        self.logged, self.logged_step = logged, self.global_step
        every = self.trainer.log_every_n_steps
        if every > 0 and (self.global_step + 1) % every == 0:
            self._writer.write(self.loggers, logged, self.global_step)
        self.trainer.callback_metrics.update({key: torch.tensor(logged[key]) for key in self._monitored})

    def restart_due(self, total: Tensor) -> bool:
        """Keep the best image; if L-BFGS has leapt far above it, start L-BFGS again from there.

        A restart puts the best image back and clears L-BFGS's history. This step's gradient is
        then left out (the step returns a zero gradient, on which L-BFGS makes no step), and the
        next step starts L-BFGS afresh from the best image, as a run's first step does."""
        self.keep_if_best(total)
        phase = self.schedule[self.phase]
        threshold = self.hparams.lbfgs_restart
        if phase.optimizer != "lbfgs" or threshold is None or self.hparams.line_search != "none":
            return False
        # L-BFGS reads each step's loss on the host anyway, so this comparison costs no extra sync.
        value, best = float(total.detach()), float(self.best_loss)
        if (value == value and value <= threshold * best) or not math.isfinite(best):
            return False  # no leap; or nothing good to go back to
        optimizer = self._own_lbfgs()
        if optimizer is None:
            return False
        with torch.no_grad():
            self.image.copy_(self.best)
        optimizer.state[self.image]["n_iter"] = 0  # its next step is a first step
        self.restarts += 1
        return True

    def keep_if_best(self, total: Tensor) -> None:
        loss = total.detach().float()
        image = self.image.detach()
        if self.best is None or self.best.shape != image.shape:
            self.best, self.best_loss = image.clone(), torch.where(torch.isnan(loss), torch.inf, loss)
            return
        better = loss < self.best_loss  # a NaN is never better
        torch.where(better, image, self.best, out=self.best)
        torch.where(better, loss, self.best_loss, out=self.best_loss)

    def result(self) -> Tensor:
        """The image the run hands back: the best one seen by total loss, the current one
        included. Its losses are kept in ``result_losses`` (what final/* and result.json report)."""
        image = self.image.detach()
        with torch.no_grad(), self.trainer.precision_plugin.forward_context():
            losses = self.compute_losses(image)
            if (
                self.best is not None
                and self.best.shape == image.shape
                and bool(self.best_loss < losses["total"])
            ):
                image = self.best
                losses = self.compute_losses(image)
        self.result_losses = {k: float(losses[k]) for k in ("total", "content", "style", "tv")}
        return image

    def _own_lbfgs(self) -> torch.optim.LBFGS | None:
        for optimizer in self.trainer.optimizers:
            for inner in getattr(optimizer, "optimizers", [optimizer]):  # one per picture when batched
                if isinstance(inner, torch.optim.LBFGS) and inner.param_groups[0]["params"][0] is self.image:
                    return inner
        return None

    def scaled(self, total: Tensor) -> Tensor:
        """What the optimizer minimises: ``total`` in units of its value at the phase's first step."""
        # The loss weights keep their meaning (and the logged losses their values), but a problem
        # of small scale, such as random VGG weights, a large image (whose losses are means
        # over more pixels) or a phase that starts near its optimum, no longer falls under the
        # absolute thresholds inside the optimizers: L-BFGS keeps no curvature pair whose
        # s·y is under 1e-10, and Adam's eps of 1e-8 swamps gradients of that size.
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
            raise self._diverged(what)

    def _diverged(self, what: str) -> NSTError:
        return NSTError(
            f"the {what} became NaN or infinite by step {self.global_step}: the optimisation diverged; "
            "lower model.lr or the loss weights (checkpoints from before are kept)"
        )

    def _metrics_written_this_step(self) -> bool:
        # Losses reach the host (a sync) only on the steps whose metrics the loggers write
        # (multiples of trainer.log_every_n_steps), plus the first and the last step for the
        # progress bar, which updates with them.
        trainer = self.trainer
        step = self.global_step + 1
        every = trainer.log_every_n_steps
        return (every > 0 and step % every == 0) or step in (1, trainer.max_steps)

    def free_held_pixels(self) -> None:
        """After each backward pass: L-BFGS leaves out the pixels held at 0 or 1 (free_gradient)."""
        if self.schedule[self.phase].optimizer == "lbfgs":
            free_gradient(self.image)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        phase = self.schedule[self.phase]
        if phase.optimizer == "adam":
            return torch.optim.Adam([self.image], lr=phase.lr)
        # max_iter=1: one function evaluation per Lightning step, so trainer.max_steps counts
        # iterations; L-BFGS keeps its history in the optimizer state across steps.
        # No tolerances (as jcjohnson's neural-style sets tolX = tolFun = -1): torch's defaults
        # are absolute, and a loss of small scale (a large image, whose losses are means over
        # more pixels, or an upscaled phase already near its optimum) has every pixel's gradient
        # under 1e-7, at which L-BFGS returns without a step, on every step, silently.
        history = (
            phase.lbfgs_history
            if self.memory is None
            else min(phase.lbfgs_history, self.memory.lbfgs_history)
        )
        return torch.optim.LBFGS(
            [self.image],
            lr=phase.lr,
            max_iter=1,
            history_size=history,
            tolerance_grad=0,
            tolerance_change=0,
            line_search_fn=None if self.hparams.line_search == "none" else self.hparams.line_search,
        )

    # -- phases -----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        if self.global_step == 0:
            self._mark_phase(0, self.phase)
        # A resumed run's optimizer state comes back with the learning rate it was saved with;
        # the lr asked for now applies from here on (unchanged, this changes nothing).
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.schedule[self.phase].lr

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # A phase begins before its first step, so a checkpoint taken at the end of a phase
        # holds that phase's image and optimizer, and a resumed run crosses the boundary
        # exactly where an uninterrupted one does.
        if (phase := self.schedule.index_at(self.global_step)) != self.phase:
            self._enter_phase(phase)

    def on_train_end(self) -> None:
        if self.global_step > 0:
            self._mark_phase(self.global_step - 1, self.phase)

    def _enter_phase(self, phase: int) -> None:
        step = self.global_step
        self._mark_phase(step - 1, self.phase)
        # The next phase starts from the best image of this one (its last, unless it leapt away),
        # judged with this phase's weights and targets.
        best = self.result().to(self.image.dtype)
        self.phase = phase
        images = self._images()
        with torch.no_grad():
            image = best
            full = image.dtype in (torch.float32, torch.float64)  # 64-true keeps its precision
            start = resize_tensor(image if full else image.float(), images.shape).to(image.dtype)
        self.image = nn.Parameter(start.contiguous())
        self.loss_scale = None
        self.best = self.best_loss = None  # the best of each phase, at its size
        self._compute_targets(images)
        # A new optimizer for the new image: Adam's moments and L-BFGS's curvature pairs
        # belong to the old size, and the phase may choose its own optimizer and lr.
        self.trainer.strategy.setup_optimizers(self.trainer)
        self._mark_phase(step, phase)

    def _mark_phase(self, step: int, phase: int) -> None:
        # Written at each phase's first and last step, so that TensorBoard draws the phases of
        # a multi-scale run as an exact staircase beside the (continuous) loss curves.
        if self.schedule.multi_scale and self.logger is not None:
            self.logger.log_metrics({"phase/size": float(self.schedule[phase].size)}, step=step)

    # -- checkpoints ------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("vgg.")}
        checkpoint["nst_phase"] = {"index": self.phase, "of": len(self.schedule)}
        checkpoint["nst_loss_scale"] = self.loss_scale
        checkpoint["nst_best"] = {"image": self.best, "loss": self.best_loss, "restarts": self.restarts}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        unpack_optimizer_lists(checkpoint)  # before Lightning hands the states to the optimizers
        steps_counted_by_hand(checkpoint)  # before Lightning restores its loops from it
        saved = checkpoint.get("state_dict", {}).get("image")
        if saved is None:
            raise NSTError("the checkpoint holds no image: it was not written by nst")
        if self.image is None:  # loading outside fit: take the shape from the checkpoint
            self.image = nn.Parameter(torch.empty_like(saved))
            return
        data = self._data()
        check_same_run(checkpoint, dict(self.hparams), dict(data.hparams))
        phase = checkpoint.get("nst_phase", {}).get("index", 0)
        if not 0 <= phase < len(self.schedule):
            raise NSTError(
                f"the checkpoint was taken in phase {phase + 1}, which this run does not have: "
                "resume with the model.phases the run was started with"
            )
        self.phase = phase
        # A checkpoint from before the loss was scaled holds an optimizer state in plain units.
        self.loss_scale = checkpoint.get("nst_loss_scale", torch.ones(()))
        best = checkpoint.get("nst_best") or {}
        self.best, self.best_loss = best.get("image"), best.get("loss")
        self.restarts = best.get("restarts", 0)
        shape = (*self.image.shape[:-2], *self._images().shape)
        if tuple(saved.shape) != shape:
            raise NSTError(
                f"the checkpoint's image is {_size(saved)} px but this run's is {shape[-1]}×{shape[-2]} px: "
                "resume with the data.size the run was started with"
            )
        # Shaped and typed as saved: a later phase's size, and a 64-true run's float64, which
        # the float32 image made in setup would round (the module is converted only later).
        self.image = nn.Parameter(torch.empty_like(saved, device=self.image.device))


def step_by_hand(
    module: LightningModule,
    optimizer: Any,
    image: Tensor,
    loss: Callable[[], Tensor],
    after_backward: Callable[[], None],
) -> Tensor:
    """One step of ``optimizer`` (the module's LightningOptimizer), taken by hand, as Lightning's
    automatic loop would take it: ``loss()`` under the precision's autocast, as many times as the
    optimizer evaluates it, each backward pass followed by ``after_backward()``, and the backward
    pass and the optimizer's arithmetic outside autocast (on ``image``'s device). Returns the loss
    at the start of the step. (``after_backward`` is called here, not from the module's
    on_after_backward hook: Lightning's call of a hook cost 0.06-0.1 ms a step; see nst.run.lightning_private.)"""

    def closure() -> Tensor:
        with module.trainer.precision_plugin.forward_context():
            value = loss()
        optimizer.zero_grad()
        module.manual_backward(value)
        after_backward()
        return value.detach()

    with full_precision(image):
        return optimizer.step(closure=closure)


def summed(parts: dict[str, T], total: T, zero: T) -> dict[str, T]:
    """Weighted loss terms (``content/<layer>``, ``style/<layer>``, ``tv``) as the curves name
    them: content, style, tv, total and style/<layer>; as tensors or as numbers."""
    content = sum((v for k, v in parts.items() if k.startswith("content/")), zero)
    per_layer = {k: v for k, v in parts.items() if k.startswith("style/")}
    style = sum(per_layer.values(), zero)
    return {"content": content, "style": style, "tv": parts.get("tv", zero), "total": total, **per_layer}


def initial_image(init: str | None, images: Images) -> Tensor:
    """The starting image at the size of ``images``: ``init`` as model.init takes it."""
    init = init or ("content" if images.content is not None else "noise")
    height, width = images.shape
    if init == "content":
        return images.content.clone()
    if init == "noise":
        return torch.rand(1, 3, height, width)
    if init == "style":
        return resize_tensor(images.style, (height, width))
    return to_tensor(read_image(init, "init image").resize((width, height), Image.Resampling.BICUBIC))


def _size(image: Tensor) -> str:
    return f"{image.shape[-1]}×{image.shape[-2]}"
