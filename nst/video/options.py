"""The ``video`` section of a video run's settings, and how they are read."""

from dataclasses import dataclass, field
from typing import Any, Literal

from lightning.pytorch.cli import LightningArgumentParser

from nst.errors import NSTError
from nst.run.settings import Settings
from nst.video.module import VideoStyleTransfer


@dataclass
class VideoOptions:
    """How a video is painted, frame after frame (Ruder, Dosovitskiy & Brox 2016).

    Args:
        init: Where each frame after the first starts: ``warped`` (the frame before, stylised,
            moved by the optical flow) or ``content`` (the frame itself, as the first one does).
        steps_first: At most this many steps for the first frame (a run of its own).
        steps: At most this many steps for each later frame; a frame also ends when its loss has
            stopped improving (see patience).
        frames: How many frames to paint (default: all).
        consistency: How far back each frame is tied: 1 is the frame before; [1, 2, 4] ties each
            pixel to the nearest of those frames whose flow it can trust (long-term consistency).
        patience: A frame ends after this many steps in which its best loss fell by less than min_delta.
        min_delta: The improvement that counts, as a fraction of the loss (0.005: 0.5 %).
        flow: OpenCV DIS preset: ``ultrafast``, ``fast`` or ``medium`` (slower, finer).
        fps: Frame rate of a folder of frames (default 25), or one to replace a file's.
    """

    init: Literal["warped", "content"] = "warped"
    steps_first: int = 500
    steps: int = 200
    frames: int | None = None
    consistency: list[int] = field(default_factory=lambda: [1, 2, 4])
    patience: int = 10
    min_delta: float = 5e-3
    flow: Literal["ultrafast", "fast", "medium"] = "medium"
    fps: float | None = None

    def check(self) -> None:
        for name in ("steps_first", "steps", "patience"):
            value = getattr(self, name)
            if value < 1:
                raise NSTError(f"video.{name} must be at least 1, got {value}")
        if self.frames is not None and self.frames < 1:
            raise NSTError(f"video.frames must be at least 1 (or null for all), got {self.frames}")
        if not self.consistency or any(j < 1 for j in self.consistency) or 1 not in self.consistency:
            raise NSTError(
                f"video.consistency must list how far back frames are tied, 1 among them, e.g. [1, 2, 4]; got {self.consistency}"
            )
        if not 0 <= self.min_delta < 1:
            raise NSTError(f"video.min_delta is a fraction of the loss in [0, 1), got {self.min_delta}")


class VideoSettings(Settings):
    """A video run's settings: a run's, with the video's model and a ``video`` section."""

    MODEL = VideoStyleTransfer
    PROG = "nst video"
    DESCRIPTION = (
        "Paint a video frame by frame, each frame tied to the ones before by optical flow "
        "(Ruder et al. 2016): video.mp4 and frames/ in logs/<config>/version_N."
    )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_class_arguments(VideoOptions, "video", fail_untyped=False)


def video_options(config: dict[str, Any]) -> VideoOptions:
    options = VideoOptions(**(config.get("video") or {}))
    options.check()
    return options
