"""A picture being painted: its pixels, the phase it is in, its optimizer, the best image seen,
and what a checkpoint keeps of it. Plain PyTorch: nst.run.module drives one or several through
Lightning's loop, one VGG pass for all of them, each judged by its own objective
(nst.numerics.objective)."""

import math
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from nst.errors import NSTError
from nst.images import read_image, resize_tensor, to_tensor
from nst.numerics.objective import Objective, summed
from nst.numerics.projection import free_gradient, project
from nst.numerics.targets import Images
from nst.run.schedule import PhaseSettings, Schedule


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


class Painting(nn.Module):
    """The image (a parameter in [0, 1]) and the state of its optimisation.

    Args:
        start: The starting image, [1, 3, H, W] at the first phase's size.
        schedule: The run's phases (sizes, lengths, optimizers).
        lbfgs_restart: When the loss rises above this many times the best so far (or becomes
            NaN), L-BFGS starts again from the best image (None: never).
        line_search: ``none`` or ``strong_wolfe``, as torch's L-BFGS takes it.
        lbfgs_history: At most this long an L-BFGS history, whatever a phase asks for (what
            the run's memory allows; None: as asked).
    """

    def __init__(
        self,
        start: Tensor,
        schedule: Schedule | None = None,
        *,
        lbfgs_restart: float | None = 100.0,
        line_search: str = "none",
        lbfgs_history: int | None = None,
    ) -> None:
        super().__init__()
        self.image = nn.Parameter(start.contiguous())
        self.schedule = schedule or Schedule([], multi_scale=False)  # none: only holding an image
        self.phase = 0  # index into the schedule
        self.lbfgs_restart, self.line_search, self.history_cap = lbfgs_restart, line_search, lbfgs_history
        self.objective: Objective | None = None  # the phase's, set by whoever drives the painting
        self.optimizer: torch.optim.Optimizer | None = None  # the phase's (make_optimizer)
        # What the optimizer sees is the loss divided by its value at the first step of the
        # phase (see scaled); None until that step.
        self.loss_scale: Tensor | None = None
        # The best image of the phase by total loss, kept on the device and updated without a
        # host sync; it is what the run hands back (see result()).
        self.best: Tensor | None = None
        self.best_loss: Tensor | None = None
        self.restarts = 0
        # The losses of the last step whose losses reached the host (see keep_losses), weighted
        # as on the curves: what the loggers, the progress bar, the studio and the API show.
        self.losses: dict[str, float] = {}
        self.losses_step = -1
        self.result_losses: dict[str, float] = {}  # the losses of what result() last handed back

    @property
    def settings(self) -> PhaseSettings:
        """The current phase's settings."""
        return self.schedule[self.phase]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimizer for the image, as the current phase asks for it."""
        phase = self.settings
        if phase.optimizer == "adam":
            self.optimizer = torch.optim.Adam([self.image], lr=phase.lr)
            return self.optimizer
        # max_iter=1: one function evaluation per step, so trainer.max_steps counts iterations;
        # L-BFGS keeps its history in the optimizer state across steps. No tolerances (as
        # jcjohnson's neural-style sets tolX = tolFun = -1): torch's defaults are absolute, and a
        # loss of small scale (a large image, whose losses are means over more pixels, or an
        # upscaled phase already near its optimum) has every pixel's gradient under 1e-7, at
        # which L-BFGS returns without a step, on every step, silently.
        history = (
            phase.lbfgs_history if self.history_cap is None else min(phase.lbfgs_history, self.history_cap)
        )
        self.optimizer = torch.optim.LBFGS(
            [self.image],
            lr=phase.lr,
            max_iter=1,
            history_size=history,
            tolerance_grad=0,
            tolerance_change=0,
            line_search_fn=None if self.line_search == "none" else self.line_search,
        )
        return self.optimizer

    # -- a step -----------------------------------------------------------------------------

    def before_step(self) -> Tensor | None:
        """What ``after_step`` needs to tell L-BFGS the step the image took (Adam needs nothing)."""
        return self.image.detach().clone() if self.settings.optimizer == "lbfgs" else None

    def after_backward(self) -> None:
        """After each backward pass: L-BFGS leaves out the pixels held at 0 or 1 (free_gradient)."""
        if self.settings.optimizer == "lbfgs":
            free_gradient(self.image)

    def after_step(self, before: Tensor | None) -> None:
        """The image back into [0, 1] by projection (not a sigmoid, which would flatten the
        gradients of saturated pixels), and L-BFGS told the step taken (nst.numerics.projection)."""
        project(self.image, self.optimizer, before)

    def minimised(self, weighted: Tensor, keep_losses_at: int | None = None) -> Tensor:
        """What the optimizer minimises, given the image's weighted terms: the total loss in
        units of the phase's first (see scaled), or nothing after a restart (see restart_due).
        With ``keep_losses_at`` (the step), the losses are also kept on the host."""
        total = weighted.sum()
        restart = self.restart_due(total)
        if keep_losses_at is not None and self.losses_step != keep_losses_at:
            self.keep_losses(weighted, total, restart, keep_losses_at)
        loss = self.scaled(total)
        return loss * 0.0 if restart else loss

    def keep_losses(self, weighted: Tensor, total: Tensor, restart: bool, step: int) -> None:
        """This step's losses, handed to the host in one transfer, as the curves name them."""
        *values, value, best = torch.cat(
            [weighted.detach(), total.detach()[None], self.best_loss[None]]
        ).tolist()
        parts = dict(zip(self.objective.names, values, strict=True))
        losses = {f"loss/{k}": v for k, v in (summed(parts, value, 0.0) | {"best": best}).items()}
        if not restart and not math.isfinite(losses["loss/total"]):
            raise self.diverged("loss", step)
        if self.restarts:
            losses["lbfgs/restarts"] = float(self.restarts)
        self.losses, self.losses_step = losses, step

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

    def restart_due(self, total: Tensor) -> bool:
        """Keep the best image; if L-BFGS has leapt far above it, start L-BFGS again from there.

        A restart puts the best image back and clears L-BFGS's history. This step's gradient is
        then left out (the step minimises a zero loss, on which L-BFGS makes no step), and the
        next step starts L-BFGS afresh from the best image, as a run's first step does."""
        self.keep_if_best(total)
        threshold = self.lbfgs_restart
        if self.settings.optimizer != "lbfgs" or threshold is None or self.line_search != "none":
            return False
        # L-BFGS reads each step's loss on the host anyway, so this comparison costs no extra sync.
        value, best = float(total.detach()), float(self.best_loss)
        if (value == value and value <= threshold * best) or not math.isfinite(best):
            return False  # no leap; or nothing good to go back to
        if not isinstance(self.optimizer, torch.optim.LBFGS):
            return False
        with torch.no_grad():
            self.image.copy_(self.best)
        self.optimizer.state[self.image]["n_iter"] = 0  # its next step is a first step
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

    # -- results and phases -----------------------------------------------------------------

    def result(self, evaluate: Callable[[Tensor], Tensor]) -> Tensor:
        """The image to hand back: the best one seen by total loss, the current one included;
        ``evaluate(image)`` gives an image's weighted terms. Its losses are kept in
        ``result_losses`` (what final/* and result.json report)."""
        image = self.image.detach()
        losses = self.objective.losses(evaluate(image))
        if (
            self.best is not None
            and self.best.shape == image.shape
            and bool(self.best_loss < losses["total"])
        ):
            image = self.best
            losses = self.objective.losses(evaluate(image))
        self.result_losses = {k: float(losses[k]) for k in self.objective.summary}
        return image

    def enter_phase(self, phase: int, shape: tuple[int, int], best: Tensor) -> None:
        """Start phase ``phase`` at ``shape`` (height, width) from ``best``, this phase's result
        (see result). The new phase's objective and optimizer are the driver's to set."""
        best = best.to(self.image.dtype)
        self.phase = phase
        with torch.no_grad():
            full = best.dtype in (torch.float32, torch.float64)  # 64-true keeps its precision
            start = resize_tensor(best if full else best.float(), shape).to(best.dtype)
        self.image = nn.Parameter(start.contiguous())
        self.loss_scale = None
        self.best = self.best_loss = None  # the best of each phase, at its size
        self.objective = self.optimizer = None

    def on_device(self, device: torch.device) -> None:
        """Bring what a checkpoint restored (on the CPU) to ``device``."""
        if self.loss_scale is not None:
            self.loss_scale = self.loss_scale.to(device)
        if self.best is not None:
            self.best, self.best_loss = self.best.to(self.image), self.best_loss.to(device)

    def check_finite(self, step: int, value: Tensor | None = None, what: str = "image") -> None:
        """Stop a diverged run with a reason. Checked where values reach the host anyway
        (logged steps, checkpoints, the final image) rather than with a sync every step."""
        value = self.image if value is None else value
        if not torch.isfinite(value).all():
            raise self.diverged(what, step)

    @staticmethod
    def diverged(what: str, step: int) -> NSTError:
        return NSTError(
            f"the {what} became NaN or infinite by step {step}: the optimisation diverged; "
            "lower model.lr or the loss weights (checkpoints from before are kept)"
        )

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the painting besides its image and optimizer state."""
        return {
            "nst_phase": {"index": self.phase, "of": len(self.schedule)},
            "nst_loss_scale": self.loss_scale,
            "nst_best": {"image": self.best, "loss": self.best_loss, "restarts": self.restarts},
        }

    def load_checkpoint_state(
        self, checkpoint: dict[str, Any], shape_at: Callable[[int], tuple[int, int]]
    ) -> None:
        """Continue from ``checkpoint`` (one picture's, as checkpoint_state wrote it, with its
        image), whose image must have the shape (height, width) ``shape_at`` gives its phase:
        the image is made anew in the checkpoint's shape and dtype, for Lightning to load its
        values into."""
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
        saved = checkpoint["state_dict"]["image"]
        wanted = (*self.image.shape[:-2], *shape_at(phase))
        if tuple(saved.shape) != wanted:
            raise NSTError(
                f"the checkpoint's image is {saved.shape[-1]}×{saved.shape[-2]} px but this run's is "
                f"{wanted[-1]}×{wanted[-2]} px: resume with the data.size the run was started with"
            )
        # Shaped and typed as saved: a later phase's size, and a 64-true run's float64, which
        # the float32 image made at the start would round (the module is converted only later).
        self.image = nn.Parameter(torch.empty_like(saved, device=self.image.device))
