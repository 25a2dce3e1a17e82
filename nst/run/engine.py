"""A run as an object: built from settings, started, watched, stopped and collected in-process.

Every front door goes through here: ``python cli.py fit``, ``nst.fit`` and ``nst.stylize``,
each sweep cell, the pictures a sweep optimises together, and the studio's jobs::

    run = Run([["--config", "configs/starry.yaml"], {"data.size": 256}])
    result = run.fit()                       # blocks; run.stop() from another thread ends it
    result.image, result.losses, result.run_dir

    run = Run(pictures=[Picture(layers_a, "a", run_dir=...), Picture(layers_b, "b", run_dir=...)])
    a, b = run.fit_pictures()                # one VGG pass for both at each step
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EarlyStopping
from PIL import Image
from torch import Tensor

from nst.images import to_pil
from nst.run import run_dirs
from nst.run.console import quiet_lightning
from nst.run.data import StyleTransferData
from nst.run.downloads import fetch_ahead
from nst.run.lightning_private import inert_hooks_left_out
from nst.run.module import StyleTransfer
from nst.run.outputs import FinalImage, picture_as_written
from nst.run.pictures import PicturesData, run_dir_of
from nst.run.settings import Layer, Settings
from nst.run.stopping import RunInterrupted, Stop
from nst.run.tensorboard import final_losses
from nst.run.trainer import make_trainer
from nst.run.user_errors import as_nst_error


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


@dataclass
class Picture:
    """One of several pictures optimised together (see Run): its settings, as a run of its own
    takes them (only its images may differ from the others'), its name in messages, and its run
    directory."""

    layers: Sequence[Layer]
    name: str
    run_dir: Path | None = None
    images: Mapping[str, Image.Image] = field(default_factory=dict)


class Run:
    """One style transfer run: one picture, or several optimised together.

    Args:
        layers: The picture's settings, applied in order (see nst.run.settings): command-line
            arguments and mappings of config keys.
        pictures: Instead of ``layers``, several pictures optimised together: one VGG pass for
            all at each step, each picture with its own run directory, optimizer, checkpoint
            and result, as it would come out alone; their settings may differ only in their
            images, and either all continue from checkpoints or none does.
        callbacks: Lightning callbacks added to the trainer (to watch losses and images).
        in_memory: Write nothing: no run directory, logger or checkpoints.
        save_dir: The log folder (default: trainer.logger.init_args.save_dir, ``logs``).
        name: The run directory's folder in it (default: the config file's stem).
        run_dir: Exactly this run directory (new, or continued with a ``ckpt_path``).
        stop: Shared with other runs (a sweep's cells) so that one request stops them all.
        images: Images given in memory, by the name data.content or data.style uses for them.
        settings: How the settings are read (a subclass of Settings reads a subclass's model:
            nst.video's frames).

    Bad settings raise :class:`nst.NSTError` with the one line the command line prints.
    """

    def __init__(
        self,
        layers: Sequence[Layer] = (),
        *,
        pictures: Sequence[Picture] = (),
        callbacks: Sequence[Callback] = (),
        in_memory: bool = False,
        save_dir: str | Path | None = None,
        name: str | None = None,
        run_dir: Path | None = None,
        stop: Stop | None = None,
        images: Mapping[str, Image.Image] | None = None,
        settings: type[Settings] = Settings,
    ) -> None:
        quiet_lightning()
        self.stop_requests = stop or Stop()
        self.new_run_dirs: list[list[Path]] = []
        pictures = list(pictures) or [Picture(layers, "", run_dir, images or {})]
        save_dir = None if save_dir is None else str(save_dir)
        try:
            self.settings = [
                settings(
                    picture.layers,
                    where=None if in_memory else run_dirs.Where(save_dir, name, picture.run_dir),
                    made=self.new_run_dirs,
                )
                for picture in pictures
            ]
            self._check_together(pictures)
            self.model: StyleTransfer = self.settings[0].model
            datas = [settings.datamodule for settings in self.settings]
            for data, picture in zip(datas, pictures, strict=True):
                data.given.update(picture.images)
            self.data: StyleTransferData | PicturesData = (
                datas[0] if len(datas) == 1 else PicturesData(datas, [p.name for p in pictures], self._seed())
            )
            checkpoints = (
                [run_dirs.checkpoint_of(Path(p.run_dir)) for p in pictures] if len(pictures) > 1 else []
            )
            self.trainer = make_trainer(
                self.settings,
                stop=self.stop_requests,
                callbacks=callbacks,
                in_memory=in_memory,
                checkpoints=checkpoints,
            )
        except BaseException as error:
            self.stop_requests.ignoring = True
            self._remove_unfinished()
            reraise_for_user(error)

    def _check_together(self, pictures: Sequence[Picture]) -> None:
        if len(pictures) < 2:
            return
        if any(picture.run_dir is None for picture in pictures):
            raise ValueError("pictures run together each need their own run_dir")
        resumed = {settings.config.ckpt_path is not None for settings in self.settings}
        if len(resumed) > 1:
            raise ValueError("pictures run together either all continue from checkpoints or all start")
        models = [dict(settings.model.hparams) for settings in self.settings]
        if any(model != models[0] for model in models):
            raise ValueError("pictures run together share their model settings; only their images differ")

    def _seed(self) -> int | None:
        seed = self.settings[0].config.get("seed_everything")
        return None if isinstance(seed, bool) else seed

    @property
    def ckpt_path(self) -> str | None:
        return self.settings[0].config.ckpt_path

    def stop(self) -> None:
        """End the run after the step in progress, with a checkpoint (from any thread)."""
        self.stop_requests.request()

    def fit(self) -> Result:
        """Run to the end, or until stopped. A stop at a step boundary returns a Result whose
        ``stopped`` says so (one asked for before fit() ends the run after its first step); a
        signal before the first step, or a second Ctrl-C, raises :class:`RunInterrupted`; bad
        input raises :class:`NSTError`. Building a Run makes its run directory; a Run that is
        never fitted leaves it empty. With several pictures, the first one's result."""
        return self.fit_pictures()[0]

    def fit_pictures(self) -> list[Result]:
        """As :meth:`fit`, each picture's result, in order."""
        self.stop_requests.ignoring = False  # a sweep's earlier cell may have failed and cleaned up
        with self.stop_requests.signals():
            try:
                fetch_ahead(self.settings)  # offline, one line names every file missing
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
                return self._results(stopped)
        return self._results(None)

    def _results(self, stopped: RunInterrupted | None) -> list[Result]:
        trainer, count = self.trainer, len(self.settings)
        final = next((c for c in trainer.callbacks if isinstance(c, FinalImage)), None)
        colours = final.original_colours if final is not None else None
        early = next(
            (c for c in trainer.callbacks if isinstance(c, EarlyStopping) and c.stopping_reason_message),
            None,
        )
        stopped_early = None
        if early is not None and stopped is None:
            stopped_early = f"stopped early at step {trainer.global_step} of {trainer.max_steps}: "
            stopped_early += " ".join(early.stopping_reason_message.split())
            print(stopped_early)
        results = []
        for i, painting in enumerate(self.model.paintings):
            if final is not None and len(final.results) == count:
                picture = final.results[i]
            else:  # stopped early: the picture so far, as it would have been written
                picture = picture_as_written(self.model, i, colours)
            run_dir = run_dir_of(trainer, i, count)
            run_dir = run_dir.absolute() if run_dir is not None else None
            checkpoint = run_dirs.checkpoint_of(run_dir) if run_dir is not None else None
            results.append(
                Result(
                    image=to_pil(picture),
                    tensor=picture.detach().float().cpu(),
                    losses=final_losses(painting),
                    steps=trainer.global_step,
                    run_dir=run_dir,
                    checkpoint=checkpoint if checkpoint is not None and checkpoint.is_file() else None,
                    stopped=stopped,
                    stopped_early=stopped_early,
                )
            )
        return results

    def _remove_unfinished(self) -> None:
        # A run that stopped before its first checkpoint leaves nothing behind that looks like a result.
        for made in self.new_run_dirs:
            run_dirs.remove_if_unfinished(made)


def reraise_for_user(error: BaseException, command: str = "fit") -> None:
    """Raise ``error`` as the one-line NSTError a user should see (naming ``command``'s help),
    or as it is if it is a bug."""
    user = as_nst_error(error, command)
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
