"""The sweep file: one or two config keys (rows, columns) and their values, plus settings for
every cell::

    config: ../starry.yaml                       # the base config, relative to this file
    rows:    {key: model.style_weight, values: [1.0e+3, 1.0e+6]}
    columns: {key: model.init, values: [noise, content], labels: [from noise, from the photo]}
    set:     {trainer.max_steps: 200, data.size: 128}     # for every cell (optional)
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nst.errors import NSTError, brief


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


def describe(sweep: Sweep, cell: Cell) -> str:
    """The cell's place in words, e.g. ``style_weight=1e+06, init=noise``."""
    text = f"{sweep.rows.name}={sweep.rows.labels[cell.row]}"
    if sweep.columns:
        text += f", {sweep.columns.name}={sweep.columns.labels[cell.column]}"
    return text
