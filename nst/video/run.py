"""A video run: every frame painted by a run of its own (nst.run.engine), the first as any
picture, each later one from the frame before warped by the optical flow and with the temporal
term in its objective (Ruder, Dosovitskiy & Brox 2016). The run directory::

    logs/<config>/version_N/
        video.mp4            the result: H.264, the source's frame rate and sound
        frames/000000.png    each stylised frame, written as it is finished
        video.json           what is done: frames, steps and losses per frame (resume reads it)
        config.yaml          the settings, to run again
        input/, flow/        the source frames at the working size, and flows still ahead
        runs/frame_000000/   each frame's run: TensorBoard curves, its checkpoint while painted

TensorBoard shows the video's own curves (steps, losses and seconds per frame, and each finished
frame) and each frame's run beside it. Ctrl-C ends the frame being painted at a step boundary
with its checkpoint; ``--ckpt_path last`` continues at that frame and step.
"""

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch import Callback
from PIL import Image

from nst.errors import NSTError
from nst.files import atomic_write
from nst.images import check_painted_size
from nst.run import run_dirs
from nst.run.engine import Run
from nst.run.settings import Layer, parse_layers
from nst.run.stopping import RunInterrupted, Stop
from nst.video.options import VideoOptions, VideoSettings, video_options
from nst.video.plateau import Plateau
from nst.video.prepare import Preparer
from nst.video.progress import VideoProgress
from nst.video.source import VideoSource, read_rgb
from nst.video.temporal import tie
from nst.video.writer import write_video

STATE = "video.json"
RESULT = "video.mp4"


@dataclass
class VideoResult:
    """What a video run gave: the video (None if stopped before the end), its frames, the steps
    each frame took, and where it all is."""

    run_dir: Path
    video: Path | None
    frames: list[Path]
    steps: list[int]
    stopped: RunInterrupted | None = None


def frame_path(run_dir: Path, index: int) -> Path:
    return run_dir / "frames" / f"{index:06d}.png"


def is_video_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a video run's directory."""
    return (run_dir / STATE).is_file()


class VideoRun:
    """A video painted frame by frame (see the module's docstring).

    Args:
        layers: The settings (as nst.run.engine.Run takes them); data.content is the video (a
            file or a folder of frames), data.size the long side of the frames painted.
        callbacks: Lightning callbacks added to every frame's run.
        save_dir, name: Where the run directory goes (default: the logger's save_dir, and the
            config file's name).
        stop: Ends the run at the next step boundary (Ctrl-C and SIGTERM do too).
        images: Images given in memory, by the name data.style uses for them.
        on_frame: Called with each frame's index and PNG once it is finished (the studio's view).
        run_dir: Exactly this run directory (a sweep's cell): new, or continued with ``ckpt_path``.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        callbacks: Sequence[Callback] = (),
        save_dir: str | Path | None = None,
        name: str | None = None,
        stop: Stop | None = None,
        images: dict[str, Image.Image] | None = None,
        on_frame: Callable[[int, Path], None] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.on_frame = on_frame
        self.layers, self.callbacks = list(layers), list(callbacks)
        self.stop_requests = stop or Stop()
        self.images = dict(images or {})
        config = parse_layers(self.layers, VideoSettings)
        self.options: VideoOptions = video_options(config)
        data, model = config["data"], config["model"]
        if not data.get("content"):
            raise NSTError("a video run needs the video as data.content (a file or a folder of frames)")
        if model.get("phases"):
            raise NSTError(
                "model.phases (multi-scale) is not available for video; set data.size and leave phases out"
            )
        self.source = VideoSource(data["content"], self.options.fps)
        if self.options.frames and self.source.count and self.options.frames > self.source.count:
            raise NSTError(
                f"video.frames is {self.options.frames} but {self.source.path} has {self.source.count} frames; "
                "leave it out to paint them all"
            )
        self.size = working_size(self.source.size, data["size"])
        # Where the written frames take the photo's colours, the frames are tied in luminance:
        # the painting's own colours are not kept, and the written ones would pull against its style.
        recoloured = (config.get("output") or {}).get("original_colours")
        self.grey = bool(data.get("luminance_only") or recoloured)
        self._bar = config["trainer"].get("enable_progress_bar") is not False
        logger = (config["trainer"].get("logger") or {}).get("init_args") or {}
        root = Path(save_dir or logger.get("save_dir") or "logs") / (
            name or logger.get("name") or _stem(config)
        )
        ckpt_path = config.get("ckpt_path")
        self.settings = _as_given(config)
        if ckpt_path:
            self.run_dir = _resumed(root, str(run_dir) if run_dir is not None else ckpt_path)
            self.state = json.loads((self.run_dir / STATE).read_text())
            if _identity(self.state["settings"]) != _identity(self.settings):
                raise NSTError(
                    f"{self.run_dir} was started with other settings; continue it with the same ones "
                    "(only --ckpt_path added), or start a new run without --ckpt_path"
                )
            print(f"Resuming {self.run_dir} at frame {len(self.state['steps']) + 1}")
            self._made: list[Path] = []
        else:
            if run_dir is not None:  # kept whatever happens: its owner (a sweep) says what became of it
                self._made, self.run_dir = [], Path(run_dir)
                self.run_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._made = run_dirs.create_run_dir(root)
                self.run_dir = self._made[0]
            self.state = {"settings": self.settings, "size": list(self.size), "fps": str(self.source.fps)}
            self.state |= {"steps": [], "losses": [], "seconds": []}
            with atomic_write(self.run_dir / "config.yaml") as (out, _):
                out.write(yaml.safe_dump(self.settings, sort_keys=False).encode())
            _write_json(self.run_dir / STATE, self.state)  # a run stopped in its first frame continues
        self._writer = None

    # -- the run ----------------------------------------------------------------------------

    @property
    def total(self) -> int | None:
        """How many frames the run paints (None: not known before the video has been read)."""
        return min(filter(None, (self.options.frames, self.source.count)), default=None)

    def stop(self) -> None:
        """End the run after the step in progress, with a checkpoint (from any thread)."""
        self.stop_requests.request()

    def fit(self) -> VideoResult:
        """Paint the frames still to paint, then write the video. Returns with ``stopped`` set
        when a stop request ended it early; bad input raises NSTError (a run that had painted
        nothing leaves nothing behind)."""
        done = self._first = len(self.state["steps"])
        self.progress = VideoProgress(self.total, done, bar=self._bar)
        preparer = Preparer(
            self.source, self.run_dir, self.size, self.options.frames, self.options.consistency,
            self.options.flow, start=done,
        )  # fmt: skip
        try:
            index = done
            while (prepared := preparer.get(index)) is not None:
                stopped = self._frame(index, prepared, preparer)
                if stopped is not None:
                    return self._result(stopped)
                index += 1
                # Asked between two frames (or in a frame's last step): nothing is half done.
                # With no frame left, the video is written as if no one had asked.
                if self.stop_requests.requested is not None and preparer.get(index) is not None:
                    return self._result(self._kept(self.stop_requests.requested))
            video = self._write_video(preparer.flow_seconds)
        except RunInterrupted as stopped:  # a signal between two frames' runs, or as one started
            preparer.close()
            if self._painted_nothing():
                self._remove_made()
                raise
            return self._result(self._kept(stopped.signum))
        except BaseException:
            preparer.close()  # before anything is removed: it may be writing there
            if self._painted_nothing():
                self._remove_made()  # nothing painted: nothing left behind
            raise
        finally:
            preparer.close()
            self.progress.close()
            if self._writer is not None:
                self._writer.close()
        print(
            f"Wrote {video} ({len(self.state['steps'])} frames); each frame is in {self.run_dir / 'frames'}"
        )
        return self._result(None, video)

    def _frame(self, index: int, prepared: Any, preparer: Preparer) -> RunInterrupted | None:
        # Lightning's notes ("GPU available", "Seed set", "max_steps reached") for the first
        # frame this process paints, not again for every frame.
        with _quiet() if index > self._first else contextlib.nullcontext():
            return self._paint(index, prepared, preparer)

    def _painted_nothing(self) -> bool:
        return not self.state["steps"] and not any((self.run_dir / "runs").glob("*/checkpoints/*.ckpt"))

    def _kept(self, signum: int) -> RunInterrupted:
        # (Its "checkpoint" is where the finished frames are: a video continues from them.)
        stopped = RunInterrupted(signum, str(self.run_dir / "frames"))
        stopped.resumable = True
        return stopped

    def _remove_made(self) -> None:
        for path in self._made:
            shutil.rmtree(path, ignore_errors=True)

    def _paint(self, index: int, prepared: Any, preparer: Preparer) -> RunInterrupted | None:
        started = time.perf_counter()
        run_dir = self.run_dir / "runs" / f"frame_{index:06d}"
        resumed = run_dirs.checkpoint_of(run_dir).is_file()
        if not resumed:  # stopped before its first checkpoint: nothing there to continue
            shutil.rmtree(run_dir, ignore_errors=True)
        steps = self.options.steps_first if index == 0 else self.options.steps
        name = f"frame {index}"
        frame = {
            "data.content": name,
            "data.size": list(self.size),
            "trainer.max_steps": steps,
            "ckpt_path": "last" if resumed else None,
            "trainer.enable_progress_bar": False,  # the video's bar shows the frame's step
        }
        plateau = Plateau(self.options.patience, self.options.min_delta)
        callbacks = [*self.callbacks, self.progress, *([plateau] if index > 0 else [])]
        run = Run(
            [*self.layers, frame],
            callbacks=callbacks,
            run_dir=run_dir,
            stop=self.stop_requests,
            images={**self.images, name: Image.fromarray(prepared.frame)},
            settings=VideoSettings,
        )
        earlier = {
            offset: read_rgb(frame_path(self.run_dir, index - offset))
            for offset in prepared.flows
            if index - offset >= 0
        }
        tied = tie(earlier, prepared.flows, self.grey)
        if tied is not None:
            start, run.model.temporal = tied
            if self.options.init == "warped":
                run.model.start = start
        result = run.fit()
        if result.stopped is not None:
            return result.stopped
        # A signal now is noted (the loop stops before the next frame), not raised: a frame
        # counted as finished and its checkpoint removed go together.
        with self.stop_requests.waiting():
            _write_png(frame_path(self.run_dir, index), result.image)
            self.state["steps"].append(result.steps)
            self.state["losses"].append(result.losses)
            self.state["seconds"].append(time.perf_counter() - started)
            _write_json(self.run_dir / STATE, self.state)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # done: the PNG is its result
            preparer.forget(index)
            self._log(index, result)
            self.progress.frame_done(index, result.steps, self.state["seconds"][-1])
            if self.on_frame is not None:
                self.on_frame(index, frame_path(self.run_dir, index))
        return None

    # -- what the user sees -----------------------------------------------------------------

    def _log(self, index: int, result: Any) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir))
        writer = self._writer
        writer.add_scalar("video/steps", result.steps, index)
        writer.add_scalar("video/seconds", self.state["seconds"][-1], index)
        for key, value in result.losses.items():
            writer.add_scalar(f"video/{key}", value, index)
        writer.add_image("video/frame", np.asarray(result.image), index, dataformats="HWC")
        writer.flush()

    def _write_video(self, flow_seconds: float) -> Path:
        frames = len(self.state["steps"])
        path = self.run_dir / RESULT
        # The sound is copied as it is; frames re-timed by video.fps would leave it out of step.
        keep = self.source.audio and self.source.path.is_file() and self.options.fps is None
        audio = self.source.path if keep else None
        write_video(
            path,
            (read_rgb(frame_path(self.run_dir, i)) for i in range(frames)),
            Fraction(self.state["fps"]),
            audio_from=audio,
        )
        self.state["video"] = RESULT
        self.state["flow_seconds"] = self.state.get("flow_seconds", 0) + flow_seconds
        _write_json(self.run_dir / STATE, self.state)
        return path

    def _result(self, stopped: RunInterrupted | None, video: Path | None = None) -> VideoResult:
        count = len(self.state["steps"])
        frames = [frame_path(self.run_dir, i) for i in range(count)]
        return VideoResult(self.run_dir, video, frames, list(self.state["steps"]), stopped)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def working_size(source: tuple[int, int], size: int | Sequence[int]) -> tuple[int, int]:
    """The frames' size as painted: data.size's long side (or [width, height]) at the video's
    aspect ratio, each side even (H.264 in yuv420p needs that)."""
    sides = [size] if isinstance(size, int) else list(size)
    if len(sides) not in (1, 2) or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in sides):
        raise NSTError(f"data.size must be the long side in pixels (e.g. 512) or [width, height], got {size}")
    if isinstance(size, int):
        scale = size / max(source)
        width, height = source[0] * scale, source[1] * scale
    else:
        width, height = size
    width, height = max(2, 2 * round(width / 2)), max(2, 2 * round(height / 2))
    check_painted_size((int(width), int(height)), f"data.size {size} makes the frames", "lower data.size")
    return int(width), int(height)


def _resumed(root: Path, ckpt_path: str) -> Path:
    if ckpt_path != "last":
        run_dir = Path(ckpt_path)
        if not (run_dir / STATE).is_file():
            raise NSTError(
                f"{ckpt_path} is not a video run directory (it has no {STATE}); use --ckpt_path last"
            )
        return run_dir
    runs = [root / f"version_{v}" for v in run_dirs.versions(root)]
    runs = [run for run in runs if (run / STATE).is_file()]
    if not runs:
        raise NSTError(f"no video run in {root} to continue; start one without --ckpt_path")
    return max(runs, key=lambda run: (run / STATE).stat().st_mtime)


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What a continued video must share with the run it continues: what paints the frames
    (not how it is watched, logged or checkpointed)."""
    return {key: settings.get(key) for key in ("seed_everything", "model", "data", "video")}


def _as_given(config: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in config.items() if k not in ("config", "ckpt_path", "__path__")}
    return json.loads(json.dumps(settings, default=str))


def _stem(config: dict[str, Any]) -> str:
    files = config.get("config") or []
    return Path(str(files[-1])).stem if files else "video"


def _write_png(path: Path, image: Image.Image) -> None:
    with atomic_write(path) as (out, _):
        image.save(out, format="PNG")


def _write_json(path: Path, state: dict[str, Any]) -> None:
    with atomic_write(path) as (out, _):
        out.write(json.dumps(state, indent=1).encode())
