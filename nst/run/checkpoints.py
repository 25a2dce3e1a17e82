"""Checkpoints that make every run continuable: periodic, at the end, and when a run is
stopped (see nst.run.stopping), each written whole or not at all."""

import copy
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from nst.errors import NSTError
from nst.files import atomic_write
from nst.run.pacing import Pacing

# Each tensor in a checkpoint file costs ~25 µs to write, whatever its size. An L-BFGS history
# of a small picture is hundreds of tensors of a few kB (at 32 px, 15 ms of a 17 ms save), so
# its lists are written as one tensor each, up to this size (stacking copies them).
PACK_UP_TO_BYTES = 64 * 2**20
_PACKED = "nst_packed"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes local checkpoints beside their target, flushed to disk, then renamed over it.

    Lightning's own writer goes through a temporary file in the system temp directory; when that
    is another filesystem (tmpfs, a different disk), the final move is a copy, so a kill -9 or a
    power cut mid-copy would leave a truncated ``last.ckpt``. Renaming within one directory is atomic.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):  # Lightning's handling (and errors)
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        # Leftovers of a writer that was killed mid-write; a run directory has one writer.
        for stale in path.parent.glob(f".{path.name}.*.part"):
            stale.unlink(missing_ok=True)
        try:
            with atomic_write(path) as (out, _):
                torch.save(pack_optimizer_lists(checkpoint), out)
        except OSError as error:  # a full disk, a folder made read-only: the earlier checkpoint stays
            raise NSTError(
                f"cannot write {path} ({error.strerror or error}); make room or fix the folder's "
                "permissions, then continue with --ckpt_path last"
            ) from error


def pack_optimizer_lists(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` with each optimizer state's lists of like tensors (L-BFGS's history) as one
    stacked tensor, where small; the checkpoint itself, which holds the live state, is left alone."""
    states = checkpoint.get("optimizer_states")
    if not isinstance(states, list):
        return checkpoint
    packed = [
        {**sd, "state": {k: _packed(v) for k, v in sd["state"].items()}} if "state" in sd else sd
        for sd in states
    ]
    return {**checkpoint, "optimizer_states": packed}


def unpack_optimizer_lists(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The lists that pack_optimizer_lists stacked, as lists again, in place (the module does
    this as a checkpoint is loaded, whichever CheckpointIO read it; others pass through)."""
    for sd in checkpoint.get("optimizer_states") or []:
        for state in sd.get("state", {}).values():
            for key, value in state.items():
                if isinstance(value, dict) and set(value) == {_PACKED}:
                    state[key] = list(value[_PACKED].unbind(0))
    return checkpoint


_AUTOMATIC = "epoch_loop.automatic_optimization.optim_progress"
_MANUAL = "epoch_loop.manual_optimization.optim_step_progress"


def steps_counted_by_hand(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written while StyleTransfer left its steps to Lightning's automatic loop,
    with its step count where a module that optimises by hand keeps it, in place (Lightning
    counts the two kinds of step apart, and would resume such a run at step 0)."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    automatic, manual = loops.get(_AUTOMATIC), loops.get(_MANUAL)
    if automatic and manual and not manual["total"]["completed"]:
        loops[_MANUAL] = copy.deepcopy(automatic["optimizer"]["step"])
    return checkpoint


def _packed(state: Any) -> Any:
    if not isinstance(state, dict):
        return state
    out = dict(state)
    for key, value in state.items():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(t, torch.Tensor) for t in value)
            and len({(t.shape, t.dtype, t.device) for t in value}) == 1
            and sum(t.nbytes for t in value) <= PACK_UP_TO_BYTES
        ):
            out[key] = {_PACKED: torch.stack(value)}
    return out


class RunCheckpoint(ModelCheckpoint):
    """Keeps ``checkpoints/last.ckpt`` of the run directory current.

    Args:
        every_n_steps: Write the checkpoint every this many steps (0: only at the end or on a stop signal).
        max_time_share: Periodic checkpoints take at most this share of the run's time: a due
            one waits while the last one's writing took more than this share of the time since
            (0: none waits). Matters on GPUs, where 50 steps can take less time than one write.
    """

    def __init__(self, every_n_steps: int = 50, max_time_share: float = 0.05) -> None:
        if every_n_steps < 0:
            raise NSTError(f"checkpoint.every_n_steps must be ≥ 0, got {every_n_steps}")
        # No "best" checkpoints (nothing is validated) and no last-v1.ckpt copies: one file, overwritten.
        # Written from on_train_batch_end only: a run is one epoch, whose end is the run's end,
        # where on_train_end writes it.
        super().__init__(
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_steps,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        )
        self.every_n_steps = every_n_steps
        self.pacing = Pacing(max_time_share, "checkpoint.max_time_share")
        # The key of this callback's state in a checkpoint, made once: Lightning reads it at
        # every hook call (ModelCheckpoint builds it from its settings each time).
        self._state_key = super().state_key

    @property
    def state_key(self) -> str:
        return self._state_key

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Without a logger there is no run directory (checkpoints go to ./checkpoints):
        # then Lightning's last-v1.ckpt numbering keeps an earlier run's file.
        self._enable_version_counter = trainer.logger is None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            # The last step's checkpoint comes from on_train_end, after the result is written: a
            # run killed in between resumes a step early and writes it, rather than resuming at
            # its end, where Lightning runs no hook and the result would never be written.
            return
        if not self.pacing.due(trainer.global_step, self.every_n_steps):
            return
        _check_finite(pl_module)  # a diverged image never overwrites the last good checkpoint
        with self.pacing.writing():
            super().on_train_batch_end(trainer, pl_module, *args)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save_now(trainer, pl_module)

    def save_now(self, trainer: Trainer, pl_module: LightningModule) -> str:
        """Write ``last.ckpt`` for the current step unless it was written at this step already."""
        _check_finite(pl_module)
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path or str(
            Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        )

    def written(self) -> str | None:
        """The checkpoint this run has written so far, if any."""
        path = self.last_model_path
        return path if path and Path(path).is_file() else None


def _check_finite(pl_module: LightningModule) -> None:
    check = getattr(pl_module, "check_finite", None)
    if check is not None:
        check()
