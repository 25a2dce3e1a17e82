"""The studio's settings form: the options people change, with defaults and hints, and how a
filled-in form becomes an ordinary run's settings (so its config.yaml re-runs from the CLI)."""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.numerics.weights import imagenet_cache_file

NAME = "studio"  # runs land in logs/studio/version_N


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    default: Any
    hint: str
    kind: str = "number"  # number, choice, text, toggle
    choices: list[list[str]] = field(default_factory=list)  # [value, label]
    min: float | None = None
    max: float | None = None
    step: float | None = None


COLOURS = [
    ["none", "the painting's"],
    ["yiq", "the photo's (YIQ)"],
    ["ycbcr", "the photo's (YCbCr)"],
    ["match", "painting matched to the photo"],
    ["luminance", "style in luminance only"],
]

FIELDS = [
    Field(
        "size",
        "Size (px)",
        512,
        "Long side of the result. Larger is slower: 256 is quick, 1024 is a print.",
        min=16,
        max=4096,
        step=16,
    ),
    Field(
        "steps",
        "Steps",
        300,
        "Optimisation steps; L-BFGS looks finished by 300 to 500.",
        min=1,
        max=5000,
        step=1,
    ),
    Field("style_weight", "Style weight", 1e6, "More paints harder over the photo.", min=0),
    Field("content_weight", "Content weight", 1.0, "More keeps the photo's shapes.", min=0),
    Field("tv_weight", "Smoothness (TV)", 0.0, "Above 0 evens out high-frequency noise.", min=0),
    Field(
        "optimizer",
        "Optimizer",
        "lbfgs",
        "L-BFGS converges in fewer steps; Adam works in lower precision.",
        "choice",
        [["lbfgs", "L-BFGS"], ["adam", "Adam"]],
    ),
    Field(
        "init",
        "Start from",
        "content",
        "The picture the optimisation starts from.",
        "choice",
        [["content", "the photo"], ["noise", "noise"], ["style", "the painting"]],
    ),
    Field(
        "style_scale",
        "Style scale",
        1.0,
        "Below 1 the painting is seen smaller, so its strokes come out larger.",
        min=0.1,
        max=4,
        step=0.05,
    ),
    Field("colours", "Colours", "none", "Whose colours the result has.", "choice", COLOURS),
    Field(
        "multi_scale",
        "Multi-scale",
        False,
        "Half size first, then full size: larger strokes, fewer artefacts.",
        "toggle",
    ),
    Field(
        "seed",
        "Seed",
        0,
        "The same seed and settings paint the same picture; Run again draws a new one.",
        min=0,
        max=2**31 - 1,
        step=1,
    ),
    Field(
        "weights",
        "Network weights",
        "imagenet",
        "ImageNet's VGG19 (downloaded once), random (for trying the machinery), or a weights file "
        "in the server's weights folder (serve --weights-dir).",
        "choice",
        [["imagenet", "ImageNet VGG19"], ["random", "random (no art)"]],
    ),
]
FILE_PREFIX = "file:"  # a weights choice naming a file in the weights folder, by its name only
_BY_NAME = {f.name: f for f in FIELDS}


def default_weights_dir() -> Path:
    """torchvision's cache of downloaded weights (under $TORCH_HOME), where .pth files land."""
    return imagenet_cache_file().parent


def weight_files(folder: Path | None) -> dict[str, Path]:
    """The .pth files in ``folder`` the page may offer, by their choice value; the ImageNet file
    itself is the "imagenet" choice. Nothing typed on the page becomes a path: a choice is looked
    up here, among the files found."""
    if folder is None or not folder.is_dir():
        return {}
    imagenet = imagenet_cache_file().name
    found = sorted(p for p in folder.iterdir() if p.suffix == ".pth" and p.is_file() and p.name != imagenet)
    return {FILE_PREFIX + p.name: p for p in found}


def fields(weights_dir: Path | None = None) -> list[dict[str, Any]]:
    return [asdict(f) for f in _fields(weights_dir)]


def _fields(weights_dir: Path | None) -> list[Field]:
    files = [[value, path.name] for value, path in weight_files(weights_dir).items()]
    return [replace(f, choices=f.choices + files) if f.name == "weights" else f for f in FIELDS]


def settings_of(form: dict[str, Any], weights_dir: Path | None = None) -> dict[str, Any]:
    """The run settings (config keys) of a filled-in form; unknown or bad values are refused in one line."""
    by_name = {f.name: f for f in _fields(weights_dir)}
    values = {f.name: f.default for f in FIELDS}
    for name, value in form.items():
        if name not in by_name:
            raise NSTError(f"unknown setting {name!r}")
        values[name] = _checked(by_name[name], value)
    size, steps = int(values["size"]), int(values["steps"])
    weights = weight_files(weights_dir).get(values["weights"], values["weights"])
    settings: dict[str, Any] = {
        "data.size": size,
        "trainer.max_steps": steps,
        "model.style_weight": float(values["style_weight"]),
        "model.content_weight": float(values["content_weight"]),
        "model.tv_weight": float(values["tv_weight"]),
        "model.optimizer": values["optimizer"],
        "model.init": values["init"],
        "model.weights": str(weights),
        "seed_everything": int(values["seed"]),
        "data.style_scale": float(values["style_scale"]),
    }
    colours = values["colours"]
    if colours in ("yiq", "ycbcr"):
        settings["output.original_colours"] = colours
    elif colours == "match":
        settings["data.match_colours"] = True
    elif colours == "luminance":
        settings["data.luminance_only"] = True
    if values["multi_scale"]:
        if steps < 2 or size < 32:
            raise NSTError("multi-scale needs at least 2 steps and a size of at least 32 px")
        half = steps // 2
        settings["model.phases"] = [{"size": size // 2, "steps": half}, {"size": size, "steps": steps - half}]
    return settings


def form_of(config: dict[str, Any], weights_dir: Path | None = None) -> dict[str, Any]:
    """A run's config (as its config.yaml has it) as the form shows it, for "run again"."""
    model, data, trainer = config.get("model", {}), config.get("data", {}), config.get("trainer", {})
    output = config.get("output") or {}
    size = data.get("size", 512)
    colours = output.get("original_colours") or (
        "match" if data.get("match_colours") else "luminance" if data.get("luminance_only") else "none"
    )
    form = {
        "size": max(size) if isinstance(size, list) else size,
        # A video's steps on the page are its first frame's (nst.studio.app).
        "steps": (config.get("video") or {}).get("steps_first") or trainer.get("max_steps", 300),
        "style_weight": model.get("style_weight"),
        "content_weight": model.get("content_weight"),
        "tv_weight": model.get("tv_weight"),
        "optimizer": model.get("optimizer"),
        "init": model.get("init") or "content",
        "style_scale": data.get("style_scale") or 1.0,
        "colours": colours,
        "multi_scale": bool(model.get("phases")),
        "weights": _weights_choice(model.get("weights"), weights_dir),
        "seed": config.get("seed_everything") if type(config.get("seed_everything")) is int else None,
    }
    return {k: v for k, v in form.items() if v is not None}


def _weights_choice(weights: Any, weights_dir: Path | None) -> str | None:
    if weights in ("imagenet", "random"):
        return weights
    by_path = {path.resolve(): value for value, path in weight_files(weights_dir).items()}
    return by_path.get(Path(str(weights)).resolve()) if weights else None  # another file: left to choose


def _checked(f: Field, value: Any) -> Any:
    if f.kind == "toggle":
        if not isinstance(value, bool):
            raise NSTError(f"{f.label} is on or off, got {value!r}")
        return value
    if f.kind == "choice":
        if value not in [c[0] for c in f.choices]:
            shown = repr(value)[:60]  # the same line whatever the value names on the server
            raise NSTError(f"{f.label} must be one of {', '.join(c[0] for c in f.choices)}, got {shown}")
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise NSTError(f"{f.label} is empty: give a number")
    if isinstance(value, bool):
        raise NSTError(f"{f.label} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NSTError(f"{f.label} must be a number, got {value!r}") from None
    if number != number or (f.min is not None and number < f.min) or (f.max is not None and number > f.max):
        bounds = f"between {f.min:g} and {f.max:g}" if f.max is not None else f"at least {f.min:g}"
        raise NSTError(f"{f.label} must be {bounds}, got {value!r}")
    if f.step == 1 and not number.is_integer():
        raise NSTError(f"{f.label} must be a whole number, got {value!r}")
    return number
