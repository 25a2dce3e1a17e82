"""A callback that acts at a given step, as a test's way into a running run."""

from collections.abc import Callable

from lightning.pytorch import Callback, LightningModule, Trainer


class AtStep(Callback):
    """Calls ``action(trainer, module)`` once ``step`` steps are done, before the next one starts
    (after every hook of step ``step``, as a user's Ctrl-C between two steps would come)."""

    def __init__(
        self,
        step: int,
        action: Callable[[Trainer, LightningModule], object],
        when: Callable[[Trainer], bool] = lambda trainer: True,
    ) -> None:
        self.step, self.action, self.when = step, action, when

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if trainer.global_step == self.step and self.when(trainer):
            self.action(trainer, pl_module)
