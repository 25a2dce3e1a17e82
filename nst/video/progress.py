"""What a video run shows in the terminal: one bar over the frames, with the step of the frame
being painted, its loss and the time left, and one line for each finished frame (how many steps
it took). Each frame's run draws no bar of its own."""

import sys
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class VideoProgress(Callback):
    """The bar (``bar=False``: the lines only). ``total`` frames (None: not known beforehand),
    ``done`` of them painted before this process started."""

    def __init__(self, total: int | None, done: int, bar: bool = True) -> None:
        self.total, self.done, self.index = total, done, done
        self.seconds: list[float] = []  # of the frames after the first that this process painted
        self._bar = None
        self._shown = 0.0
        # A terminal redraws the line in place; a log file (or a pipe) gets every redraw as text.
        self._every = 0.2 if sys.stderr.isatty() else 10.0
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames{postfix}",
            )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._bar is None or time.monotonic() - self._shown < self._every:
            return
        self._shown = time.monotonic()
        losses = pl_module.painting.losses
        loss = f" loss {losses['loss/total']:.4g}" if "loss/total" in losses else ""
        self._bar.set_postfix_str(
            f"frame {self.index + 1}: step {trainer.global_step}/{trainer.max_steps}{loss}{self._left()}"
        )

    def frame_done(self, index: int, steps: int, seconds: float) -> None:
        """Frame ``index`` took ``steps`` steps and ``seconds``."""
        if index > 0:
            self.seconds.append(seconds)
        self.index = index + 1
        of = f"/{self.total}" if self.total else ""
        line = f"frame {index + 1}{of}: {steps} steps in {seconds:.1f} s{self._left()}"
        if self._bar is None:
            print(line, flush=True)
            return
        self._bar.write(line, file=sys.stdout)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _left(self) -> str:
        if not self.total or not self.seconds or self.index >= self.total:
            return ""
        remaining = (self.total - self.index) * sum(self.seconds) / len(self.seconds)
        return f" · about {duration(remaining)} left"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
