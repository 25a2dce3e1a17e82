"""Reading a video as a stream of frames: a file PyAV opens (its wheel carries FFmpeg: mp4, mov,
webm, mkv, gif, ...) or a folder of numbered frames. Frames come one at a time, so a long video
never sits in memory."""

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nst.errors import NSTError

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v"}  # what a folder of clips holds
FRAME_FILES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_FPS = 1000


class VideoSource:
    """A video to read: its frame rate, size, frame count (None where the file does not say) and
    whether it has sound; ``frames()`` yields its frames as [H, W, 3] uint8 arrays.

    Args:
        path: A video file or a folder of numbered frames (``0001.png``, ``frame_0002.png``, ...).
        fps: The frame rate of a folder of frames (a file's own rate is used otherwise, unless given).
    """

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if fps is not None and not (0 < fps <= MAX_FPS):
            raise NSTError(f"video.fps must be a frame rate between 0 and {MAX_FPS}, got {fps}")
        if not self.path.exists():
            raise NSTError(f"the video {self.path} does not exist: check the path given as data.content")
        if self.path.is_dir():
            self._files = numbered_frames(self.path)
            self.size = _same_size(self._files)
            self.count: int | None = len(self._files)
            self.fps = Fraction(fps or 25).limit_denominator(1001)
            self.audio = False
            return
        self._files = []
        container = _open(self.path)
        try:
            streams = container.streams.video
            if not streams:
                raise NSTError(
                    f"{self.path} has no frames (it holds no video stream): give a video file or a folder of frames"
                )
            stream = streams[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.size = (stream.codec_context.width, stream.codec_context.height)
            self.count = stream.frames or None
            self.audio = bool(container.streams.audio)
        finally:
            container.close()
        if fps is not None:
            rate = Fraction(fps).limit_denominator(1001)
        if rate is None or not (0 < rate <= MAX_FPS):
            raise NSTError(
                f"{self.path} gives no usable frame rate ({rate}); set one with --video.fps, e.g. 25"
            )
        self.fps = Fraction(rate)
        if not (self.size[0] > 0 and self.size[1] > 0):
            raise NSTError(f"{self.path} has a video stream without a picture size: it cannot be read")

    def frames(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """The frames in order, each [H, W, 3] uint8 RGB (at most ``limit``)."""
        taken = 0
        if self._files:
            for file in self._files[:limit]:
                frame = _read_frame(file)
                if (frame.shape[1], frame.shape[0]) != self.size:  # changed since it was opened
                    raise _mixed(file, (frame.shape[1], frame.shape[0]), self._files[0], self.size)
                yield frame
            return
        container = _open(self.path)
        try:
            for frame in container.decode(video=0):
                if limit is not None and taken >= limit:
                    return
                taken += 1
                yield frame.to_ndarray(format="rgb24")
        except NSTError:
            raise
        except Exception as error:  # av.FFmpegError and kin: a file that breaks off
            if taken == 0:
                raise NSTError(
                    f"{self.path} could not be decoded ({error}): is it a whole video file?"
                ) from error
            raise NSTError(f"{self.path} breaks off after frame {taken}: {error}") from error
        finally:
            container.close()
        if taken == 0:
            raise NSTError(f"{self.path} has no frames: give a video with at least one frame")


def numbered_frames(folder: Path) -> list[Path]:
    """The images in ``folder`` in the order of the number in their names."""
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FRAME_FILES]
    if not files:
        raise NSTError(
            f"the folder {folder} holds no frames: put the video's frames there as numbered images "
            f"({', '.join(FRAME_FILES)}), or give a video file"
        )

    def number(file: Path) -> tuple[int, str]:
        found = re.findall(r"\d+", file.stem)
        return (int(found[-1]) if found else -1, file.name)

    return sorted(files, key=number)


def _same_size(files: list[Path]) -> tuple[int, int]:
    # Checked before anything is painted (opening an image reads its header only).
    size = None
    for file in files:
        try:
            with Image.open(file) as image:
                if size is None:
                    size = image.size
                elif image.size != size:
                    raise _mixed(file, image.size, files[0], size)
        except (OSError, ValueError) as error:
            raise NSTError(f"the frame {file} cannot be read as an image ({error})") from error
    return size


def _mixed(file: Path, size: tuple[int, int], first: Path, first_size: tuple[int, int]) -> NSTError:
    return NSTError(
        f"{file.name} is {size[0]}×{size[1]} px but {first.name} is {first_size[0]}×{first_size[1]} px: "
        "all frames of a video must have one size"
    )


def read_rgb(path: Path) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _read_frame(file: Path) -> np.ndarray:
    try:
        return read_rgb(file)
    except (OSError, ValueError) as error:
        raise NSTError(f"the frame {file} cannot be read as an image ({error})") from error


def _open(path: Path) -> Any:  # av.container.InputContainer (av is imported only when needed)
    import av

    try:
        return av.open(str(path))
    except Exception as error:  # av.error.InvalidDataError and kin
        raise NSTError(
            f"{path} is not a video nst can read ({' '.join(str(error).split())}); give an mp4, mov, webm, "
            "mkv or gif file, or a folder of numbered frames"
        ) from error
