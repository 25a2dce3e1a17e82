"""When a video frame is done: when its loss has stopped improving, by the rule Lightning's
EarlyStopping applies (improved: lower than the best by more than min_delta; done after
``patience`` checks without), with min_delta relative to the loss, since a frame's loss has no
scale known beforehand. Checked at every step, on the best loss the painting keeps anyway."""

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class Plateau(Callback):
    """Ends a frame's run after ``patience`` steps without its best loss falling by more than
    ``min_delta`` (a fraction of it). The steps taken are ``steps`` after the run."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.wait = 0

    @property
    def state_key(self) -> str:
        return "nst.video.Plateau"

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        best = pl_module.painting.best_loss
        if best is None:
            return
        value = float(best)
        if self.best is None or value < self.best * (1 - self.min_delta):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.wait = state_dict["best"], state_dict["wait"]
