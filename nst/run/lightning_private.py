"""Leaving out, at every step, the hooks that do nothing.

Lightning calls each per-step hook of every callback and of the module, whether or not it was
overridden: a log line, a profiler context and the module's current-hook name set and reset
for each. A run has seven or eight callbacks, most of which act only at its start or end, so
most of a step's hook calls reach Callback's empty methods; measured at 32 px on this CPU they
took 0.4 ms of a 50 ms L-BFGS step, more right after the backward pass. Lightning passes over a
hook that is not callable, so while a run fits, each hook that a callback or the module still
has as Lightning defines it is set to None on that instance, and taken away again afterwards.
Hooks that do something, the user's included (overridden in a class or set on an instance, as
LambdaCallback does), are called as before.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

# The hooks of a training step that Lightning dispatches through its callable check (in
# lightning.pytorch.trainer.call); hooks whose result Lightning uses (the batch transfer)
# are not among them.
PER_STEP = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)


@contextmanager
def inert_hooks_left_out(trainer: Trainer, module: LightningModule) -> Iterator[None]:
    """While in the block, Lightning skips each per-step hook that ``module`` and ``trainer``'s
    callbacks have unchanged from Lightning (and so do nothing)."""
    left_out = [*(_leave_out(c, Callback) for c in trainer.callbacks), _leave_out(module, LightningModule)]
    try:
        yield
    finally:
        for target, names in left_out:
            for name in names:
                object.__delattr__(target, name)


def _leave_out(target: object, base: type) -> tuple[object, list[str]]:
    names = []
    own = getattr(target, "__dict__", None)
    for name in PER_STEP:
        if own is None or name in own or getattr(type(target), name, None) is not getattr(base, name):
            continue  # the hook acts, or the object cannot be given one of its own
        object.__setattr__(target, name, None)  # past a frozen dataclass's or nn.Module's own
        names.append(name)
    return target, names


class HookNameSetDirectly:
    """For a LightningModule (listed before LightningModule among its bases): Lightning records
    on the module the hook it is calling, before and after each of the ~13 hook calls of a step,
    and nn.Module's ``__setattr__`` looks for a parameter, a buffer or a submodule by that name
    each time (3 µs here). The name is a plain attribute, so it is set directly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)
