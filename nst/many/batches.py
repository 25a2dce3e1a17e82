"""Which of a sweep's cells can be optimised together (one run of several pictures, nst.run.engine): those that differ only in
their pictures (data.content, data.style), come out at one size in every phase, and are at the
same step. A cell that makes an animation, or that can be built only to fail, runs alone."""

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.many.sweep_file import Cell
from nst.run import run_dirs
from nst.run.checkpoint_files import read_checkpoint
from nst.run.settings import Layer, Settings

ALONE = None  # the key of a cell that runs on its own
# Settings that build a cell's objects to look at them, not to run: no logger, one process.
JUST_BUILT = {
    "trainer.logger": False,
    "trainer.devices": 1,
    "trainer.num_nodes": 1,
    "trainer.strategy": "auto",
}

_OWN = ("content", "style")  # what may differ between pictures of one batch
_WHERE = ("ckpt_path",)


def groups(
    cells: Sequence[Cell],
    layers_of: Callable[[Cell], list[Layer]],
    cell_dir: Callable[[Cell], Path],
    size: int,
) -> list[list[Cell]]:
    """``cells`` in batches of at most ``size`` cells that can run together, in the order of
    each batch's first cell."""
    if size <= 1:
        return [[cell] for cell in cells]
    open_batches: dict[Any, list[Cell]] = {}
    batches: list[list[Cell]] = []
    for cell in cells:
        key = batch_key(layers_of(cell), cell_dir(cell))
        if key is ALONE:
            batches.append([cell])
            continue
        batch = open_batches.get(key)
        if batch is None or len(batch) == size:
            batch = open_batches[key] = []
            batches.append(batch)
        batch.append(cell)
    return batches


def batch_key(layers: list[Layer], cell_dir: Path) -> Any:
    """What a cell must share with the others of its batch, or ALONE."""
    try:
        built = Settings([*layers, JUST_BUILT])
        data = built.datamodule
        data.prepare_data()
        data.setup("fit")
        schedule = built.model.check_data(data, built.config.trainer.max_steps)
    except NSTError:
        return ALONE  # it fails alone, and says why, without taking others with it
    config = built.config.clone().as_dict()
    if config["animation"]["every_n_steps"] or config["trainer"].get("callbacks"):
        return ALONE  # its frames are one run's own; callbacks (early stopping) watch one run
    for key in _OWN:
        config["data"][key] = config["data"][key] is None  # with a picture or without
    for key in _WHERE:
        config.pop(key, None)
    shapes = [data.at(phase.size).shape for phase in schedule]
    checkpoint = run_dirs.checkpoint_of(cell_dir)
    step = read_checkpoint(str(checkpoint))["global_step"] if checkpoint.is_file() else 0
    return json.dumps([config, shapes, step], sort_keys=True, default=str)
