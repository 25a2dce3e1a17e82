"""A training run as an object (``nst train``): built from settings, fitted, stopped, collected::

    run = TrainRun([["--config", "configs/train.yaml", "--data.photos", "photos/"]])
    result = run.fit()                 # blocks; run.stop() from another thread ends it
    result.network                     # logs/train/version_N/network.pt

Bad settings raise :class:`nst.NSTError` with the one line the command line prints; a run that
fails before its first checkpoint leaves no run directory behind.
"""

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar

from nst.errors import NSTError
from nst.run import run_dirs
from nst.run.checkpoint_files import RunCheckpointIO
from nst.run.checks import check_early_stopping
from nst.run.console import quiet_lightning
from nst.run.engine import interruption_in, reraise_for_user
from nst.run.outputs import SaveRunConfig
from nst.run.pictures import run_dir_of
from nst.run.settings import Layer
from nst.run.speed import drop_futile_nvml_check
from nst.run.stopping import RunInterrupted, Stop
from nst.train.callbacks import NetworkFile, Paintings, StopTraining, TrainingProgress
from nst.train.network import FILE
from nst.train.settings import CKPT_ENV, RUN_DIR_ENV, TrainSettings, first_process


@dataclass
class TrainResult:
    """What a training run gave: its network file, the losses logged last, the steps taken."""

    network: Path | None
    run_dir: Path | None
    steps: int
    losses: dict[str, float]
    stopped: RunInterrupted | None = None


class TrainRun:
    """One training run of a style network.

    Args:
        layers: The settings, applied in order (command-line arguments and mappings of config
            keys, as nst.run.settings reads them).
        callbacks: Lightning callbacks added to the trainer.
        save_dir: The log folder (default: trainer.logger.init_args.save_dir, ``logs``).
        name: The run directory's folder in it (default: the config file's stem).
        stop: Shared with the caller, whose ``request()`` ends the run at a step boundary.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        callbacks: Sequence[Callback] = (),
        save_dir: str | Path | None = None,
        name: str | None = None,
        stop: Stop | None = None,
    ) -> None:
        quiet_lightning()
        # Lightning's advice for epochs shorter than the logging interval: a small folder's.
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        # Resuming mid-epoch is exact here: nst.train.data.Crops starts at the trainer's step.
        warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")
        self.stop_requests = stop or Stop()
        self.made: list[list[Path]] = []
        where = run_dirs.Where(None if save_dir is None else str(save_dir), name)
        try:
            self.settings = TrainSettings(layers, where=where, made=self.made)
            self.model, self.data = self.settings.model, self.settings.datamodule
            self.stopping = StopTraining(self.stop_requests)
            self.trainer = self._trainer(callbacks)
        except BaseException as error:
            self.stop_requests.ignoring = True
            self._remove_unfinished()
            reraise_for_user(error, "train")

    def _trainer(self, callbacks: Sequence[Callback]) -> Trainer:
        settings = self.settings
        options = dict(settings.trainer_options)
        given = options.get("callbacks") or []
        own = [*(given if isinstance(given, list) else [given]), *callbacks]
        check_early_stopping(own)
        own += [settings.checkpoint, NetworkFile(), Paintings()]
        if options.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in own
        ):
            own.append(TrainingProgress())
        own += [SaveRunConfig(settings.parser, [settings.config_as_given]), self.stopping]
        drop_futile_nvml_check()
        try:
            trainer = Trainer(**{**options, "callbacks": own})
        except (ValueError, ImportError, TypeError) as error:  # Lightning's checks of trainer.* options
            raise NSTError(f"trainer options: {' '.join(str(error).split())}") from error
        if type(trainer.strategy.checkpoint_io).__name__ == "TorchCheckpointIO":
            trainer.strategy.checkpoint_io = RunCheckpointIO()  # whole or not at all
        return trainer

    @property
    def run_dir(self) -> Path | None:
        run_dir = run_dir_of(self.trainer, 0, 1)
        return run_dir.absolute() if run_dir is not None else None

    def stop(self) -> None:
        """End the run after the step in progress, with a checkpoint and network.pt (any thread)."""
        self.stop_requests.request()

    def fit(self) -> TrainResult:
        """Train to trainer.max_steps, or until stopped (the result's ``stopped`` says so). A
        signal before the first step, or a second Ctrl-C, raises :class:`RunInterrupted`."""
        ckpt_path = self.settings.config.ckpt_path
        with self.stop_requests.signals(), self._telling_the_processes_it_starts(ckpt_path):
            try:
                self.trainer.fit(self.model, datamodule=self.data, ckpt_path=ckpt_path)
                self.stop_requests.training = False
            except BaseException as error:
                self.stop_requests.training = False
                self.stop_requests.ignoring = True
                stopped = interruption_in(error)
                if stopped is None or stopped.checkpoint is None:
                    self._remove_unfinished()
                if stopped is None:
                    reraise_for_user(error, "train")
                raise stopped from None
        return self._result()

    @contextmanager
    def _telling_the_processes_it_starts(self, ckpt_path: str | None) -> Iterator[None]:
        # Lightning's launcher starts this machine's other processes (LOCAL_RANK 1, 2, ...)
        # with this process's environment, during fit: they take the run directory chosen here
        # rather than make their own. Taken back after, so that no later run or process in
        # this environment takes it.
        run_dir = self.run_dir if first_process() else None
        if run_dir is not None:
            os.environ[RUN_DIR_ENV], os.environ[CKPT_ENV] = str(run_dir), ckpt_path or ""
        try:
            yield
        finally:
            if run_dir is not None:
                os.environ.pop(RUN_DIR_ENV, None)
                os.environ.pop(CKPT_ENV, None)

    def _result(self) -> TrainResult:
        trainer, run_dir = self.trainer, self.run_dir
        network = run_dir / FILE if run_dir is not None else None
        stopped = None
        if self.stopping.stopped_at is not None:
            checkpoint = self.settings.checkpoint.written()
            signum = self.stop_requests.requested or 0
            stopped = RunInterrupted(signum, checkpoint, step=self.stopping.stopped_at)
        losses = {k: float(v) for k, v in trainer.logged_metrics.items() if k.startswith(("loss/", "val/"))}
        return TrainResult(
            network=network if network is not None and network.is_file() else None,
            run_dir=run_dir,
            steps=trainer.global_step,
            losses=losses,
            stopped=stopped,
        )

    def _remove_unfinished(self) -> None:
        for made in self.made:
            run_dirs.remove_if_unfinished(made)
