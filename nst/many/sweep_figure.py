"""What a finished sweep shows: the grid of its cells' results (``figure.png``, with each
cell's box in ``figure.json``), every cell's loss curve (``losses.png``) and, where the cells
took frames, the grid as it was at each step (``animation.gif``)."""

import json
from pathlib import Path
from typing import Any

from PIL import Image

from nst.files import atomic_write
from nst.many.figure import Grid, draw_contact_sheet, draw_grid, plot_losses, save_figure
from nst.many.sweep_file import Axis, Cell, Sweep, describe
from nst.run import run_dirs
from nst.run.animation import frames_of, label, read_frame, thin, write_animation

FIGURE = "figure.png"
LOSSES = "losses.png"
RESULT = "result.json"  # per cell: wall time and final losses, or why it failed
RESULTS = "results"  # every cell's picture, named <photo>__<painting>.png
# A grid wider or taller than this becomes a contact sheet of thumbnails.
MAX_FIGURE_SIDE = 8000


def draw(sweep: Sweep, cells: list[Cell], sweep_dir: Path, inputs: dict[str, Any]) -> None:
    """Write the sweep's results folder, figure, box list, loss curves and (if frames were
    taken) animation."""
    collect(sweep, cells, sweep_dir)
    grid = _grid(sweep, cells, sweep_dir, inputs)
    figure, boxes = draw_grid(grid)
    # Where each cell's result sits in the figure, for anyone cropping or checking it.
    placed = {cell.id: boxes[cell.row][cell.column] for cell in cells}
    if max(figure.size) > MAX_FIGURE_SIDE:  # hundreds of results: a contact sheet of thumbnails
        items = [(sweep.result_name(cell), grid.cells[cell.row][cell.column]) for cell in cells]
        figure, sheet_boxes = draw_contact_sheet(items, MAX_FIGURE_SIDE)
        placed = {cell.id: box for cell, box in zip(cells, sheet_boxes, strict=True)}
    save_figure(figure, sweep_dir / FIGURE)
    write_text(sweep_dir / "figure.json", json.dumps(placed, indent=1))
    along = "frame" if sweep.videos else "iteration (one loss and gradient evaluation each)"
    plot_losses(_curves(sweep, cells, sweep_dir), sweep_dir / LOSSES, grid.title, along)
    print(f"Figure: {sweep_dir / FIGURE}\nLoss curves: {sweep_dir / LOSSES}")
    if _animate_grid(grid, cells, sweep_dir):
        print(f"Animation: {sweep_dir / 'animation.gif'}")


def collect(sweep: Sweep, cells: list[Cell], sweep_dir: Path) -> None:
    """Every finished cell's picture in one folder, named after what made it."""
    for cell in cells:
        final = sweep_dir / "cells" / cell.id / run_dirs.RESULT
        if final.is_file():
            with atomic_write(sweep_dir / RESULTS / f"{sweep.result_name(cell)}.png") as (out, _):
                out.write(final.read_bytes())


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as (out, _):
        out.write(data)


def logged_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every logged loss of a run by tag and step (a resumed step keeps its last value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def final_losses(run_dir: Path) -> dict[str, float]:
    # From the event files rather than the trainer, so that a cell resumed at its last step
    # (nothing left to train) still reports its losses.
    # final/* are the losses of the picture the run handed back (its best image); a run from
    # before they were written has only its curves.
    scalars = logged_scalars(run_dir)
    prefix = "final/" if scalars.get("final/total") else "loss/"
    return {
        name: scalars[f"{prefix}{name}"][max(scalars[f"{prefix}{name}"])]
        for name in ("total", "content", "style")
        if scalars.get(f"{prefix}{name}")
    }


def _grid(sweep: Sweep, cells: list[Cell], sweep_dir: Path, inputs: dict[str, Any]) -> Grid:
    columns = sweep.columns.labels if sweep.columns else [""]
    images: list[list[Image.Image | None]] = [[None] * len(columns) for _ in sweep.rows.labels]
    captions: list[list[list[str]]] = [[[] for _ in columns] for _ in sweep.rows.labels]
    for cell in cells:
        cell_dir = sweep_dir / "cells" / cell.id
        if (cell_dir / run_dirs.RESULT).is_file():
            with Image.open(cell_dir / run_dirs.RESULT) as image:
                images[cell.row][cell.column] = image.convert("RGB")
        if (cell_dir / RESULT).is_file():
            result = json.loads((cell_dir / RESULT).read_text())
            if "failed" in result:
                captions[cell.row][cell.column] = ["failed:", result["failed"][:40]]
                continue
            losses = result["losses"]
            captions[cell.row][cell.column] = [
                f"{result['seconds']:.1f} s, total {losses.get('total', float('nan')):.3g}",
                f"content {losses.get('content', 0):.3g}, style {losses.get('style', 0):.3g}",
            ]

    def thumbnails(axis: Axis | None, index: int) -> list[Image.Image] | None:
        if axis is None or axis.key not in ("data.content", "data.style"):
            return None
        role = 0 if axis.key == "data.content" else 1
        by_position = {}
        for cell in cells:
            if inputs.get(cell.id) is not None:
                position = cell.row if axis is sweep.rows else cell.column
                by_position.setdefault(position, inputs[cell.id][role])
        return [by_position[p] for p in sorted(by_position)]

    row_images = thumbnails(sweep.rows, 0)
    column_images = thumbnails(sweep.columns, 1)
    varied = {sweep.rows.key, sweep.columns.key if sweep.columns else None}
    first = inputs[cells[0].id]
    header = [
        (role, image)
        for role, key, image in (("content", "data.content", first[0]), ("style", "data.style", first[1]))
        if key not in varied and image is not None
    ]
    title = f"rows: {sweep.rows.key}" + (f"   columns: {sweep.columns.key}" if sweep.columns else "")
    return Grid(
        cells=images,
        captions=captions,
        row_labels=sweep.rows.labels,
        column_labels=columns,
        row_images=row_images,
        column_images=column_images,
        header=header,
        title=title,
    )


def _animate_grid(grid: Grid, cells: list[Cell], sweep_dir: Path, max_frames: int = 100) -> bool:
    """The grid as it was at each step, from the cells' animation frames (--animation.every_n_steps)."""
    frames = {cell.id: frames_of(sweep_dir / "cells" / cell.id) for cell in cells}
    steps = thin(sorted({step for found in frames.values() for step, _ in found}), max_frames)
    if not steps:
        return False
    # Every frame of a cell at its result's size, so that the layout holds still.
    sizes = {}
    for cell in cells:
        result = grid.cells[cell.row][cell.column]
        if result is not None:
            sizes[cell.id] = result.size
        elif frames[cell.id]:
            with Image.open(frames[cell.id][-1][1]) as last:
                sizes[cell.id] = last.size

    def at(step: int) -> Image.Image:
        images = [row[:] for row in grid.cells]
        for cell in cells:
            taken = [path for s, path in frames[cell.id] if s <= step]
            frame = read_frame(taken[-1], sizes[cell.id]) if taken else None
            images[cell.row][cell.column] = label(frame, f"step {step}") if frame else None
        return draw_grid(Grid(**{**grid.__dict__, "cells": images}))[0]  # same layout in every frame

    write_animation((at(step) for step in steps), sweep_dir / "animation.gif", fps=8)
    return True


def _curves(sweep: Sweep, cells: list[Cell], sweep_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    curves = {}
    for cell in cells:
        # A video's cell: the total loss of each finished frame (by frame number).
        points = logged_scalars(sweep_dir / "cells" / cell.id).get(
            "video/total" if sweep.videos else "loss/total"
        )
        if points:
            steps = sorted(points)  # step s is logged while iteration s + 1 runs
            curves[f"{cell.id}: {describe(sweep, cell)}"] = (
                [s + 1 for s in steps],
                [points[s] for s in steps],
            )
    return curves
