"""Running a sweep's cells: one at a time as runs of their own, or several optimised together
(nst.run.engine's pictures), each leaving its run directory, its result.json and its share of
the time."""

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from nst.errors import NSTError
from nst.many.sweep_figure import RESULT, final_losses, write_bytes, write_text
from nst.many.sweep_file import Cell
from nst.run import run_dirs
from nst.run.engine import Picture, Run
from nst.run.settings import Layer
from nst.run.stopping import Stop


def _continued(cell_dir: Path) -> dict[str, Any]:
    """The setting that continues a cell's run from its checkpoint, if it has one."""
    checkpoint = run_dirs.checkpoint_of(cell_dir)
    if checkpoint.is_file():
        return {"ckpt_path": str(checkpoint)}
    if cell_dir.is_dir():
        run_dirs.remove_if_unfinished([cell_dir])  # stopped before its first checkpoint
    return {}


def run_cell(
    layers: list[Layer],
    cell: Cell,
    sweep_dir: Path,
    stop: Stop,
    callbacks: Sequence[Callback],
) -> str | None:
    """Run one cell (continuing it from its checkpoint if it has one); returns why it failed,
    if it did. Its result.json records the outcome, so a resumed sweep does not run it again."""
    cell_dir = sweep_dir / "cells" / cell.id
    result, failure = _timed(
        cell_dir,
        lambda: Run([*layers, _continued(cell_dir)], run_dir=cell_dir, stop=stop, callbacks=callbacks).fit(),
    )
    _write_result(cell, cell_dir, failure, stopped_early=None if failure else result.stopped_early)
    return failure


def _timed(cell_dir: Path, fit: Callable[[], Any]) -> tuple[Any, str | None]:
    """A cell's run, fitted: its result, or why it failed (a cell that diverges, say: the other
    cells go on); a stop is raised. The wall time is added to the cell's, over interruptions."""
    start = time.perf_counter()
    try:
        result = fit()
    except NSTError as error:
        return None, str(error)
    finally:
        _add_seconds(cell_dir, time.perf_counter() - start)
    if result.stopped is not None:
        raise result.stopped
    return result, None


def run_video_cell(
    layers: list[Layer],
    cell: Cell,
    sweep_dir: Path,
    stop: Stop,
    callbacks: Sequence[Callback],
) -> str | None:
    """Run one cell that paints a video (nst.video.run; continued where it stopped, if it was);
    its directory is a video run's, with final.png its last frame for the sweep's figure."""
    from nst.video.run import VideoRun, frame_path, is_video_run

    cell_dir = sweep_dir / "cells" / cell.id
    continued = {"ckpt_path": str(cell_dir)} if is_video_run(cell_dir) else {}
    result, failure = _timed(
        cell_dir,
        lambda: VideoRun([*layers, continued], run_dir=cell_dir, stop=stop, callbacks=callbacks).fit(),
    )
    if failure is None:
        last = frame_path(cell_dir, len(result.frames) - 1)
        write_bytes(cell_dir / run_dirs.RESULT, last.read_bytes())
    _write_result(cell, cell_dir, failure)
    return failure


def run_together(
    cells: list[Cell],
    layers_of: Callable[[Cell], list[Layer]],
    sweep_dir: Path,
    stop: Stop,
    callbacks: Sequence[Callback],
) -> dict[str, str | None]:
    """Run cells together as one batch (one run of several pictures); returns why each failed, if
    it did. If the batch fails (one picture diverges, say), its cells run again one at a time from
    their checkpoints, so that the others still finish and the failure is the cell's own."""
    cell_dirs = [sweep_dir / "cells" / cell.id for cell in cells]
    pictures = [
        Picture([*layers_of(cell), _continued(cell_dir)], cell.id, run_dir=cell_dir)
        for cell, cell_dir in zip(cells, cell_dirs, strict=True)
    ]
    start = time.perf_counter()
    try:
        stopped = Run(pictures=pictures, stop=stop, callbacks=callbacks).fit().stopped
    except NSTError as error:
        print(f"together they failed ({error}); running them one at a time")
        return {cell.id: run_cell(layers_of(cell), cell, sweep_dir, stop, callbacks) for cell in cells}
    finally:  # each picture's share of the batch's time
        for cell_dir in cell_dirs:
            _add_seconds(cell_dir, (time.perf_counter() - start) / len(cells))
    if stopped is not None:
        raise stopped
    for cell, cell_dir in zip(cells, cell_dirs, strict=True):
        _write_result(cell, cell_dir, None, [other.id for other in cells if other is not cell])
    return dict.fromkeys((cell.id for cell in cells), None)


def _add_seconds(cell_dir: Path, seconds: float) -> None:
    if cell_dir.is_dir():
        seconds_file = cell_dir / "seconds"
        before = float(seconds_file.read_text()) if seconds_file.is_file() else 0.0
        write_text(seconds_file, f"{before + seconds:.3f}")


def _write_result(
    cell: Cell,
    cell_dir: Path,
    failure: str | None,
    together_with: Sequence[str] = (),
    stopped_early: str | None = None,
) -> None:
    summary: dict[str, Any] = {"settings": cell.settings}
    if failure is not None:
        summary["failed"] = failure
    else:
        seconds = cell_dir / "seconds"
        summary |= {"seconds": float(seconds.read_text()), "losses": final_losses(cell_dir)}
    if together_with:
        summary["together_with"] = list(together_with)
    if stopped_early:
        summary["stopped_early"] = stopped_early
    write_text(cell_dir / RESULT, json.dumps(summary, indent=2))
