"""A run as an object: built from settings, started, watched, stopped and collected in-process.

Every front door goes through here: ``python cli.py fit``, ``nst.fit`` and ``nst.stylize``,
each sweep cell, and the studio's jobs::

    run = Run([["--config", "configs/starry.yaml"], {"data.size": 256}])
    result = run.fit()                       # blocks; run.stop() from another thread ends it
    result.image, result.losses, result.run_dir
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EarlyStopping
from PIL import Image
from torch import Tensor

from nst.images import to_pil
from nst.run import run_dirs
from nst.run.console import quiet_lightning
from nst.run.data import StyleTransferData
from nst.run.lightning_private import inert_hooks_left_out
from nst.run.module import StyleTransfer
from nst.run.outputs import FinalImage, result_image
from nst.run.settings import Builder, Layer, as_nst_error
from nst.run.stopping import RunInterrupted, Stop
from nst.run.tensorboard import final_losses


@dataclass
class Result:
    """What a run gave: the picture (as ``final.png`` has it), the losses logged at its last
    step, and where it left its files (None for a run kept in memory)."""

    image: Image.Image
    tensor: Tensor  # [1, 3, H, W] in [0, 1], before 8-bit rounding
    losses: dict[str, float]
    steps: int
    run_dir: Path | None = None
    checkpoint: Path | None = None
    stopped: RunInterrupted | None = None  # set when a stop request ended the run early
    stopped_early: str | None = None  # why an early-stopping callback ended the run, and at which step


class Run:
    """One style transfer run.

    Args:
        layers: The settings, applied in order (see nst.run.settings): command-line arguments
            and mappings of config keys.
        callbacks: Lightning callbacks added to the trainer (to watch losses and images).
        in_memory: Write nothing: no run directory, logger or checkpoints.
        name: The run directory's name under the log folder (default: the config file's stem).
        stop: Shared with other runs (a sweep's cells) so that one request stops them all.
        images: Images given in memory, by the name data.content or data.style uses for them.

    Bad settings raise :class:`nst.NSTError` with the one line the command line prints.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        callbacks: Sequence[Callback] = (),
        in_memory: bool = False,
        name: str | None = None,
        stop: Stop | None = None,
        images: Mapping[str, Image.Image] | None = None,
    ) -> None:
        quiet_lightning()
        self.stop_requests = stop or Stop()
        self.new_run_dirs: list[list[Path]] = []
        try:
            self.builder = Builder(
                layers,
                run_dirs=not in_memory,
                in_memory=in_memory,
                name=name,
                stop=self.stop_requests,
                callbacks=callbacks,
                new_run_dirs=self.new_run_dirs,
            )
        except BaseException as error:
            self.stop_requests.ignoring = True
            self._remove_unfinished()
            reraise_for_user(error)
        self.model: StyleTransfer = self.builder.model
        self.data: StyleTransferData = self.builder.datamodule
        self.trainer = self.builder.trainer
        self.data.given.update(images or {})

    @property
    def ckpt_path(self) -> str | None:
        return self.builder.config.ckpt_path

    def stop(self) -> None:
        """End the run after the step in progress, with a checkpoint (from any thread)."""
        self.stop_requests.request()

    def fit(self) -> Result:
        """Run to the end, or until stopped. A stop at a step boundary returns a Result whose
        ``stopped`` says so (one asked for before fit() ends the run after its first step); a
        signal before the first step, or a second Ctrl-C, raises :class:`RunInterrupted`; bad
        input raises :class:`NSTError`. Building a Run makes its run directory; a Run that is
        never fitted leaves it empty."""
        self.stop_requests.ignoring = False  # a sweep's earlier cell may have failed and cleaned up
        with self.stop_requests.signals():
            try:
                with inert_hooks_left_out(self.trainer, self.model):
                    self.trainer.fit(self.model, datamodule=self.data, ckpt_path=self.ckpt_path)
                self.stop_requests.training = False
            except BaseException as error:
                self.stop_requests.training = False
                self.stop_requests.ignoring = True  # the clean-up is not to be interrupted
                stopped = interruption_in(error)
                if stopped is None or stopped.checkpoint is None:
                    self._remove_unfinished()
                if stopped is None:
                    reraise_for_user(error)
                if stopped.step is None:
                    raise stopped from None
                return self._result(stopped)
        return self._result(None)

    def _result(self, stopped: RunInterrupted | None) -> Result:
        final = next((c for c in self.trainer.callbacks if isinstance(c, FinalImage)), None)
        picture = final.result if final is not None else None
        if picture is None:  # stopped early: the image so far, as it would have been written
            colours = final.original_colours if final is not None else None
            images = self.data.at(max(self.model.image.shape[-2:]))  # a multi-scale run's phase
            picture = result_image(self.model.result(), images, colours)
        early = next(
            (c for c in self.trainer.callbacks if isinstance(c, EarlyStopping) and c.stopping_reason_message),
            None,
        )
        stopped_early = None
        if early is not None and stopped is None:
            stopped_early = f"stopped early at step {self.trainer.global_step} of {self.trainer.max_steps}: "
            stopped_early += " ".join(early.stopping_reason_message.split())
            print(stopped_early)
        run_dir = Path(self.trainer.log_dir).absolute() if self.trainer.logger is not None else None
        checkpoint = run_dirs.checkpoint_of(run_dir) if run_dir is not None else None
        return Result(
            image=to_pil(picture),
            tensor=picture.detach().float().cpu(),
            losses=final_losses(self.trainer),
            steps=self.trainer.global_step,
            run_dir=run_dir,
            checkpoint=checkpoint if checkpoint is not None and checkpoint.is_file() else None,
            stopped=stopped,
            stopped_early=stopped_early,
        )

    def _remove_unfinished(self) -> None:
        # A run that stopped before its first checkpoint leaves nothing behind that looks like a result.
        for made in self.new_run_dirs:
            run_dirs.remove_if_unfinished(made)


def reraise_for_user(error: BaseException) -> None:
    """Raise ``error`` as the one-line NSTError a user should see, or as it is if it is a bug."""
    user = as_nst_error(error)
    if user is None or user is error:
        raise error
    raise user from error


def interruption_in(error: BaseException) -> RunInterrupted | None:
    """The stop request behind ``error``: itself, or one that Lightning's clean-up, failing in
    turn (it can when the signal came mid-setup), turned into another exception."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, RunInterrupted):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
