"""Sweeps: variants of a base config run as a grid of real runs, laid out as one labelled figure.

python cli.py sweep --config configs/starry.yaml --sweep configs/sweeps/4_style_weight_x_init.yaml
python cli.py sweep ... --ckpt_path last      # continue an interrupted sweep; finished cells are skipped

The sweep file is read by nst.sweep_file; each cell is a run made through nst.run, as fit's
are; the figures are drawn by nst.sweep_figure.

Everything lands in ``logs/<config>-<sweep>/version_N/``: ``cells/r0c1/`` is a normal run
directory (TensorBoard events, config.yaml, checkpoints/last.ckpt, final.png) per cell,
``figure.png`` the grid and ``losses.png`` every cell's loss curve.
"""

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch import Callback

from nst import runs
from nst.config import Builder, Layer, as_nst_error, given_settings
from nst.errors import NSTError
from nst.files import atomic_write
from nst.run import Run
from nst.stopping import RunInterrupted, Stop
from nst.sweep_figure import RESULT, draw, final_losses, write_text
from nst.sweep_file import Cell, Sweep, describe, read_sweep

__all__ = ["check_cells", "read_sweep", "run_sweep"]

SWEEP_FILE = "sweep.yaml"  # what the sweep was run with, so a resume can check it is the same


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other bad input
        if "--sweep" in message:
            raise NSTError(
                "give the sweep with --sweep FILE, e.g. --sweep configs/sweeps/4_style_weight_x_init.yaml"
            )
        if "--ckpt_path" in message:
            raise NSTError("a sweep resumes with --ckpt_path last (its cells keep their own checkpoints)")
        raise NSTError(f"{message} (python cli.py sweep --help)")


def _parse_args(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own options; the rest are fit's, for every cell."""
    parser = _ArgumentParser(
        prog="nst sweep",
        description=__doc__.split("\n\n")[0],
        epilog="Any option of fit (python cli.py fit --help) may follow and applies to every cell; "
        "it replaces the sweep file's 'set' for that key.",
        allow_abbrev=False,
    )
    parser.add_argument("--sweep", type=Path, required=True, help="the sweep file (rows, columns, set)")
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="base config (default: the sweep file's)"
    )
    parser.add_argument("--ckpt_path", choices=["last"], help="continue the latest sweep: last")
    return parser.parse_known_args(args)


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
                print(f"[{n}/{len(cells)}] {cell.id} ({describe(sweep, cell)}): done already")
                continue
            print(f"[{n}/{len(cells)}] {cell.id} ({describe(sweep, cell)})")
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

    draw(sweep, cells, sweep_dir, inputs)
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
            raise NSTError(f"sweep cell {cell.id} ({describe(sweep, cell)}): {error}") from error
        except Exception as error:
            user = as_nst_error(error)
            if user is None:
                raise
            raise NSTError(f"sweep cell {cell.id} ({describe(sweep, cell)}): {user}") from error
        inputs[cell.id] = (data.content, data.style)
    return inputs


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
            write_text(seconds_file, f"{before + time.perf_counter() - start:.3f}")
    if result.stopped is not None:
        raise result.stopped
    summary = {
        "seconds": float(seconds_file.read_text()),
        "losses": final_losses(cell_dir),
        "settings": cell.settings,
    }
    write_text(cell_dir / RESULT, json.dumps(summary, indent=2))
