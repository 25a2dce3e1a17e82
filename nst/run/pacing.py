"""Periodic writes held to a share of a run's time.

A checkpoint every 50 steps and an image every 25 suit a CPU, where 50 steps of a 512 px
picture take a minute. On a GPU they take ~50 ms, while writing one L-BFGS checkpoint of that
picture takes ~0.5 s (456 MB, measured on a CPU): on schedule, the writes would take ten times
the optimisation's time. So a periodic write that is due waits until the last one's duration
is the set share of the time since it began. Where writes are cheap against steps (any CPU run
with the shipped settings) nothing waits; a stop and the end of a run always write.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic

from nst.errors import NSTError


class Pacing:
    """Whether a due periodic write may happen now: after one that took ``d`` seconds, the next
    waits until ``d / share`` seconds have passed since that one began (share 0: never waits)."""

    def __init__(self, share: float, option: str) -> None:
        if not 0 <= share < 1:
            raise NSTError(f"{option} must be at least 0 and below 1, got {share}")
        self.share = share
        self._next = -math.inf

    def ready(self) -> bool:
        return not self.share or monotonic() >= self._next

    def due(self, step: int, every: int) -> bool:
        """Whether a write every ``every`` steps (0: none) happens after ``step``."""
        return bool(every) and step % every == 0 and self.ready()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Times the write in the block."""
        start = monotonic()
        yield
        if self.share:
            self._next = start + (monotonic() - start) / self.share
