"""When a video frame is done: when its loss has stopped improving, by the rule Lightning's
EarlyStopping applies (improved: lower than the best by more than min_delta; done after
``patience`` checks without), with min_delta relative to the loss, since a frame's loss has no
scale known beforehand. Checked at every step, on the best loss the painting keeps anyway.

Counting starts once the loss has gone below where the frame started: L-BFGS's first steps
can leap uphill for a while (from the frame itself, as video.init content starts, it did for
10 to 20 steps), and a frame that stopped then would be its starting image.
"""

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class Plateau(Callback):
    """Ends a frame's run after ``patience`` steps without its best loss falling by more than
    ``min_delta`` (a fraction of it). The steps taken are ``steps`` after the run."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.start: float | None = None  # the loss before the first step improved on it
        self.wait = 0

    @property
    def state_key(self) -> str:
        return "nst.video.Plateau"

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        best = pl_module.painting.best_loss
        if best is None:
            return
        # On the host each step: L-BFGS's restart check reads the loss there anyway (a sync a
        # step that the default optimizer already pays); with Adam it is one more.
        value = float(best)
        if self.start is None:
            self.start = value
        if value >= self.start:  # not below the start yet
            return
        if self.best is None or value < self.best * (1 - self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "start": self.start, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.start, self.wait = state_dict["best"], state_dict["start"], state_dict["wait"]
