"""The frames a video run paints, made ready ahead of the optimiser, in a thread of their own:
each source frame at the working size (``input/000012.png``) and, for each offset in
video.consistency, the flow back to that earlier frame with the mask of where it can be trusted
(``flow/000012-1.npz``). OpenCV and PyAV let go of Python's lock while they work, so the VGG
never waits for flow unless the flow falls behind.

Everything is cached in the run directory: a resumed run reads what was made and makes only
what is missing. A frame's flows are removed once the frame is painted (they are several times
its size); the frames stay, for side-by-side comparisons.
"""

import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from nst.files import atomic_write
from nst.video.flow import flow_between, grey, reliable
from nst.video.source import VideoSource, read_rgb

AHEAD = 8  # frames made ready beyond the one being painted: enough to hide flow, bounded on disk


def input_path(run_dir: Path, index: int) -> Path:
    return run_dir / "input" / f"{index:06d}.png"


def flow_path(run_dir: Path, index: int, offset: int) -> Path:
    return run_dir / "flow" / f"{index:06d}-{offset}.npz"


class Prepared:
    """Frame ``index`` as made ready: its pixels at the working size ([H, W, 3] uint8) and, for
    each offset it can look back, the backward flow ([H, W, 2]) and its reliability ([H, W])."""

    def __init__(self, run_dir: Path, index: int, offsets: Sequence[int]) -> None:
        self.frame = read_rgb(input_path(run_dir, index))
        self.index = index
        self.flows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for offset in offsets:
            if index - offset >= 0:
                with np.load(flow_path(run_dir, index, offset)) as saved:
                    self.flows[offset] = (saved["backward"], saved["reliable"].astype(np.float32))


class Preparer:
    """Makes frames ready in the background; ``get(i)`` waits for frame ``i`` (None past the end).

    Args:
        source: The video.
        run_dir: Where ``input/`` and ``flow/`` are kept.
        size: The working size (width, height).
        frames: How many frames to take (None: all).
        offsets: video.consistency: how far back each frame is tied.
        preset: DIS's preset.
        start: The first frame still to paint (a resumed run's): earlier frames are only read.
    """

    def __init__(
        self,
        source: VideoSource,
        run_dir: Path,
        size: tuple[int, int],
        frames: int | None,
        offsets: Sequence[int],
        preset: str = "medium",
        start: int = 0,
    ) -> None:
        self.start = start
        self.source, self.run_dir, self.size, self.limit = source, run_dir, size, frames
        self.offsets, self.preset = sorted(offsets), preset
        self.ready = 0  # frames made ready, in order
        self.ended: int | None = None  # the frame count, once the source has run out
        self.painting = start  # the frame being painted: the thread stays at most AHEAD beyond it
        self.flow_seconds = 0.0  # time spent on flow (for the video's report)
        self._error: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()
        (run_dir / "input").mkdir(parents=True, exist_ok=True)
        (run_dir / "flow").mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._work, name="nst-video-flow", daemon=True)
        self._thread.start()

    def get(self, index: int) -> Prepared | None:
        """Frame ``index`` once it is ready; None when the video has fewer frames."""
        with self._changed:
            self.painting = index
            self._changed.notify_all()
            while self.ready <= index and self.ended is None and self._error is None:
                self._changed.wait()
            if self.ready <= index:  # the source ended, or broke off, before this frame
                if self._error is not None:
                    raise self._error
                return None
        return Prepared(self.run_dir, index, self.offsets)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=30)

    def _work(self) -> None:
        try:
            recent: deque[np.ndarray] = deque(maxlen=max(self.offsets, default=1))
            for index, frame in enumerate(self.source.frames(self.limit)):
                with self._changed:
                    while index > self.painting + AHEAD and not self._closed:
                        self._changed.wait()
                    if self._closed:
                        return
                frame = self._sized(frame, index)
                now = grey(frame)
                for offset in self.offsets:
                    if (
                        index >= self.start
                        and offset <= len(recent)
                        and not flow_path(self.run_dir, index, offset).is_file()
                    ):
                        started = time.perf_counter()
                        self._flow(recent[-offset], now, index, offset)
                        self.flow_seconds += time.perf_counter() - started
                recent.append(now)
                with self._changed:
                    self.ready = index + 1
                    self._changed.notify_all()
            with self._changed:
                self.ended = self.ready
                self._changed.notify_all()
        except BaseException as error:  # handed to the optimiser's thread, which says it
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _sized(self, frame: np.ndarray, index: int) -> np.ndarray:
        path = input_path(self.run_dir, index)
        if path.is_file():  # made by the run before a resume: the same pixels, read back
            return read_rgb(path)
        image = Image.fromarray(frame)
        if image.size != self.size:
            image = image.resize(self.size, Image.Resampling.LANCZOS)
        with atomic_write(path) as (out, _):
            image.save(out, format="PNG")
        return np.asarray(image)

    def _flow(self, earlier: np.ndarray, later: np.ndarray, index: int, offset: int) -> None:
        backward = flow_between(later, earlier, self.preset)
        forward = flow_between(earlier, later, self.preset)
        mask = reliable(forward, backward).astype(np.uint8)
        with atomic_write(flow_path(self.run_dir, index, offset)) as (out, _):
            np.savez(out, backward=backward, reliable=mask)

    def forget(self, index: int) -> None:
        """Remove frame ``index``'s flows: the frame is painted."""
        for offset in self.offsets:
            flow_path(self.run_dir, index, offset).unlink(missing_ok=True)
