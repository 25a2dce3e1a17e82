"""How a run is asked to stop, by Ctrl-C, SIGTERM or its caller (``Run.stop()``): the one place
that state lives.

A stop does not interrupt a step half-way. It is noted, the step in progress finishes,
``last.ckpt`` is written at that step boundary (the same point periodic checkpoints are taken,
which Lightning resumes exactly), and the run ends with :class:`RunInterrupted`. A second
Ctrl-C stops at once, keeping the last checkpoint written. Before training has begun a signal
ends the start at once: nothing is on disk yet that a resume could use.
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping

from nst.run.checkpoints import RunCheckpoint
from nst.run.lightning_private import early_stopping_at_steps, early_stopping_check, no_epoch_before_stopping

CALLER = 0  # stands where a signal number would for a stop asked for by the caller
# A terminal's Ctrl-C reaches every process of a sweep, and the first process passes it on
# too: in a worker, the same signal twice within this time is one request, not "Ctrl-C again".
_SAME_KEYPRESS_S = 1.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """The run stopped on request; ``checkpoint`` is what it can be resumed from (None: nothing yet).

    A BaseException, as KeyboardInterrupt is, so that the ``except Exception`` clauses of the
    libraries it passes through (argument parsing tries one type after another) cannot swallow it.
    """

    def __init__(self, signum: int, checkpoint: str | None, step: int | None = None) -> None:
        when = f" after step {step}" if step is not None else ""
        saved = f"saved {checkpoint}" if checkpoint else "no checkpoint had been written yet"
        super().__init__(f"stopped {_by(signum)}{when}; {saved}")
        self.signum = signum
        self.checkpoint = checkpoint
        self.step = step  # the step boundary it stopped at; None: not at one
        self.resumable = checkpoint is not None  # something was kept that --ckpt_path last continues


def is_spawned() -> bool:
    """Whether Lightning's launcher started this process for another one of its batch."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def _by(signum: int) -> str:
    return "on request" if signum == CALLER else f"by {signal.Signals(signum).name}"


class Stop:
    """The stop requests of one run (or of a sweep's runs, which share one)."""

    def __init__(self) -> None:
        self.requested: int | None = None  # the first signal, or CALLER
        self.training = False  # from the first step until the run's fit() has returned
        self.ignoring = False  # stopping already: further signals must not interrupt the clean-up
        self.last_checkpoint: Callable[[], str | None] = _nothing  # the run's, once training starts
        # Where a signal goes on to: the processes this one started for a batch.
        self.forward: Callable[[int], None] | None = None
        self._requested_at = 0.0
        self._previous: dict[int, object] = {}

    def request(self, signum: int = CALLER) -> None:
        """Ask the run to stop after the step in progress (thread-safe: one assignment)."""
        if self.requested is None:
            self._requested_at = time.monotonic()
            self.requested = signum

    @contextmanager
    def signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM go to this Stop while the block runs (in the main thread only,
        which is the one signals reach); the handlers before it are put back afterwards."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            yield
            return
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}
        try:
            yield
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = {}

    def reclaim(self) -> None:
        """Take the signals back from Lightning, which puts its own SIGTERM handler in front of
        ours when training starts (and raises its own exception after the step)."""
        if self._previous:
            for signum in _SIGNALS:
                signal.signal(signum, self._on_signal)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """While the block waits for other processes of a batch, a signal is passed on to them
        and noted, not raised: they stop at their step boundaries, and the wait ends."""
        before = self.training
        self.training = True
        try:
            yield
        finally:
            self.training = before

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.forward is not None:
            self.forward(signum)
        if self.ignoring:
            return
        if (
            is_spawned()
            and signum == self.requested
            and time.monotonic() - self._requested_at < _SAME_KEYPRESS_S
        ):
            return  # one Ctrl-C that reached a batch's worker twice: from the terminal and passed on
        if not self.training or self.requested is not None:  # before training, or asked twice
            self.ignoring = True
            raise RunInterrupted(signum, self.last_checkpoint() if self.training else None)
        self.request(signum)
        kept = " with a checkpoint" if self.last_checkpoint is not _nothing else ""
        print(
            f"\n{signal.Signals(signum).name}: stopping after this step{kept} (Ctrl-C again stops at once) ...",
            file=sys.stderr,
            flush=True,
        )


def _nothing() -> None:
    return None


class StopAtStepBoundary(Callback):
    """Ends the run at the step boundary after a stop request, with a checkpoint where the run
    keeps them. A request during the last step lets the run finish: it has nothing left to resume.

    Also runs the checks of Lightning's EarlyStopping at every step's end. EarlyStopping checks
    at epoch ends, and a run is one epoch (see nst.run.data), so left alone it would check once, at
    the end; a run's patience and thresholds count steps.
    """

    def __init__(self, stop: Stop) -> None:
        self.stop = stop
        self._stopping: RunInterrupted | None = None
        self._early_stopping: list[EarlyStopping] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stopping = None
        checkpoint = _run_checkpoint(trainer)
        self.stop.last_checkpoint = checkpoint.written if checkpoint is not None else _nothing
        self.stop.training = True
        self.stop.reclaim()
        # (An explicit trainer.min_epochs is refused: see check_trainer_options.)
        no_epoch_before_stopping(trainer)
        # Checked here, at each step's end, instead of at the run's one epoch end (including any
        # taken over by an earlier fit of this run).
        self._early_stopping = early_stopping_at_steps(trainer.callbacks, self._early_stopping)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        # Registered after the run's other callbacks (only checkpoint callbacks, which Lightning
        # puts last, come later), so a request made anywhere in the step up to here (an image
        # log, a frame, the caller's progress callback) is seen at this step's boundary.
        for callback in self._early_stopping:
            early_stopping_check(callback, trainer)
        stop = self.stop
        if stop.requested is None or self._stopping is not None or trainer.global_step == trainer.max_steps:
            return
        checkpoint = _run_checkpoint(trainer)
        path = checkpoint.save_now(trainer, pl_module) if checkpoint is not None else None
        stop.ignoring = True  # stopping now; a further signal must not replace this one
        self._stopping = RunInterrupted(stop.requested, path, step=trainer.global_step)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        # The stop comes here, before the next step, rather than right after the checkpoint:
        # Lightning writes a step's metrics after every callback has seen it, and a stop
        # raised earlier would leave that step out of TensorBoard's curves.
        if self._stopping is not None:
            raise self._stopping


def _run_checkpoint(trainer: Trainer) -> RunCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), None)
