"""The progress bar of a run: one bar over all its steps, with the losses."""

import math
from time import monotonic

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

REDRAW_S = 0.1  # the progress bar's fastest redraw, as tqdm's own mininterval


class StepProgressBar(TQDMProgressBar):
    """One bar over all steps of the run, with the time left and the losses.

    A run is one endless Lightning epoch (see nst.run.data), so the stock bar would count
    batches of an epoch without end; this one counts steps towards trainer.max_steps, from where
    a resumed run starts. The stock line (percentage, rate, ``v_num``, each loss by its full name
    with five digits) left a 120-column terminal three columns for the bar: this one says the
    step, the time left, the loss in three digits and the style's share of it, and keeps the bar
    about half of a 120-column line and over a fifth of an 80-column one.
    """

    # "step 250/500 |█████     | 08:00 left, loss 1.68e+6 (88% style)"
    BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {remaining} left{postfix}"
    _drawn_at = -math.inf

    @property
    def train_description(self) -> str:
        return "step"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = bar.n = trainer.global_step

    def on_train_epoch_start(self, *_: object) -> None:
        pass

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        # Redrawn at most every REDRAW_S (and at the last step): a redraw costs ~0.15 ms, a
        # share of a small picture's step on a CPU and of most steps on a GPU, and more than a
        # few a second cannot be read anyway.
        bar, step, now = self.train_progress_bar, trainer.global_step, monotonic()
        due = self.is_enabled and (step % self.refresh_rate == 0 or step == bar.total)
        if due and (now - self._drawn_at >= REDRAW_S or step == bar.total):
            self._draw(trainer, pl_module)
            self._drawn_at = now

    def on_train_epoch_end(self, *_: object) -> None:
        pass

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = self.train_progress_bar
        if bar is not None and bar.n != trainer.global_step:  # ended early, between redraws
            self._draw(trainer, pl_module)
        super().on_train_end(trainer, pl_module)

    def _draw(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_postfix_str(postfix(self.get_metrics(trainer, pl_module)), refresh=True)

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, int | str | float]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run directory's version: said once, where the run writes
        schedule = getattr(pl_module, "schedule", None)
        multi_scale = schedule is not None and schedule.multi_scale
        paintings = list(getattr(pl_module, "paintings", []))
        if len(paintings) == 1:
            # The phase takes the room of the style's share: at 80 columns the bar keeps its width.
            metrics |= _losses(paintings[0].losses, pl_module, share=not multi_scale)
        elif paintings and all("loss/total" in p.losses for p in paintings):
            metrics["mean loss"] = sum(p.losses["loss/total"] for p in paintings) / len(paintings)
        if multi_scale:  # which phase, at which size
            index = pl_module.phase
            metrics["phase"] = f"{index + 1}/{len(schedule)} at {schedule[index].size} px"
        return metrics


def _losses(losses: dict[str, float], pl_module: LightningModule, share: bool) -> dict[str, float | str]:
    """The total loss, and the style's share of it where a run has content and style: what
    the weights balance (model.style_weight against model.content_weight), in few characters.
    Every term's own curve is in TensorBoard."""
    total = losses.get("loss/total")
    if total is None:
        return {}
    both = getattr(pl_module, "content_layers", None) and getattr(pl_module, "style_layers", None)
    if not (share and both and total > 0):
        return {"loss": total}
    return {"loss": f"{_number(total)} ({_share(losses.get('loss/style', 0.0) / total)} style)"}


def _share(fraction: float) -> str:
    percent = 100 * fraction
    if 99.5 <= percent < 100:
        return ">99%"
    return "<1%" if 0 < percent < 0.5 else f"{percent:.0f}%"


def postfix(metrics: dict[str, int | str | float]) -> str:
    """``loss 1.68e+6 (88% style), phase 2/3 at 512 px``: short names, numbers in three digits."""
    return ", ".join(f"{name} {_number(value)}" for name, value in metrics.items())


def _number(value: object) -> str:
    if isinstance(value, float) or hasattr(value, "item"):  # a tensor from Lightning's metrics
        return f"{float(value):.3g}".replace("e+0", "e+").replace("e-0", "e-")
    return str(value)
