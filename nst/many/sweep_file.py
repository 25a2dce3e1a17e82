"""The sweep file: one or two config keys (rows, columns) and their values, plus settings for
every cell::

    config: ../starry.yaml                       # the base config, relative to this file
    rows:    {key: model.style_weight, values: [1.0e+3, 1.0e+6]}
    columns: {key: model.init, values: [noise, content], labels: [from noise, from the photo]}
    set:     {trainer.max_steps: 200, data.size: 128}     # for every cell (optional)
"""

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nst.errors import NSTError, brief
from nst.video.source import VIDEO_SUFFIXES


@dataclass
class Axis:
    key: str
    values: list[Any]
    labels: list[str]

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def name_of(self, index: int) -> str:
        """Value ``index`` in a result's file name: an image by its file stem, any other value as
        ``name=label``."""
        value = self.values[index]
        if self.key in IMAGE_KEYS and isinstance(value, str):
            return Path(value.split("?")[0]).stem
        text = (
            value
            if isinstance(value, str)
            else repr(value)
            if isinstance(value, float)
            else json.dumps(value)
        )
        return f"{self.name}={text}".replace("/", "_").replace(" ", "")


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
    videos: bool = False  # its cells paint videos (--videos, or a base config with a video section)

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

    def result_name(self, cell: Cell) -> str:
        """The file name (without extension) of a cell's result, e.g. ``cat__starry_night``."""
        parts = [self.rows.name_of(cell.row)]
        if self.columns:
            parts.append(self.columns.name_of(cell.column))
        return "__".join(parts)

    @property
    def axis_keys(self) -> list[str]:
        return [self.rows.key, *([self.columns.key] if self.columns else [])]


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def _label(value: Any) -> str:
    if isinstance(value, str) and ("/" in value or Path(value).suffix.lower() in IMAGE_SUFFIXES):
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
    config = _base_config(path, spec.get("config"))
    videos = config is not None and is_video_config(config)
    where = f"sweep file {path}"
    return check_names(
        Sweep(
            rows=_axis(where, "rows", spec["rows"], videos),
            columns=_axis(where, "columns", spec["columns"], videos) if spec.get("columns") else None,
            fixed=fixed,
            name=spec.get("name"),
            config=config,
            videos=videos,
        ),
        f"sweep file {path}",
    )


def is_video_config(path: str) -> bool:
    """Whether a config file is a video's (it has a ``video`` section, as configs/video.yaml)."""
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False  # the run's own reading of it says what is wrong
    return isinstance(config, dict) and "video" in config


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


def _axis(where: str, which: str, spec: Any, videos: bool = False) -> Axis:
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or not spec.get("values"):
        raise NSTError(f"{where}: '{which}' needs a key and a non-empty list of values")
    values = spec["values"]
    if spec["key"] in IMAGE_KEYS:  # a folder or a glob stands for its images (or videos)
        suffixes = VIDEO_SUFFIXES if videos and spec["key"] == "data.content" else IMAGE_SUFFIXES
        values = [image for value in _listed(values) for image in expand_images(value, suffixes)]
    elif not isinstance(values, list):
        raise NSTError(f"{where}: {which}.values must be a list")
    labels = spec.get("labels") or [_label(v) for v in values]
    if len(labels) != len(values):
        raise NSTError(f"{where}: {which} has {len(values)} values but {len(labels)} labels")
    axis = Axis(spec["key"], values, [str(label) for label in labels])
    names = [axis.name_of(i) for i in range(len(values))]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise NSTError(
            f"{where}: {which} has two values named {twice[0]} (results are named after them); "
            "rename one of the files"
        )
    return axis


def check_names(sweep: Sweep, where: str) -> Sweep:
    """Every cell's result needs a name of its own (``a__b`` + ``c`` and ``a`` + ``b__c`` do not)."""
    names = [sweep.result_name(cell) for cell in sweep.cells()]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise NSTError(
            f"{where}: two cells would both be named {twice[0]}; rename the files with __ in their names"
        )
    return sweep


def contents_by_styles(contents: list[str], styles: list[str], videos: bool = False) -> Sweep:
    """Every photo (or video) in every painting's style, without a sweep file (``--contents``
    or ``--videos``, and ``--styles``): each a folder, a glob or files; the photos are the rows,
    the paintings the columns."""
    where = "--videos" if videos else "--contents"
    rows = _axis(where, "rows", {"key": "data.content", "values": contents}, videos) if contents else None
    columns = _axis("--styles", "columns", {"key": "data.style", "values": styles}) if styles else None
    if rows is None:
        rows, columns = columns, None
    return check_names(
        Sweep(rows=rows, columns=columns, fixed={}, name=None, videos=videos), f"{where}/--styles"
    )


IMAGE_KEYS = ("data.content", "data.style")
_GLOB = re.compile(r"[*?\[]")


def _listed(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def expand_images(value: Any, suffixes: set[str] = IMAGE_SUFFIXES) -> list[Any]:
    """A folder (``photos/``) or a glob (``photos/*.jpg``) as its images (files with one of
    ``suffixes``), sorted by name; any other value (a file, a URL, null, a list of blended
    styles) as it is."""
    if not isinstance(value, str) or value.startswith(("http://", "https://")):
        return [value]
    if _GLOB.search(value):
        found = sorted(Path(p) for p in glob.glob(value))
    elif Path(value).is_dir():
        found = sorted(Path(value).iterdir())
    else:
        return [value]
    images = [str(p) for p in found if p.is_file() and p.suffix.lower() in suffixes]
    if not images:
        what = "videos" if suffixes is VIDEO_SUFFIXES else "images"
        raise NSTError(
            f"{value} holds no {what} ({', '.join(sorted(suffixes))}); give a folder or glob of {what}"
        )
    return images


def describe(sweep: Sweep, cell: Cell) -> str:
    """The cell's place in words, e.g. ``style_weight=1e+06, init=noise``."""
    text = f"{sweep.rows.name}={sweep.rows.labels[cell.row]}"
    if sweep.columns:
        text += f", {sweep.columns.name}={sweep.columns.labels[cell.column]}"
    return text
