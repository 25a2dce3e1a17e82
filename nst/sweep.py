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
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch import Callback

from nst import runs
from nst.config import Builder, Layer, as_nst_error, given_settings, parse_layers
from nst.errors import NSTError, brief
from nst.files import atomic_write
from nst.ranks import Ranks, is_spawned, plan
from nst.run import Run
from nst.stopping import RunInterrupted, Stop
from nst.sweep_figure import RESULT, RESULTS, draw, final_losses, write_text
from nst.sweep_file import Cell, Sweep, batch, describe, read_sweep

__all__ = ["check_cells", "read_sweep", "run_sweep"]

_PROCESS_KEYS = ("trainer.devices", "trainer.num_nodes", "trainer.strategy")
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
        "it replaces the sweep file's 'set' for that key. --trainer.devices N (and --trainer.num_nodes M) "
        "spread the cells over N (times M) processes.",
        allow_abbrev=False,
    )
    parser.add_argument("--sweep", type=Path, help="the sweep file (rows, columns, set)")
    parser.add_argument(
        "--contents",
        nargs="+",
        default=[],
        help="instead of a sweep file: photos (a folder, a glob or files)",
    )
    parser.add_argument(
        "--styles", nargs="+", default=[], help="... and paintings: every photo in every style"
    )
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="base config (default: the sweep file's)"
    )
    parser.add_argument("--ckpt_path", choices=["last"], help="continue the latest sweep: last")
    options, rest = parser.parse_known_args(args)
    if options.sweep is None and not (options.contents or options.styles):
        parser.error("the following arguments are required: --sweep")
    if options.sweep is not None and (options.contents or options.styles):
        raise NSTError("give --sweep FILE or --contents/--styles, not both")
    return options, rest


def run_sweep(args: list[str], stop: Stop | None = None, callbacks: Sequence[Callback] = ()) -> Path | None:
    """Run (or continue) every cell of a sweep, then draw its figures; returns the sweep
    directory (None on the ranks that only run cells)."""
    options, fit_args = _parse_args(args)
    stop = stop or Stop()
    if any(a.startswith("--output.") for a in fit_args):
        raise NSTError(
            "--output.* cannot be given to a sweep: every cell would write the same file; "
            "each cell's final.png is in its directory"
        )
    if options.sweep is not None:
        sweep, sweep_name = read_sweep(options.sweep), options.sweep.stem
    else:
        sweep, sweep_name = batch(options.contents, options.styles), "batch"
    configs = options.config or ([sweep.config] if sweep.config else [])
    base = _base_layers(sweep, configs, fit_args)
    cells = sweep.cells()
    stem = Path(configs[-1]).stem if configs else "nst"
    root = Path("logs") / (sweep.name or f"{stem}-{sweep_name}")
    # What makes the cells; how many processes run them may change from one start to the next.
    given = given_settings(fit_args) if fit_args else {}
    recorded = {
        "configs": configs,
        "args": {k: v for k, v in given.items() if k not in _PROCESS_KEYS},
        "set": sweep.fixed,
        "cells": {cell.id: cell.settings for cell in cells},
    }
    # Checked on each machine before its other processes start, so that a typo in the last
    # cell does not surface hours later, and is reported once.
    inputs = {} if is_spawned() else check_cells(sweep, base)
    ranks = plan(parse_layers(base)["trainer"])
    sweep_dir, made = (None, [])
    if ranks.rank == 0:  # before any other process starts: a refusal is said once
        sweep_dir, made = _sweep_dir(root, options.ckpt_path == "last")
        try:
            _record(sweep_dir, recorded, options.ckpt_path == "last")
        except NSTError:
            if made:
                runs.remove_if_unfinished(made)
            raise
    stop.forward = ranks.forward
    ranks.stopped_outcome = {"stopped": signal.SIGTERM, "failed": {}}
    try:
        ranks.start()
        sweep_dir = Path(ranks.broadcast("sweep_dir", str(sweep_dir)))
        outcome = _run_share(ranks, sweep, cells, base, sweep_dir, made, stop, callbacks)
        outcomes = ranks.gather("outcome", outcome)
    except RuntimeError as error:  # from the store: rank 0 is gone
        raise NSTError(
            f"a process of this batch ended before its cells were done ({brief(error)}); "
            "continue with --ckpt_path last"
        ) from error
    finally:
        stop.forward = None
    if outcomes is None:  # not rank 0: its cells are done
        return None
    stopped = [o["stopped"] for o in outcomes if o["stopped"] is not None]
    if stopped:
        interrupted = RunInterrupted(stopped[0], None)
        interrupted.resumable = True
        raise interrupted
    draw(sweep, cells, sweep_dir, inputs)
    failed = {cell: why for o in outcomes for cell, why in o["failed"].items()}
    if failed:
        listed = "; ".join(f"{cell}: {why}" for cell, why in sorted(failed.items()))
        raise NSTError(
            f"{len(failed)} of {len(cells)} cells failed ({listed}); the others are in {sweep_dir / RESULTS}"
        )
    return sweep_dir


def _record(sweep_dir: Path, recorded: dict[str, Any], resume: bool) -> None:
    if resume:
        before = yaml.safe_load((sweep_dir / SWEEP_FILE).read_text())
        if isinstance(before, dict) and "configs" not in before:
            raise NSTError(
                f"{sweep_dir} was made by an earlier version of nst, whose sweeps this one cannot "
                "continue; start the sweep anew without --ckpt_path (its finished cells stay where they are)"
            )
        if before != recorded:
            raise NSTError(
                f"{sweep_dir} was run with another sweep file or other arguments; resume it with those "
                "(see its sweep.yaml), or start a new sweep without --ckpt_path"
            )
    else:
        with atomic_write(sweep_dir / SWEEP_FILE) as (out, _):
            out.write(yaml.safe_dump(recorded).encode())


def _run_share(
    ranks: Ranks,
    sweep: Sweep,
    cells: list[Cell],
    base: list[Layer],
    sweep_dir: Path,
    made: list[Path],
    stop: Stop,
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    """Run this rank's cells; returns what became of them (a stop, failed cells)."""
    mine = ranks.share(cells)
    who = f"[rank {ranks.rank}] " if ranks.world > 1 else ""
    device = ranks.device_settings()
    if ranks.world > 1:  # several processes' bars in one terminal would garble each other
        device["trainer.enable_progress_bar"] = False
    failed: dict[str, str] = {}
    try:
        for n, cell in enumerate(mine, 1):
            cell_dir = sweep_dir / "cells" / cell.id
            place = f"{who}[{n}/{len(mine)}] {cell.id} ({describe(sweep, cell)})"
            if (cell_dir / RESULT).is_file():
                print(f"{place}: done already")
                continue
            print(place)
            failure = _run_cell([*base, cell.settings, device], cell, sweep_dir, cell_dir, stop, callbacks)
            if failure is not None:
                print(f"{place} failed: {failure}")
                failed[cell.id] = failure
            if stop.requested is not None and n < len(mine):  # the request came in the cell's last step
                raise RunInterrupted(stop.requested, str(runs.checkpoint_of(cell_dir)))
    except RunInterrupted as stopped:
        if made and stopped.checkpoint is None:
            runs.remove_if_unfinished(made)  # no cell has a checkpoint: nothing to continue
        if ranks.world == 1:
            stopped.resumable = stopped.resumable or sweep_dir.is_dir()  # finished cells are kept
            raise
        print(f"{who}{stopped}")
        return {"stopped": stopped.signum, "failed": failed}
    except BaseException:
        if made:
            runs.remove_if_unfinished(made)
        raise
    return {"stopped": None, "failed": failed}


def _base_layers(sweep: Sweep, configs: list[str], fit_args: list[str]) -> list[Layer]:
    """What every cell is built from, in order: the base config, the sweep file's ``set``, and
    the command line (typed last, so it wins over ``set``; an axis key there is refused)."""
    given = given_settings(fit_args) if fit_args else {}
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


def check_cells(sweep: Sweep, base: list[Layer], load_images: bool = True) -> dict[str, Any]:
    """Build every cell's config (and load its images) before the first cell runs, so that a
    typo in the last cell does not surface hours later. Returns each cell's images."""
    inputs = {}
    for cell in sweep.cells():
        try:
            one = {
                "trainer.logger": False,
                "trainer.devices": 1,
                "trainer.num_nodes": 1,
                "trainer.strategy": "auto",
            }
            built = Builder([*base, cell.settings, one], run_dirs=False)
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
) -> str | None:
    """Run one cell (continuing it from its checkpoint if it has one); returns why it failed,
    if it did. Its result.json records the outcome, so a resumed sweep does not run it again."""
    where = {"trainer.logger.init_args": {"save_dir": str(sweep_dir), "name": "cells", "version": cell.id}}
    checkpoint = runs.checkpoint_of(cell_dir)
    if checkpoint.is_file():
        where["ckpt_path"] = str(checkpoint)
    elif cell_dir.is_dir():
        runs.remove_if_unfinished([cell_dir])  # stopped before its first checkpoint
    seconds_file = cell_dir / "seconds"
    start = time.perf_counter()
    failure = None
    try:
        result = Run([*layers, where], stop=stop, callbacks=callbacks).fit()
    except NSTError as error:  # a cell that diverges, say: the other cells go on
        failure = str(error)
    finally:  # wall time adds up over interruptions
        if cell_dir.is_dir():
            before = float(seconds_file.read_text()) if seconds_file.is_file() else 0.0
            write_text(seconds_file, f"{before + time.perf_counter() - start:.3f}")
    if failure is None and result.stopped is not None:
        raise result.stopped
    summary: dict[str, Any] = {"settings": cell.settings}
    if failure is not None:
        summary["failed"] = failure
    else:
        summary |= {"seconds": float(seconds_file.read_text()), "losses": final_losses(cell_dir)}
    write_text(cell_dir / RESULT, json.dumps(summary, indent=2))
    return failure
