"""The LightningModule: pictures painted against a frozen VGG19, through Lightning's loop.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).
The module drives paintings (nst.run.painting: the pixels, their optimizer, the best image) one
step at a time: it builds the network and each phase's objective (nst.numerics.objective), runs
one VGG pass for all its paintings, takes each step by hand and says what goes into a checkpoint.
A run has one painting; pictures optimised together have one each (nst.run.pictures). The phases
are in nst.run.schedule, the rules for settings in nst.run.checks and what a resume may not
change in nst.run.identity.
"""

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, seed_everything
from torch import Tensor

from nst.numerics import reuse
from nst.numerics.colour import luminance
from nst.numerics.memory import Plan, plan
from nst.numerics.objective import Term
from nst.numerics.targets import Images
from nst.numerics.vgg import VGGFeatures, canonical_layers, depth_for
from nst.run.checkpoint_files import unpack_optimizer_lists, without_old_callback_state
from nst.run.checks import check_against_data, check_length, check_model_options, check_precision
from nst.run.data import StyleTransferData
from nst.run.identity import check_same_run
from nst.run.lightning_private import HookNameSetDirectly, publish_metrics, steps_counted_by_hand
from nst.run.objectives import Objectives
from nst.run.painting import Painting, initial_image
from nst.run.paintings import Paintings
from nst.run.pictures import Curves, images_of, names_of, seed_of
from nst.run.schedule import Phase, Schedule
from nst.run.speed import prepare
from nst.run.stepping import step_by_hand
from nst.run.tensorboard import monitored_losses


class StyleTransfer(HookNameSetDirectly, LightningModule):
    """Gatys-style optimisation of an image (or of several pictures together, one VGG pass for
    all, when the datamodule holds several: see nst.run.pictures) against content and style targets.

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
        # Each picture's loggers get these with its images' settings (nst.run.pictures.Curves):
        # with several pictures, Lightning would give every one of them the same.
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False  # see training_step
        # The tutorial's flat names (conv_4) become the canonical ones (conv2_2) they stand for.
        # (Set on hparams itself: under LightningCLI they are the config's, not these arguments.)
        for option in ("content_layers", "style_layers"):
            self.hparams[option] = canonical_layers(self.hparams[option], f"model.{option}")
        check_model_options(self.hparams)
        # The frozen VGG19 is rebuilt from `weights`, never stored: checkpoints hold the images only.
        self.strict_loading = False
        self.vgg: VGGFeatures | None = None
        self.paintings = Paintings()  # one per picture, made in setup (or from a checkpoint)
        self.schedule: Schedule | None = None  # set in setup, when the result's size is known
        # The layers of the losses the images give (set in setup: no style image makes a
        # reconstruction; no content image, a texture).
        self.content_layers: list[str] = list(self.hparams.content_layers)
        self.style_layers: list[str] = list(self.hparams.style_layers)
        self.memory: Plan | None = None  # what the run needs and does to fit (see setup)
        self._monitored: list[str] = []  # the losses that callbacks monitor (see on_fit_start)
        self._curves: Curves | None = None  # what the loggers are told (see setup)
        self._objectives: Objectives | None = None  # each picture's objective (see on_fit_start)
        self._published = -1  # the last step whose losses were handed on (see _publish)

    @property
    def painting(self) -> Painting:
        """The picture being painted (the first, where several are painted together)."""
        return self.paintings[0]

    @property
    def image(self) -> Tensor:
        return self.painting.image

    @property
    def phase(self) -> int:
        return self.painting.phase

    @property
    def layers(self) -> list[str]:
        """Every VGG19 layer a loss of this run reads."""
        return [*self.content_layers, *self.style_layers]

    def loss_names(self) -> list[str]:
        """What this run logs: ``loss/total``, ``loss/best``, ``loss/style/conv1_1``, …"""
        further = [term.name for term in self.extra_terms(0)]
        per_layer = [f"style/{name}" for name in self.style_layers]
        return [f"loss/{term}" for term in ("total", "content", "style", "tv", "best", *further, *per_layer)]

    def extra_terms(self, index: int) -> list[Term]:
        """Terms of picture ``index``'s objective besides content, style and TV: none here; a
        subclass's, which the objective takes as they are (see nst.numerics.objective.Term)."""
        return []

    # -- building ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Built here rather than in __init__ or configure_model (which load_from_checkpoint
        # also calls), so that reading an image out of a checkpoint needs no weights.
        h, pictures = self.hparams, images_of(self.trainer.datamodule)
        for data in pictures:
            self.schedule = self.check_data(data, self.trainer.max_steps)
        check_length(h, self.trainer.max_steps)
        check_precision(self.schedule, str(self.trainer.precision))
        self.content_layers = h.content_layers if pictures[0].content is not None else []
        self.style_layers = h.style_layers if pictures[0].style is not None else []
        if self.vgg is None:
            if len(pictures) == 1:  # pictures together come out as alone: no shortened history
                phases = [(pictures[0].at(p.size).shape, p.optimizer, p.lbfgs_history) for p in self.schedule]
                device, precision = self.trainer.strategy.root_device, str(self.trainer.precision)
                self.memory = plan(h, phases, self.content_layers, self.style_layers, precision, device)
            stack = reuse.features(depth_for(self.layers), h.pooling, h.weights, h.padding)
            checkpointing = self.memory.checkpointing if self.memory else bool(h.activation_checkpointing)
            self.vgg = VGGFeatures(self.layers, stack, checkpointing=checkpointing)
        if not len(self.paintings):
            starts = [self._start(data, seed_of(self.trainer.datamodule)) for data in pictures]
            self.paintings = Paintings(starts, names_of(self.trainer.datamodule))
        self._curves = Curves(self.trainer, dict(self.hparams_initial), pictures)

    def _start(self, data: StyleTransferData, seed: int | None) -> Painting:
        if seed is not None:  # with several pictures: a noise start as the picture's own run draws it
            seed_everything(seed, workers=True, verbose=False)
        start = self.initial(data.at(self.schedule[0].size))
        # A luminance-only run optimises a grey image: its colours come from the content at the end.
        start = luminance(start) if data.colour_content is not None else start
        h, history = self.hparams, self.memory.lbfgs_history if self.memory else None
        options = {"lbfgs_restart": h.lbfgs_restart, "line_search": h.line_search, "lbfgs_history": history}
        return Painting(start, self.schedule, **options)

    def initial(self, images: Images) -> Tensor:
        """The image a picture starts from, at the size of ``images``: model.init's (a subclass
        may start elsewhere, as a video frame starts from the frame before, warped)."""
        return initial_image(self.hparams.init, images)

    def check_data(self, data: StyleTransferData, max_steps: int = 1) -> Schedule:
        """Check these settings against loaded images (before any network is built) and return
        the run's schedule: layers and weights for the losses the images give, sizes, init."""
        schedule = Schedule.of(self.hparams, data.long_side, max_steps)
        check_against_data(self.hparams, schedule, data)
        return schedule

    def on_fit_start(self) -> None:
        if prepare(self.device, self.hparams.tf32) and not self.vgg.channels_last:
            self.vgg.use_channels_last()
        precision = (self.trainer.precision, self.trainer.precision_plugin.forward_context)
        self._objectives = Objectives(
            self.hparams, self.vgg, self.content_layers, self.style_layers, images_of(self.trainer.datamodule),
            self.device, precision, self.extra_terms,
        )  # fmt: skip
        for i, painting in enumerate(self.paintings):
            painting.objective = self._objectives.of(i, painting.settings)
            painting.on_device(self.device)  # what a checkpoint restored, on the CPU
        # loss/total always, for callbacks that read trainer.callback_metrics without saying so.
        monitored = monitored_losses(self.trainer.callbacks, self.loss_names())
        self._monitored = list(dict.fromkeys(["loss/total", *monitored]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.paintings.make_optimizer()

    # -- a step -----------------------------------------------------------------------------

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """One optimizer step of every painting: as many evaluations of the loss as the
        optimizer asks for (one, but for L-BFGS's line search), then each image's projection
        into [0, 1]. Returns the loss the optimizers minimise at the images the step started from.

        The module optimises by hand (``automatic_optimization`` is off), as a step here is one
        optimizer step on the images: Lightning's automatic loop wraps each evaluation in closure
        and result objects and calls one more hook on every callback, a share of a small
        picture's step on a CPU and more of one on a GPU (see step_by_hand)."""
        paintings = self.paintings
        before = paintings.before_step()
        loss = step_by_hand(self, self.optimizers(), paintings[0].image, self._loss, paintings.after_backward)
        paintings.after_step(before)
        return loss

    def _loss(self) -> Tensor:
        step = self.global_step
        # Losses reach the host (a sync) only on the steps whose metrics the loggers write
        # (multiples of trainer.log_every_n_steps), plus the first and the last step for the
        # progress bar, which updates with them.
        every, last = self.trainer.log_every_n_steps, self.trainer.max_steps
        shown = (every > 0 and (step + 1) % every == 0) or step + 1 in (1, last)
        loss = self.paintings.minimised(self.vgg, step if shown else None)
        if shown and self._published != step:  # once a step, whatever L-BFGS's line search evaluates
            self._publish(step)
            self._published = step
        return loss

    def _publish(self, step: int) -> None:
        """Hand the losses just kept to each picture's curves, and those that callbacks monitor
        to them. (Not ``self.log``: it took ~1 ms a value a step, several percent of a step at
        small sizes and on GPUs; see nst.run.lightning_private.)"""
        self._curves.losses(self.trainer, [painting.losses for painting in self.paintings], step)
        losses = self.painting.losses
        publish_metrics(self.trainer, {key: losses[key] for key in self._monitored if key in losses})

    # -- results ----------------------------------------------------------------------------

    def result(self, index: int = 0) -> Tensor:
        """The image picture ``index`` hands back: the best one seen by total loss, the current
        one included (its losses: the painting's ``result_losses``)."""
        painting = self.paintings[index]
        with torch.no_grad(), self.trainer.precision_plugin.forward_context():
            return painting.result(lambda image: painting.objective.evaluate(self.vgg, image))

    def check_finite(self, index: int | None = None, value: Tensor | None = None) -> None:
        """Stop a diverged run with a reason, naming the picture where there are several."""
        self.paintings.check_finite(self.global_step, index, value)

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
        # holds that phase's images and optimizers, and a resumed run crosses the boundary
        # exactly where an uninterrupted one does.
        if (phase := self.schedule.index_at(self.global_step)) != self.phase:
            self._enter_phase(phase)

    def on_train_end(self) -> None:
        if self.global_step > 0:
            self._mark_phase(self.global_step - 1, self.phase)

    def _enter_phase(self, phase: int) -> None:
        step, pictures = self.global_step, images_of(self.trainer.datamodule)
        self._mark_phase(step - 1, self.phase)
        for i, painting in enumerate(self.paintings):
            # The next phase starts from the best image of this one, judged by this one's objective.
            painting.enter_phase(phase, pictures[i].at(self.schedule[phase].size).shape, self.result(i))
            painting.objective = self._objectives.of(i, painting.settings)
        # New optimizers for the new images: Adam's moments and L-BFGS's curvature pairs belong
        # to the old size, and the phase may choose its own optimizer and lr.
        self.trainer.strategy.setup_optimizers(self.trainer)
        self._mark_phase(step, phase)

    def _mark_phase(self, step: int, phase: int) -> None:
        # Written at each phase's first and last step, so that TensorBoard draws the phases of
        # a multi-scale run as an exact staircase beside the (continuous) loss curves.
        if self.schedule.multi_scale:
            self._curves.phase(self.trainer, self.schedule[phase].size, step)

    # -- checkpoints ------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        data = [dict(d.hparams) for d in images_of(self.trainer.datamodule)]
        self.paintings.save_parts(checkpoint, dict(self.hparams), data)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        steps_counted_by_hand(checkpoint)  # before Lightning restores its loops from it
        without_old_callback_state(checkpoint)  # before Lightning hands callbacks their states

        def load(painting: Painting, part: dict[str, Any], index: int) -> None:
            data = images_of(self.trainer.datamodule)[index]
            check_same_run(part, dict(self.hparams), dict(data.hparams))
            painting.load_checkpoint_state(part, lambda phase: data.at(self.schedule[phase].size).shape)

        self.paintings.load_parts(checkpoint, load, unpack_optimizer_lists, prefix="paintings.")
