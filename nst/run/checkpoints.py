"""The checkpoint that makes every run continuable: written periodically, at the end, and when a
run is stopped (see nst.run.stopping), whole or not at all (nst.run.checkpoint_files)."""

from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from nst.errors import NSTError
from nst.run.checkpoint_files import LAST, checkpoint_of
from nst.run.pacing import Pacing
from nst.run.pictures import count_of, run_dir_of


class RunCheckpoint(Checkpoint):
    """Keeps ``checkpoints/last.ckpt`` of the run directory current (every picture's, where
    several are optimised together).

    Args:
        every_n_steps: Write the checkpoint every this many steps (0: only at the end or on a stop signal).
        max_time_share: Periodic checkpoints take at most this share of the run's time: a due
            one waits while the last one's writing took more than this share of the time since
            (0: none waits). Matters on GPUs, where 50 steps can take less time than one write.
    """

    def __init__(self, every_n_steps: int = 50, max_time_share: float = 0.05) -> None:
        if every_n_steps < 0:
            raise NSTError(f"checkpoint.every_n_steps must be ≥ 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.pacing = Pacing(max_time_share, "checkpoint.max_time_share")
        self.path: Path | None = None  # where the next checkpoint goes (the first picture's)
        self._saved_step: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        run_dir = run_dir_of(trainer, 0, count_of(trainer.datamodule))
        # Without a logger there is no run directory: checkpoints go to ./checkpoints, where an
        # earlier run's file is kept (the next is last-v1.ckpt, last-v2.ckpt, ...: see _free).
        self.path = checkpoint_of(run_dir) if run_dir is not None else None
        self._saved_step = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            # The last step's checkpoint comes from on_train_end, after the result is written: a
            # run killed in between resumes a step early and writes it, rather than resuming at
            # its end, where Lightning runs no hook and the result would never be written.
            return
        if not self.pacing.due(trainer.global_step, self.every_n_steps):
            return
        with self.pacing.writing():
            self.save_now(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save_now(trainer, pl_module)

    def save_now(self, trainer: Trainer, pl_module: LightningModule) -> str:
        """Write ``last.ckpt`` for the current step unless it was written at this step already;
        a diverged image never overwrites the last good checkpoint."""
        check = getattr(pl_module, "check_finite", None)
        if check is not None:
            check()
        if self.path is None:
            self.path = _free(Path(trainer.default_root_dir) / "checkpoints")
        if self._saved_step != trainer.global_step:
            trainer.save_checkpoint(self.path, weights_only=False)  # the optimizer and callbacks too
            self._saved_step = trainer.global_step
        return str(self.path)

    def written(self) -> str | None:
        """The checkpoint this run can be continued from so far, if any (a resumed run's, before
        it writes its own)."""
        return str(self.path) if self.path is not None and self.path.is_file() else None


def _free(folder: Path) -> Path:
    """``last.ckpt`` in ``folder``, or the first of ``last-v1.ckpt``, ... that is not taken."""
    path, version = folder / LAST, 1
    while path.exists():
        path, version = folder / f"last-v{version}.ckpt", version + 1
    return path
