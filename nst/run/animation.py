"""An animation of the optimisation: frames taken every N steps, each with its step number.

Frames are written to ``<run dir>/frames/`` as they are taken, so a long run holds none of them in
memory while it runs, and a resumed run adds to the same sequence. At the end they become ``animation.gif``
(or ``animation.mp4`` where ffmpeg is installed), thinned evenly to at most ``max_frames``.
"""

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from nst.errors import NSTError
from nst.files import atomic_write
from nst.images import save_image
from nst.run.pictures import run_dir_of

FRAMES = "frames"
_FRAME = re.compile(r"step_(\d+)\.png$")


def frames_of(run_dir: Path) -> list[tuple[int, Path]]:
    """The frames a run has taken, as (step, file), in step order."""
    found = [
        (int(m.group(1)), p) for p in (run_dir / FRAMES).glob("step_*.png") if (m := _FRAME.search(p.name))
    ]
    return sorted(found)


def thin(items: list, at_most: int) -> list:
    """At most ``at_most`` items spread evenly, always keeping the first and the last."""
    if len(items) <= at_most:
        return items
    if at_most == 1:
        return items[-1:]
    return [items[round(i * (len(items) - 1) / (at_most - 1))] for i in range(at_most)]


def read_frame(path: Path, size: tuple[int, int]) -> Image.Image:
    """The frame at ``path`` at ``size`` (width, height): the frames of a multi-scale run's
    early phases are smaller than the result, and an animation's frames share one size."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def label(image: Image.Image, text: str) -> Image.Image:
    """``image`` with ``text`` in a dark band in its bottom-left corner."""
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=max(10, image.height // 18))
    except (TypeError, OSError):
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = 3, image.height - (bottom - top) - 6
    draw.rectangle((x - 2, y - 2 + top, x + right - left + 2, y + bottom + 1), fill=(0, 0, 0))
    draw.text((x - left, y), text, fill=(255, 255, 255), font=font)
    return image


def write_animation(frames: Iterator[Image.Image], path: Path, fps: float) -> None:
    """Write ``frames`` (all the same size) as a looping GIF, or as MP4 through ffmpeg."""
    frames = iter(frames)
    first = next(frames)
    if path.suffix == ".mp4":
        _write_mp4(first, frames, path, fps)
        return
    with atomic_write(path) as (out, _):
        # The frames come from an iterator, read from disk one by one; Pillow's encoder keeps
        # each (a byte per pixel) until it writes the file, so max_frames bounds the memory.
        first.save(out, format="GIF", save_all=True, append_images=frames, duration=round(1000 / fps), loop=0)


def _write_mp4(first: Image.Image, rest: Iterator[Image.Image], path: Path, fps: float) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise NSTError(
            "animation.format mp4 needs ffmpeg on the PATH; install it or use animation.format gif"
        )
    width, height = first.width // 2 * 2, first.height // 2 * 2  # H.264 wants even sizes
    with atomic_write(path) as (_, tmp):
        command = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
        command += [
            "-s",
            f"{width}x{height}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
            str(tmp),
        ]
        process = subprocess.Popen(command, stdin=subprocess.PIPE)
        for frame in (first, *rest):
            process.stdin.write(frame.convert("RGB").crop((0, 0, width, height)).tobytes())
        process.stdin.close()
        if process.wait() != 0:
            raise NSTError(f"ffmpeg could not write {path}; try animation.format gif")


class Animation(Callback):
    """Takes a frame every ``every_n_steps`` steps and writes the animation when the run ends.

    Args:
        every_n_steps: Take a frame every this many steps (0: no animation).
        format: ``gif``, or ``mp4`` (needs ffmpeg on the PATH).
        max_frames: Most frames the animation shows; a longer run is thinned evenly.
        fps: Frames per second.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        format: Literal["gif", "mp4"] = "gif",
        max_frames: int = 200,
        fps: float = 10,
    ) -> None:
        if every_n_steps < 0:
            raise NSTError(f"animation.every_n_steps must be ≥ 0, got {every_n_steps}")
        if max_frames < 1 or fps <= 0:
            raise NSTError("animation.max_frames must be at least 1 and animation.fps above 0")
        self.every_n_steps = every_n_steps
        self.format = format
        self.max_frames = max_frames
        self.fps = fps

    def _run_dirs(self, trainer: Trainer, pl_module: LightningModule) -> list[tuple[Path, Tensor]]:
        """Each picture's run directory and image (none for a run kept in memory)."""
        if not self.every_n_steps:
            return []
        paintings = pl_module.paintings
        found = [(run_dir_of(trainer, i, len(paintings)), p.image) for i, p in enumerate(paintings)]
        return [(run_dir, image) for run_dir, image in found if run_dir is not None]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.format == "mp4" and self.every_n_steps and shutil.which("ffmpeg") is None:
            raise NSTError(
                "animation.format mp4 needs ffmpeg on the PATH; install it or use animation.format gif"
            )

    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._take(trainer, pl_module)

    @rank_zero_only
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._take(trainer, pl_module)

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._take(trainer, pl_module)  # the last step, whatever the interval
        for run_dir, image in self._run_dirs(trainer, pl_module):
            frames = thin(frames_of(run_dir), self.max_frames)
            size = (image.shape[-1], image.shape[-2])
            labelled = (label(read_frame(path, size), f"step {step}") for step, path in frames)
            write_animation(labelled, run_dir / f"animation.{self.format}", self.fps)

    def _take(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for run_dir, image in self._run_dirs(trainer, pl_module):
            save_image(image, run_dir / FRAMES / f"step_{trainer.global_step:06d}.png")
