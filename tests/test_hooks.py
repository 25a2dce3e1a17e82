"""At every step Lightning calls only the hooks that do something (nst.run.lightning_private)."""

from collections import Counter

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import LambdaCallback
from lightning.pytorch.profilers import PassThroughProfiler

import nst
from nst.run.lightning_private import PER_STEP


class CountingProfiler(PassThroughProfiler):
    """Counts Lightning's hook calls: it runs each inside one profiler action, named
    ``[Callback]<state key>.<hook>`` or ``[LightningModule]<class>.<hook>``."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: Counter[str] = Counter()

    def start(self, action_name: str) -> None:
        self.actions[action_name] += 1


class AfterBackward(Callback):
    """A user's callback that acts after each backward pass, and at no other hook."""

    def __init__(self) -> None:
        self.gradients: list[float] = []

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.gradients.append(pl_module.image.grad.abs().sum().item())
        assert (
            pl_module._current_fx_name == "on_after_backward"
        )  # as Lightning records it (nst.run.lightning_private)


def test_each_step_calls_the_hooks_that_act_and_no_others(tiny_config):
    user = AfterBackward()
    ends = []  # a hook set on an instance rather than overridden in a class
    given = LambdaCallback(on_train_batch_end=lambda trainer, *_: ends.append(trainer.global_step))
    run = nst.Run([["--config", str(tiny_config()), "--trainer.max_steps", "5"]], callbacks=[user, given])
    profiler = run.trainer.profiler = CountingProfiler()
    run.fit()

    assert len(user.gradients) == 5 and all(g > 0 for g in user.gradients)  # the user's hook, every step
    assert ends == [1, 2, 3, 4, 5]
    assert not set(vars(user)) & set(PER_STEP)  # the user's callback is given back as it came
    assert not set(vars(run.model)) & set(PER_STEP)
    assert profiler.actions["[Callback]AfterBackward.on_after_backward"] == 5
    assert profiler.actions["[LightningModule]StyleTransfer.on_train_batch_start"] == 5  # nst's own
    by_key = {callback.state_key: callback for callback in run.trainer.callbacks}
    per_step = [a for a in profiler.actions if a.startswith("[Callback]") and a.endswith(PER_STEP)]
    assert per_step, "no callback acted at a step: the count is not seeing Lightning's calls"
    for action in per_step:
        key, hook = action.removeprefix("[Callback]").rsplit(".", 1)
        callback = by_key[key]
        acts = hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook)
        assert acts, f"{action} does nothing"
    for hook in ("on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_train_batch_end"):
        assert f"[LightningModule]StyleTransfer.{hook}" not in profiler.actions
