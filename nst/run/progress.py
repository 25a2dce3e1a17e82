"""The progress bar of a run: one bar over all its steps, with the losses."""

import math
from time import monotonic

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

REDRAW_S = 0.1  # the progress bar's fastest redraw, as tqdm's own mininterval


class StepProgressBar(TQDMProgressBar):
    """One bar over all steps of the run, with the losses.

    A run is one endless Lightning epoch (see nst.run.data), so the stock bar would count
    batches of an epoch without end; this one counts steps towards trainer.max_steps, from where
    a resumed run starts.
    """

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
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, int | str | float]:
        metrics = super().get_metrics(trainer, pl_module)
        paintings = list(getattr(pl_module, "paintings", []))
        if len(paintings) == 1:
            shown = ("loss/total", "loss/content", "loss/style")
            metrics |= {k: v for k, v in paintings[0].losses.items() if k in shown}
        elif paintings:  # pictures together: each has a run directory (and version) of its own
            metrics.pop("v_num", None)
            if all("loss/total" in p.losses for p in paintings):
                metrics["loss/mean"] = sum(p.losses["loss/total"] for p in paintings) / len(paintings)
        schedule = getattr(pl_module, "schedule", None)
        if schedule is not None and schedule.multi_scale:  # which phase, at which size
            index = pl_module.phase
            metrics["phase"] = f"{index + 1}/{len(schedule)} at {schedule[index].size} px"
        return metrics
