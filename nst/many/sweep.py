"""Sweeps: variants of a base config run as a grid of real runs, laid out as one labelled figure.

python cli.py sweep --config configs/starry.yaml --sweep configs/sweeps/4_style_weight_x_init.yaml
python cli.py sweep ... --ckpt_path last      # continue an interrupted sweep; finished cells are skipped

The sweep file is read by nst.many.sweep_file; each cell is a run made through nst.run.engine, as fit's
are; the figures are drawn by nst.many.sweep_figure.

Everything lands in ``logs/<config>-<sweep>/version_N/``: ``cells/r0c1/`` is a normal run
directory (TensorBoard events, config.yaml, checkpoints/last.ckpt, final.png) per cell,
``figure.png`` the grid and ``losses.png`` every cell's loss curve.
"""

import argparse
import json
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch import Callback
from PIL import Image

from nst.errors import NSTError
from nst.files import atomic_write
from nst.images import to_pil
from nst.many.batches import JUST_BUILT, groups
from nst.many.figure import THUMBNAIL
from nst.many.processes import Ranks, plan
from nst.many.sweep_cells import run_cell, run_together, run_video_cell
from nst.many.sweep_figure import RESULT, RESULTS, draw
from nst.many.sweep_file import Cell, Sweep, contents_by_styles, describe, is_video_config, read_sweep
from nst.run import run_dirs
from nst.run.downloads import fetch_ahead
from nst.run.settings import Layer, Settings, given_settings, parse_layers
from nst.run.stopping import RunInterrupted, Stop, is_spawned
from nst.run.user_errors import as_nst_error
from nst.video.options import VideoSettings

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
        "--videos",
        nargs="+",
        default=[],
        help="instead of --contents: videos (a folder, a glob or files), each painted frame by frame as nst video does",
    )
    parser.add_argument(
        "--styles", nargs="+", default=[], help="... and paintings: every photo (or video) in every style"
    )
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="base config (default: the sweep file's)"
    )
    parser.add_argument("--ckpt_path", choices=["last"], help="continue the latest sweep: last")
    parser.add_argument(
        "--batch_size",
        type=_positive,
        default=1,
        help="optimise up to this many cells of one size together, in one batch on the device "
        "(each as it comes out alone, up to float rounding; see docs/many-pictures.md)",
    )
    options, rest = parser.parse_known_args(args)
    if options.sweep is None and not (options.contents or options.styles):
        parser.error("the following arguments are required: --sweep")
    if options.sweep is not None and (options.contents or options.styles):
        raise NSTError("give --sweep FILE or --contents/--styles, not both")
    return options, rest


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of cells ≥ 1, got {text!r}")
    return int(text)


def run_sweep(args: list[str], stop: Stop | None = None, callbacks: Sequence[Callback] = ()) -> Path | None:
    """Run (or continue) every cell of a sweep, then draw its figures; returns the sweep
    directory (None on the ranks that only run cells)."""
    options, fit_args = _parse_args(args)
    stop = stop or Stop()
    sweep, configs, root = _the_sweep(options, fit_args)
    base = _base_layers(sweep, configs, fit_args)
    cells = sweep.cells()
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
    if sweep.videos and options.batch_size > 1:
        raise NSTError("videos are painted one at a time in each process; leave --batch_size out (or 1)")
    inputs = {} if is_spawned() else (check_video_cells if sweep.videos else check_cells)(sweep, base)
    ranks = plan(parse_layers(base, VideoSettings if sweep.videos else Settings)["trainer"])
    sweep_dir, made = _start(ranks, root, recorded, options.ckpt_path == "last")
    stop.forward = ranks.forward
    ranks.stopped_outcome = {"stopped": signal.SIGTERM, "failed": {}}
    try:
        # Rank 0's view of the cells and of which are left, so that every rank shares out
        # the same list (a rank that starts late must not see a cell another just finished).
        todo = [c.id for c in cells if not _finished(sweep_dir / "cells" / c.id)] if ranks.rank == 0 else []
        shared = ranks.broadcast("plan", {"dir": str(sweep_dir), "cells": recorded["cells"], "todo": todo})
        if shared["cells"] != recorded["cells"]:
            raise NSTError(
                "this process found other cells than rank 0 (did a folder of the batch change?); "
                "start the batch again"
            )
        sweep_dir = Path(shared["dir"])
        left = [cell for cell in cells if cell.id in shared["todo"]]
        outcome = _run_share(ranks, sweep, left, base, sweep_dir, made, stop, callbacks, options.batch_size)
        with stop.waiting():  # a signal now is passed on and noted, not raised
            outcomes = ranks.gather("outcome", outcome)
    finally:
        stop.forward = None
    if outcomes is None:  # not rank 0: its cells are done
        return None
    _finish(sweep, cells, sweep_dir, inputs, outcomes, stop)
    return sweep_dir


def _finish(
    sweep: Sweep, cells: list[Cell], sweep_dir: Path, inputs: dict[str, Any], outcomes: list[Any], stop: Stop
) -> None:
    """On rank 0, once every rank is done: report a stop, or draw the figures and report failures."""
    stopped = [o["stopped"] for o in outcomes if o["stopped"] is not None]
    stopped += [stop.requested] if stop.requested is not None and not stopped else []
    if stopped:
        interrupted = RunInterrupted(stopped[0], f"every started cell's checkpoint in {sweep_dir / 'cells'}")
        interrupted.resumable = True
        raise interrupted
    draw(sweep, cells, sweep_dir, inputs)
    failed = {cell: why for o in outcomes for cell, why in o["failed"].items()}
    if failed:
        listed = "; ".join(f"{cell}: {why[:120]}" for cell, why in sorted(failed.items())[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise NSTError(
            f"{len(failed)} of {len(cells)} cells failed ({listed}{more}); the others are in "
            f"{sweep_dir / RESULTS}; --ckpt_path last runs the failed ones again"
        )


def _start(
    ranks: Ranks, root: Path, recorded: dict[str, Any], resume: bool
) -> tuple[Path | None, list[Path]]:
    """Rank 0 chooses (and records) the sweep directory before any other process starts, so
    that a refusal is said once; then the processes start. Returns the directory (None on the
    other ranks, which hear it from rank 0) and what was made for it."""
    if ranks.rank != 0:
        ranks.start()
        return None, []
    sweep_dir, made = _sweep_dir(root, resume)
    try:
        _record(sweep_dir, recorded, resume)
        ranks.start()
    except BaseException:
        if made:
            run_dirs.remove_if_unfinished(made)
        raise
    return sweep_dir, made


def _the_sweep(options: argparse.Namespace, fit_args: list[str]) -> tuple[Sweep, list[str], Path]:
    """The sweep asked for, its base config files, and the folder its versions go in."""
    if any(a.startswith("--output.") for a in fit_args):
        raise NSTError(
            "--output.* cannot be given to a sweep: every cell would write the same file; "
            "each cell's final.png is in its directory"
        )
    if options.contents and options.videos:
        raise NSTError(
            "give photos with --contents or videos with --videos, not both: a sweep paints one kind"
        )
    videos = bool(options.videos) or any(is_video_config(config) for config in options.config)
    if options.sweep is not None:
        sweep, name = read_sweep(options.sweep), options.sweep.stem
        sweep.videos = sweep.videos or videos
    else:
        given = options.videos or options.contents
        sweep = contents_by_styles(given, options.styles, videos)
        name = "videos" if videos else "batch"  # logs/<config>-batch/
    configs = options.config or ([sweep.config] if sweep.config else [])
    stem = Path(configs[-1]).stem if configs else "nst"
    return sweep, configs, Path("logs") / (sweep.name or f"{stem}-{name}")


def _finished(cell_dir: Path) -> bool:
    """A cell with a result; a failed one is run again when the sweep is continued."""
    result = cell_dir / RESULT
    return result.is_file() and "failed" not in json.loads(result.read_text())


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
    batch_size: int = 1,
) -> dict[str, Any]:
    """Run this rank's share of ``cells``; returns what became of them (a stop, failed cells)."""
    mine = ranks.share(cells)
    who = f"[rank {ranks.rank}] " if ranks.world > 1 else ""
    device = ranks.device_settings()
    if ranks.world > 1:  # several processes' bars in one terminal would garble each other
        device["trainer.enable_progress_bar"] = False
    failed: dict[str, str] = {}

    def layers_of(cell: Cell) -> list[Layer]:
        return [*base, cell.settings, device]

    def dir_of(cell: Cell) -> Path:
        return sweep_dir / "cells" / cell.id

    try:
        batches = groups(mine, layers_of, dir_of, batch_size)
        done = 0
        for batch in batches:
            first, done = done + 1, done + len(batch)
            count = f"{first}-{done}" if len(batch) > 1 else f"{done}"
            named = ", ".join(f"{cell.id} ({describe(sweep, cell)})" for cell in batch)
            place = f"{who}[{count}/{len(mine)}] {named}"
            print(place + (" together" if len(batch) > 1 else ""))
            if sweep.videos:
                failures = {
                    batch[0].id: run_video_cell(layers_of(batch[0]), batch[0], sweep_dir, stop, callbacks)
                }
            elif len(batch) == 1:
                failures = {batch[0].id: run_cell(layers_of(batch[0]), batch[0], sweep_dir, stop, callbacks)}
            else:
                failures = run_together(batch, layers_of, sweep_dir, stop, callbacks)
            for cell_id, failure in failures.items():
                if failure is not None:
                    print(f"{who}{cell_id} failed: {failure}")
                    failed[cell_id] = failure
            if stop.requested is not None and done < len(mine):  # the request came in the batch's last step
                raise RunInterrupted(stop.requested, str(run_dirs.checkpoint_of(dir_of(batch[0]))))
    except RunInterrupted as stopped:
        if ranks.world > 1:  # the others are told at the end, where they meet
            print(f"{who}{stopped}")
            return {"stopped": stopped.signum, "failed": failed}
        if made and stopped.checkpoint is None:
            run_dirs.remove_if_unfinished(made)  # no cell has a checkpoint: nothing to continue
        stopped.resumable = stopped.resumable or sweep_dir.is_dir()  # finished cells are kept
        raise
    except BaseException:
        if made and ranks.world == 1:  # with several processes, others may be writing here
            run_dirs.remove_if_unfinished(made)
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
    typo in the last cell does not surface hours later. Returns, for the figure, thumbnails of
    the images of the first row's and the first column's cells (None for the other cells)."""
    inputs = {}
    for cell in sweep.cells():
        try:
            built = Settings([*base, cell.settings, JUST_BUILT])
            data = built.datamodule
            if load_images:
                fetch_ahead([built])  # offline, one line names every file the sweep lacks
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
        edge = cell.row == 0 or cell.column == 0  # the figure shows each row's and column's images
        inputs[cell.id] = (_thumbnail(data.content), _thumbnail(data.style)) if edge else None
    return inputs


def check_video_cells(sweep: Sweep, base: list[Layer]) -> dict[str, Any]:
    """check_cells for a sweep of videos: every cell's settings read as nst video reads them,
    and its video opened (its first frame and its painting shown in the figure's margins)."""
    from nst.images import read_image
    from nst.video.options import video_options
    from nst.video.source import VideoSource

    inputs = {}
    for cell in sweep.cells():
        try:
            config = parse_layers([*base, cell.settings], VideoSettings)
            if not config["data"].get("content"):
                raise NSTError("a sweep of videos needs them as data.content, e.g. --videos clips/")
            source = VideoSource(config["data"]["content"], video_options(config).fps)
            edge = cell.row == 0 or cell.column == 0
            if edge:
                first = Image.fromarray(next(iter(source.frames(1))))
                style = config["data"].get("style")
                painting = read_image(style, "style") if isinstance(style, str) else None
                inputs[cell.id] = (_thumbnail(first), _thumbnail(painting))
            else:
                inputs[cell.id] = None
        except NSTError as error:
            raise NSTError(f"sweep cell {cell.id} ({describe(sweep, cell)}): {error}") from error
    return inputs


def _thumbnail(image: Any) -> Image.Image | None:
    # Small, so that a batch of thousands of cells does not hold its images until the figure.
    if image is None:
        return None
    picture = image.copy() if isinstance(image, Image.Image) else to_pil(image)
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    return picture


def _sweep_dir(root: Path, resume: bool) -> tuple[Path, list[Path]]:
    """The sweep's directory, and what was made for it (to remove if nothing comes of it)."""
    if not resume:
        made = run_dirs.create_run_dir(root)
        return made[0], made
    earlier = [
        root / f"version_{v}"
        for v in run_dirs.versions(root)
        if (root / f"version_{v}" / SWEEP_FILE).is_file()
    ]
    if not earlier:
        raise NSTError(f"no sweep to resume in {root}; start one without --ckpt_path")
    sweep_dir = max(earlier, key=run_dirs.version_of)
    print(f"Resuming {sweep_dir}")
    return sweep_dir, []
