"""Sweeps: variants of a base config run as a grid of real runs, laid out as one labelled figure.

python cli.py sweep --config configs/starry.yaml --sweep configs/sweeps/4_style_weight_x_init.yaml
python cli.py sweep ... --ckpt_path last      # continue an interrupted sweep; finished cells are skipped

A sweep file names one or two config keys and their values::

    rows:    {key: model.style_weight, values: [1.0e+3, 1.0e+6]}
    columns: {key: model.init, values: [noise, content], labels: [from noise, from the photo]}
    set:     {trainer.max_steps: 200, data.size: 128}     # for every cell (optional)

Everything lands in ``logs/<config>-<sweep>/version_N/``: ``cells/r0c1/`` is a normal run
directory (TensorBoard events, config.yaml, checkpoints/last.ckpt, final.png) per cell,
``figure.png`` the grid and ``losses.png`` every cell's loss curve.
"""

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback
from PIL import Image
from torchvision.transforms.functional import to_pil_image

from nst import runs
from nst.animation import frames_of, label, read_frame, thin, write_animation
from nst.config import Builder, Layer, as_nst_error, given_settings
from nst.errors import NSTError, brief
from nst.figure import Grid, draw_grid, plot_losses, save_figure
from nst.files import atomic_write
from nst.run import Run
from nst.stopping import RunInterrupted, Stop

SWEEP_FILE = "sweep.yaml"
FIGURE = "figure.png"
LOSSES = "losses.png"
RESULT = "result.json"  # per cell: wall time and final losses


@dataclass
class Axis:
    key: str
    values: list[Any]
    labels: list[str]

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


@dataclass
class Cell:
    id: str
    row: int
    column: int
    settings: dict[str, Any]  # config key -> value: the sweep's axis values for this cell


@dataclass
class Sweep:
    rows: Axis
    columns: Axis | None
    fixed: dict[str, Any]
    name: str | None
    config: str | None = None  # the base config the sweep is meant for, used when --config is not given

    def cells(self) -> list[Cell]:
        columns = self.columns.values if self.columns else [None]
        cells = []
        for r, row_value in enumerate(self.rows.values):
            for c, column_value in enumerate(columns):
                settings = {self.rows.key: row_value}
                if self.columns:
                    settings[self.columns.key] = column_value
                cells.append(Cell(f"r{r}c{c}", r, c, settings))
        return cells

    @property
    def axis_keys(self) -> list[str]:
        return [self.rows.key, *([self.columns.key] if self.columns else [])]


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def _label(value: Any) -> str:
    if isinstance(value, str) and ("/" in value or Path(value).suffix.lower() in _IMAGE_SUFFIXES):
        return Path(value.split("?")[0]).stem[:28]
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def read_sweep(path: Path) -> Sweep:
    """Read and check a sweep file; every problem is one line naming the file and the fix."""
    if not path.is_file():
        raise NSTError(
            f"sweep file {path} does not exist; give one such as configs/sweeps/4_style_weight_x_init.yaml"
        )
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise NSTError(f"sweep file {path} is not valid YAML ({brief(error)}); fix the file") from error
    if not isinstance(spec, dict) or "rows" not in spec:
        raise NSTError(
            f"sweep file {path} needs 'rows: {{key: ..., values: [...]}}' (and optionally 'columns:')"
        )
    unknown = set(spec) - {"rows", "columns", "set", "name", "config"}
    if unknown:
        raise NSTError(
            f"sweep file {path} has unknown entries {sorted(unknown)}; use rows, columns, set, name, config"
        )
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name or "/" in name or name.startswith(".")):
        raise NSTError(f"sweep file {path}: name must be a plain folder name such as style_weights")
    fixed = spec.get("set") or {}
    if any(str(key).startswith("output.") for key in fixed):
        raise NSTError(
            f"sweep file {path}: output.* cannot be set for a sweep; each cell writes its own final.png"
        )
    if not isinstance(fixed, dict):
        raise NSTError(
            f"sweep file {path}: 'set' must map config keys to values, e.g. trainer.max_steps: 200"
        )
    return Sweep(
        rows=_axis(path, "rows", spec["rows"]),
        columns=_axis(path, "columns", spec["columns"]) if spec.get("columns") else None,
        fixed=fixed,
        name=spec.get("name"),
        config=_base_config(path, spec.get("config")),
    )


def _base_config(path: Path, config: Any) -> str | None:
    """The sweep's base config, relative to the sweep file (as the shipped ones are written),
    so that a sweep runs from any directory; a path relative to the working directory is
    taken too, as sweep files written before said it that way."""
    if config is None:
        return None
    beside, here = path.parent / str(config), Path(str(config))
    for candidate in (beside, here):
        if candidate.is_file():
            return str(candidate)
    raise NSTError(
        f"sweep file {path}: its config {config} is neither at {beside} nor at {here}; fix the path"
    )


def _axis(path: Path, which: str, spec: Any) -> Axis:
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or not spec.get("values"):
        raise NSTError(f"sweep file {path}: '{which}' needs a key and a non-empty list of values")
    values = spec["values"]
    if not isinstance(values, list):
        raise NSTError(f"sweep file {path}: {which}.values must be a list")
    labels = spec.get("labels") or [_label(v) for v in values]
    if len(labels) != len(values):
        raise NSTError(f"sweep file {path}: {which} has {len(values)} values but {len(labels)} labels")
    return Axis(spec["key"], values, [str(label) for label in labels])


def _parse_args(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own options; the rest are fit's, for every cell."""
    parser = argparse.ArgumentParser(
        prog="nst sweep",
        description=__doc__.split("\n\n")[0],
        epilog="Any option of fit (python cli.py fit --help) may follow and applies to every cell; "
        "it replaces the sweep file's 'set' for that key.",
        allow_abbrev=False,
        exit_on_error=False,
    )
    parser.add_argument("--sweep", type=Path, required=True, help="the sweep file (rows, columns, set)")
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="base config (default: the sweep file's)"
    )
    parser.add_argument("--ckpt_path", choices=["last"], help="continue the latest sweep: last")
    try:
        options, rest = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        if "--sweep" in str(error) and "required" in str(error):
            raise NSTError(
                "give the sweep with --sweep FILE, e.g. --sweep configs/sweeps/4_style_weight_x_init.yaml"
            ) from error
        if "--ckpt_path" in str(error):
            raise NSTError(
                "a sweep resumes with --ckpt_path last (its cells keep their own checkpoints)"
            ) from error
        raise NSTError(f"{' '.join(str(error).split())} (python cli.py sweep --help)") from error
    return options, rest


def run_sweep(args: list[str], stop: Stop | None = None, callbacks: Sequence[Callback] = ()) -> Path:
    """Run (or continue) every cell of a sweep, then draw its figures; returns the sweep directory."""
    options, fit_args = _parse_args(args)
    stop = stop or Stop()
    if any(a.startswith("--output.") for a in fit_args):
        raise NSTError(
            "--output.* cannot be given to a sweep: every cell would write the same file; "
            "each cell's final.png is in its directory"
        )
    sweep = read_sweep(options.sweep)
    configs = options.config or ([sweep.config] if sweep.config else [])
    base = _base_layers(sweep, configs, fit_args)
    cells = sweep.cells()
    root = Path("logs") / (
        sweep.name or f"{Path(configs[-1]).stem if configs else 'nst'}-{options.sweep.stem}"
    )

    inputs = check_cells(sweep, base)

    sweep_dir, made = _sweep_dir(root, options.ckpt_path == "last")
    recorded = {
        "configs": configs,
        "args": fit_args,
        "set": sweep.fixed,
        "cells": {cell.id: cell.settings for cell in cells},
    }
    if options.ckpt_path == "last":
        before = yaml.safe_load((sweep_dir / SWEEP_FILE).read_text())
        if before != recorded:
            raise NSTError(
                f"{sweep_dir} was run with another sweep file or other arguments; resume it with those "
                "(see its sweep.yaml), or start a new sweep without --ckpt_path"
            )
    else:
        with atomic_write(sweep_dir / SWEEP_FILE) as (out, _):
            out.write(yaml.safe_dump(recorded).encode())
    try:
        for n, cell in enumerate(cells, 1):
            cell_dir = sweep_dir / "cells" / cell.id
            if (cell_dir / RESULT).is_file():
                print(f"[{n}/{len(cells)}] {cell.id} ({_describe(sweep, cell)}): done already")
                continue
            print(f"[{n}/{len(cells)}] {cell.id} ({_describe(sweep, cell)})")
            _run_cell([*base, cell.settings], cell, sweep_dir, cell_dir, stop, callbacks)
            if stop.requested is not None and n < len(cells):  # the request came in the cell's last step
                raise RunInterrupted(stop.requested, str(runs.checkpoint_of(cell_dir)))
    except BaseException as error:
        stopped = error if isinstance(error, RunInterrupted) else None
        if made and (stopped is None or stopped.checkpoint is None):
            runs.remove_if_unfinished(made)  # no cell has a checkpoint: nothing to continue
        if stopped is not None:
            stopped.resumable = stopped.resumable or sweep_dir.is_dir()  # finished cells are kept
        raise

    grid = _grid(sweep, cells, sweep_dir, inputs)
    figure, boxes = draw_grid(grid)
    save_figure(figure, sweep_dir / FIGURE)
    # Where each cell's result sits in the figure, for anyone cropping or checking it.
    placed = {cell.id: boxes[cell.row][cell.column] for cell in cells}
    _write_text(sweep_dir / "figure.json", json.dumps(placed, indent=1))
    plot_losses(_curves(sweep, cells, sweep_dir), sweep_dir / LOSSES, grid.title)
    print(f"Figure: {sweep_dir / FIGURE}\nLoss curves: {sweep_dir / LOSSES}")
    if _animate_grid(grid, cells, sweep_dir):
        print(f"Animation: {sweep_dir / 'animation.gif'}")
    return sweep_dir


def _base_layers(sweep: Sweep, configs: list[str], fit_args: list[str]) -> list[Layer]:
    """What every cell is built from, in order: the base config, the sweep file's ``set``, and
    the command line (typed last, so it wins over ``set``; an axis key there is refused)."""
    given = _dotted(given_settings(fit_args)) if fit_args else {}
    for key in given:
        for axis in sweep.axis_keys:
            if key == axis or key.startswith(f"{axis}.") or axis.startswith(f"{key}."):
                raise NSTError(
                    f"--{key} is what the sweep varies ({axis}); drop it from the command line, "
                    "or make another sweep file"
                )
    for key, value in sweep.fixed.items():
        if key in given and given[key] != value:
            print(f"--{key} {given[key]} from the command line replaces the sweep file's {value}")
    config_args = [arg for config in configs for arg in ("--config", config)]
    return [config_args, sweep.fixed, fit_args]


def _dotted(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out |= _dotted(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_cells(sweep: Sweep, base: list[Layer], load_images: bool = True) -> dict[str, Any]:
    """Build every cell's config (and load its images) before the first cell runs, so that a
    typo in the last cell does not surface hours later. Returns each cell's images."""
    inputs = {}
    for cell in sweep.cells():
        try:
            built = Builder([*base, cell.settings, {"trainer.logger": False}], run_dirs=False)
            data = built.datamodule
            if load_images:
                data.prepare_data()
                data.setup("fit")
                built.model.check_data(data)
        except NSTError as error:
            raise NSTError(f"sweep cell {cell.id} ({_describe(sweep, cell)}): {error}") from error
        except Exception as error:
            user = as_nst_error(error)
            if user is None:
                raise
            raise NSTError(f"sweep cell {cell.id} ({_describe(sweep, cell)}): {user}") from error
        inputs[cell.id] = (data.content, data.style)
    return inputs


def _describe(sweep: Sweep, cell: Cell) -> str:
    text = f"{sweep.rows.name}={sweep.rows.labels[cell.row]}"
    if sweep.columns:
        text += f", {sweep.columns.name}={sweep.columns.labels[cell.column]}"
    return text


def _sweep_dir(root: Path, resume: bool) -> tuple[Path, list[Path]]:
    """The sweep's directory, and what was made for it (to remove if nothing comes of it)."""
    if not resume:
        made = runs.create_run_dir(root)
        return made[0], made
    earlier = [
        root / f"version_{v}" for v in runs._versions(root) if (root / f"version_{v}" / SWEEP_FILE).is_file()
    ]
    if not earlier:
        raise NSTError(f"no sweep to resume in {root}; start one without --ckpt_path")
    sweep_dir = max(earlier, key=runs.version_of)
    print(f"Resuming {sweep_dir}")
    return sweep_dir, []


def _run_cell(
    layers: list[Layer],
    cell: Cell,
    sweep_dir: Path,
    cell_dir: Path,
    stop: Stop,
    callbacks: Sequence[Callback],
) -> None:
    where = {"trainer.logger.init_args": {"save_dir": str(sweep_dir), "name": "cells", "version": cell.id}}
    checkpoint = runs.checkpoint_of(cell_dir)
    if checkpoint.is_file():
        where["ckpt_path"] = str(checkpoint)
    elif cell_dir.is_dir():
        runs.remove_if_unfinished([cell_dir])  # stopped before its first checkpoint
    seconds_file = cell_dir / "seconds"
    start = time.perf_counter()
    try:
        result = Run([*layers, where], stop=stop, callbacks=callbacks).fit()
    except NSTError as error:
        runs.remove_if_unfinished([cell_dir])  # failed before its first checkpoint: nothing to keep
        raise NSTError(f"sweep cell {cell.id}: {error}") from error
    finally:  # wall time adds up over interruptions
        if cell_dir.is_dir():
            before = float(seconds_file.read_text()) if seconds_file.is_file() else 0.0
            _write_text(seconds_file, f"{before + time.perf_counter() - start:.3f}")
    if result.stopped is not None:
        raise result.stopped
    summary = {
        "seconds": float(seconds_file.read_text()),
        "losses": _final_losses(cell_dir),
        "settings": cell.settings,
    }
    _write_text(cell_dir / RESULT, json.dumps(summary, indent=2))


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as (out, _):
        out.write(text.encode())


def _scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every logged loss of a run by tag and step (a resumed step keeps its last value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def _final_losses(run_dir: Path) -> dict[str, float]:
    # From the event files rather than the trainer, so that a cell resumed at its last step
    # (nothing left to train) still reports its losses.
    scalars = _scalars(run_dir)
    return {
        tag.removeprefix("loss/"): scalars[tag][max(scalars[tag])]
        for tag in ("loss/total", "loss/content", "loss/style")
        if scalars.get(tag)
    }


def _grid(sweep: Sweep, cells: list[Cell], sweep_dir: Path, inputs: dict[str, Any]) -> Grid:
    columns = sweep.columns.labels if sweep.columns else [""]
    images: list[list[Image.Image | None]] = [[None] * len(columns) for _ in sweep.rows.labels]
    captions: list[list[list[str]]] = [[[] for _ in columns] for _ in sweep.rows.labels]
    for cell in cells:
        cell_dir = sweep_dir / "cells" / cell.id
        if (cell_dir / runs.RESULT).is_file():
            with Image.open(cell_dir / runs.RESULT) as image:
                images[cell.row][cell.column] = image.convert("RGB")
        if (cell_dir / RESULT).is_file():
            result = json.loads((cell_dir / RESULT).read_text())
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
            position = cell.row if axis is sweep.rows else cell.column
            by_position.setdefault(position, inputs[cell.id][role])
        return [
            to_pil_image(by_position[p][0]) if by_position[p] is not None else None
            for p in sorted(by_position)
        ]

    row_images = thumbnails(sweep.rows, 0)
    column_images = thumbnails(sweep.columns, 1)
    varied = {sweep.rows.key, sweep.columns.key if sweep.columns else None}
    first = inputs[cells[0].id]
    header = [
        (role, to_pil_image(image[0]))
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
        points = _scalars(sweep_dir / "cells" / cell.id).get("loss/total")
        if points:
            steps = sorted(points)  # step s is logged while iteration s + 1 runs
            curves[f"{cell.id}: {_describe(sweep, cell)}"] = (
                [s + 1 for s in steps],
                [points[s] for s in steps],
            )
    return curves
