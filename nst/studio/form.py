"""The studio's settings form: the options people change, with defaults and hints, and how a
filled-in form becomes an ordinary run's settings (so its config.yaml re-runs from the CLI)."""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nst.errors import NSTError

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
        "weights",
        "Network weights",
        "imagenet",
        "ImageNet (downloaded once), random (for trying things), or the path of a .pth file on the server.",
        "text",
    ),
]
_BY_NAME = {f.name: f for f in FIELDS}


def fields() -> list[dict[str, Any]]:
    return [asdict(f) for f in FIELDS]


def settings_of(form: dict[str, Any]) -> dict[str, Any]:
    """The run settings (config keys) of a filled-in form; unknown or bad values are refused in one line."""
    values = {f.name: f.default for f in FIELDS}
    for name, value in form.items():
        if name not in _BY_NAME:
            raise NSTError(f"unknown setting {name!r}")
        values[name] = _checked(_BY_NAME[name], value)
    size, steps = int(values["size"]), int(values["steps"])
    settings: dict[str, Any] = {
        "data.size": size,
        "trainer.max_steps": steps,
        "model.style_weight": float(values["style_weight"]),
        "model.content_weight": float(values["content_weight"]),
        "model.tv_weight": float(values["tv_weight"]),
        "model.optimizer": values["optimizer"],
        "model.init": values["init"],
        "model.weights": str(values["weights"]).strip() or "imagenet",
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


def form_of(config: dict[str, Any]) -> dict[str, Any]:
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
        "weights": model.get("weights"),
    }
    return {k: v for k, v in form.items() if v is not None}


def _checked(f: Field, value: Any) -> Any:
    if f.kind == "toggle":
        if not isinstance(value, bool):
            raise NSTError(f"{f.label} is on or off, got {value!r}")
        return value
    if f.kind == "choice":
        if value not in [c[0] for c in f.choices]:
            raise NSTError(f"{f.label} must be one of {', '.join(c[0] for c in f.choices)}, got {value!r}")
        return value
    if f.kind == "text":
        if not isinstance(value, str) or len(value) > 500:
            raise NSTError(f"{f.label} must be text")
        if value not in ("imagenet", "random", "") and not Path(value).is_file():
            raise NSTError(
                f"{f.label}: {value} is not a file on the server; give imagenet, random or a .pth path"
            )
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NSTError(f"{f.label} must be a number, got {value!r}") from None
    if number != number or (f.min is not None and number < f.min) or (f.max is not None and number > f.max):
        bounds = f"between {f.min:g} and {f.max:g}" if f.max is not None else f"at least {f.min:g}"
        raise NSTError(f"{f.label} must be {bounds}, got {value!r}")
    return number
