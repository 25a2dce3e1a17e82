"""Every reach past Lightning's public API, in one place.

Each one says what it buys (measured on the 2-core CPU this project is developed on, at 32 px,
where Lightning's share of a step shows most; on a GPU it is a larger share) and what breaks
if Lightning changes; tests/test_lightning_private.py holds a canary for each, which fails
loudly when Lightning no longer behaves as relied on here. pyproject.toml bounds ``lightning``
to the minor release they were last checked with; after raising that bound, run those tests
first.
"""

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.utilities.logger import _add_prefix
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

# -- 1. Hooks that do nothing are not called --------------------------------------------------
# Lightning calls each per-step hook of every callback and of the module, overridden or not: a
# profiler context and the module's current-hook name set and reset for each. A run has seven or
# eight callbacks, most of which act only at its start or end: 35 of a step's 40 callback hook
# calls reached Callback's empty methods, 0.4 ms of a 50 ms L-BFGS step. Lightning passes over a
# hook that is not callable (lightning.pytorch.trainer.call), so while a run fits, each per-step
# hook that a callback or the module has unchanged from Lightning is set to None on that
# instance, and taken away again afterwards. Hooks that act, the user's included (overridden in
# a class or set on an instance, as LambdaCallback does), are called as before.
# If Lightning stops passing over hooks that are not callable, every step fails with
# "'NoneType' object is not callable"; if it calls hooks some other way, they run again.
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


# -- 2. The module's current-hook name ---------------------------------------------------------
# Lightning records on the module the hook it is calling, before and after each of the ~13 hook
# calls of a step (``_current_fx_name``), and nn.Module's __setattr__ looks for a parameter, a
# buffer or a submodule of that name each time: 3 µs each, ~0.08 ms a step. If Lightning renames
# the attribute, this does nothing (a step is that much slower, nothing else changes).
class HookNameSetDirectly:
    """For a LightningModule (listed before LightningModule among its bases): the hook name
    Lightning records is a plain attribute, set directly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)


# -- 3. Metrics for callbacks without self.log ---------------------------------------------------
# ``self.log`` built a metric object for each value in each epoch: 1.1 ms a logged step (every
# step was an epoch then), several percent of a small picture's step. The values callbacks
# monitor (EarlyStopping, ModelCheckpoint) go instead straight into the dict that self.log fills
# and they read: ``trainer.callback_metrics`` is the logger connector's own dict, not a copy. If it
# becomes a copy, EarlyStopping no longer sees the losses and says the metric is missing.
def publish_metrics(trainer: Trainer, metrics: Mapping[str, float]) -> None:
    """Hand ``metrics`` to the callbacks that read ``trainer.callback_metrics``."""
    trainer.callback_metrics.update({key: torch.tensor(value) for key, value in metrics.items()})


# -- 4. Early stopping at every step ------------------------------------------------------------
# A run is one Lightning epoch of steps (nst.run.data): Lightning's EarlyStopping checks at epoch
# ends (its setup resolves its default to that, as a run has no validation), so left alone it
# would check once, at the end. nst.run.stopping runs its check at every step's end instead, so
# that a run's patience counts steps. If Lightning renames these, the first step fails with an
# AttributeError.
def early_stopping_at_steps(callbacks: list[Callback], taken: list[EarlyStopping]) -> list[EarlyStopping]:
    """The EarlyStopping callbacks that check at epoch ends (and those ``taken`` over before),
    now checked only where ``early_stopping_check`` is called."""
    found = [
        c for c in callbacks if isinstance(c, EarlyStopping) and (c._check_on_train_epoch_end or c in taken)
    ]
    for callback in found:
        callback._check_on_train_epoch_end = False
    return found


def early_stopping_check(callback: EarlyStopping, trainer: Trainer) -> None:
    callback._run_early_stopping_check(trainer)


# With trainer.min_steps, Lightning also waits for one finished epoch before it lets a run stop,
# and a run's one epoch finishes only at its end: EarlyStopping could never stop it. If the fit
# loop's attribute is renamed, this sets an attribute nothing reads, and min_steps keeps
# EarlyStopping from ending a run again (its canary fails).
def no_epoch_before_stopping(trainer: Trainer) -> None:
    trainer.fit_loop.min_epochs = 0


# -- 5. Checkpoints written before the module optimised by hand -------------------------------------
# Lightning counts automatic and manual optimizer steps apart in a checkpoint's loop state; a run
# checkpointed while nst left its steps to the automatic loop would resume at step 0. If the keys
# change, such a checkpoint resumes at step 0 again (the canary reads the keys of a new one).
_AUTOMATIC = "epoch_loop.automatic_optimization.optim_progress"
_MANUAL = "epoch_loop.manual_optimization.optim_step_progress"


def steps_counted_by_hand(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` with the step count of an automatic-loop checkpoint where a module that
    optimises by hand keeps it, in place."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    automatic, manual = loops.get(_AUTOMATIC), loops.get(_MANUAL)
    if automatic and manual and not manual["total"]["completed"]:
        loops[_MANUAL] = copy.deepcopy(automatic["optimizer"]["step"])
    return checkpoint


def steps_in(checkpoint: dict[str, Any]) -> int:
    """The optimizer steps a checkpoint of a module that optimises by hand has counted."""
    return checkpoint["loops"]["fit_loop"][_MANUAL]["total"]["completed"]


# -- 6. TensorBoard -------------------------------------------------------------------------------
# Lightning's TensorBoardLogger writes one event per value; nst.run.tensorboard writes a step's
# values as one event, and images as JPEG summaries (~1 ms at 512 px against add_image's ~60 ms
# PNG), through the logger's event writer, which torch's SummaryWriter keeps private, with the
# logger's metric prefix applied as Lightning applies it. If these are renamed, the first logged
# step fails with an AttributeError or ImportError.
def prefixed(logger: TensorBoardLogger, metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` under the logger's prefix (its ``prefix`` argument), as Lightning names them."""
    return _add_prefix(dict(metrics), logger._prefix, logger.LOGGER_JOIN_CHAR)


def event_writer(logger: TensorBoardLogger) -> Any:
    """The writer of the logger's event file, which takes ready-made summaries."""
    return logger.experiment._get_file_writer()


# -- 7. Processes of a sweep ----------------------------------------------------------------------
# Lightning's launcher keeps the processes it started (``procs``); nst.many.processes passes a stop
# signal on to them and notices one that died. If renamed, those processes are neither stopped
# by a Ctrl-C nor watched (the canary fails); the sweep's own heartbeats still end a dead batch.
def started_processes(launcher: Any) -> list[Any]:
    return list(getattr(launcher, "procs", []))  # none where torchrun or SLURM started them


# Every process of a sweep writes its own cells' files, as rank zero of its own runs: Lightning's
# rank_zero_only decorator reads this to decide. If Lightning stops reading it, the other
# processes' cells lose their TensorBoard images and final pictures (test_batch fails).
def every_process_writes() -> None:
    rank_zero_only.rank = 0
