"""Checkpoints that make every run continuable: periodic, at the end, and on Ctrl-C or SIGTERM.

A stop signal does not interrupt a step half-way. It is noted, the step in progress
finishes, ``last.ckpt`` is written at that step boundary (the same point periodic
checkpoints are taken, which Lightning resumes exactly), and the run ends with
:class:`RunInterrupted`. A second Ctrl-C stops at once (also :class:`RunInterrupted`), keeping the last
checkpoint written.
"""

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from nst.errors import NSTError
from nst.files import atomic_write


class RunInterrupted(BaseException):
    """The run stopped on a signal; ``checkpoint`` is what it can be resumed from (None: nothing yet).

    A BaseException, as KeyboardInterrupt is, so that the ``except Exception`` clauses of the
    libraries it passes through (argument parsing tries one type after another) cannot swallow it.
    """

    def __init__(self, signum: int, checkpoint: str | None, step: int | None = None) -> None:
        when = f" after step {step}" if step is not None else ""
        saved = f"saved {checkpoint}" if checkpoint else "no checkpoint had been written yet"
        super().__init__(f"stopped by {signal.Signals(signum).name}{when}; {saved}")
        self.signum = signum
        self.checkpoint = checkpoint


_stop_asked: int | None = None  # the signal that asked the latest run to stop


def stop_asked() -> int | None:
    """The stop signal that came during the latest run, if any. A signal during a run's last
    step lets that run finish; whoever runs several in a row (a sweep) must stop after it."""
    return _stop_asked


def ignore_stop_signals() -> None:
    """Once a run is stopping (writing its last checkpoint, cleaning up), further Ctrl-Cs are
    ignored rather than interrupting that work; the CLI puts the handlers back when it exits."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


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
                torch.save(checkpoint, out)
        except OSError as error:  # a full disk, a folder made read-only: the earlier checkpoint stays
            raise NSTError(
                f"cannot write {path} ({error.strerror or error}); make room or fix the folder's "
                "permissions, then continue with --ckpt_path last"
            ) from error


class RunCheckpoint(ModelCheckpoint):
    """Keeps ``checkpoints/last.ckpt`` of the run directory current.

    Args:
        every_n_steps: Write the checkpoint every this many steps (0: only at the end or on a stop signal).
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 0:
            raise NSTError(f"checkpoint.every_n_steps must be ≥ 0, got {every_n_steps}")
        # No "best" checkpoints (nothing is validated) and no last-v1.ckpt copies: one file, overwritten.
        super().__init__(
            save_last=True, save_top_k=0, every_n_train_steps=every_n_steps, enable_version_counter=False
        )
        self.every_n_steps = every_n_steps
        self._stop_signal: int | None = None
        self._stopping: RunInterrupted | None = None
        self._previous_handlers: dict[int, object] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Without a logger there is no run directory (checkpoints go to ./checkpoints):
        # then Lightning's last-v1.ckpt numbering keeps an earlier run's file.
        self._enable_version_counter = trainer.logger is None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        global _stop_asked
        super().on_train_start(trainer, pl_module)
        self._stop_signal, self._stopping, _stop_asked = None, None, None
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in self._SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_signal is not None:  # asked twice: stop now, keep the last checkpoint
            ignore_stop_signals()
            written = (
                self.last_model_path
                if self.last_model_path and Path(self.last_model_path).is_file()
                else None
            )
            raise RunInterrupted(signum, written)
        global _stop_asked
        self._stop_signal = _stop_asked = signum
        print(
            f"\n{signal.Signals(signum).name}: saving a checkpoint after this step "
            "(Ctrl-C again stops at once) ...",
            file=sys.stderr,
            flush=True,
        )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        saving = self.every_n_steps and trainer.global_step % self.every_n_steps == 0
        if saving or self._stop_signal is not None:
            _check_finite(pl_module)  # a diverged image never overwrites the last good checkpoint
        super().on_train_batch_end(trainer, pl_module, *args)
        # A signal during the last step lets the run finish: it has nothing left to resume.
        if self._stop_signal is not None and trainer.global_step != trainer.max_steps:
            path = self.save_now(trainer)
            ignore_stop_signals()  # stopping now; a further signal must not replace this one
            self._stopping = RunInterrupted(self._stop_signal, path, step=trainer.global_step)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        # The stop comes here, before the next step, rather than right after the checkpoint:
        # Lightning writes a step's metrics after every callback has seen it, and a stop
        # raised earlier would leave that step out of TensorBoard's curves.
        if self._stopping is not None:
            raise self._stopping

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _check_finite(pl_module)
        self.save_now(trainer)
        self._restore_handlers()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, RunInterrupted):
            self._restore_handlers()

    def save_now(self, trainer: Trainer) -> str:
        """Write ``last.ckpt`` for the current step unless it was written at this step already."""
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path or str(
            Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        )

    def _restore_handlers(self) -> None:
        while self._previous_handlers:
            signum, handler = self._previous_handlers.popitem()
            signal.signal(signum, handler)


def _check_finite(pl_module: LightningModule) -> None:
    check = getattr(pl_module, "check_finite", None)
    if check is not None:
        check()
