"""What makes a run the run it is: the settings a resume may not change.

Weights and learning rates may change on resume (that is a user's experiment); images,
sizes, layers, network, optimizer and the phases' shape may not.
"""

from typing import Any

from nst.errors import NSTError
from nst.numerics.vgg import canonical_layers

MODEL_KEYS = ("content_layers", "style_layers", "weights", "pooling", "padding", "optimizer")
DATA_KEYS = (
    "content",
    "style",
    "size",
    "style_size",
    "style_scale",
    "style_blend",
    "match_colours",
    "luminance_only",
    "content_masks",
    "style_masks",
)


def check_same_run(checkpoint: dict[str, Any], model: Any, data: Any) -> None:
    """Refuse to continue a run with settings that would make it a different run.

    ``model`` and ``data`` are the init arguments of this run (mappings or config namespaces).
    """
    saved_model = checkpoint.get("hyper_parameters", {})
    saved_data = checkpoint.get("datamodule_hyper_parameters", {})
    # A setting the checkpoint does not record is not compared; one it records as None
    # (no style image, say) is: adding the image would make it another run.
    pairs = [(f"model.{k}", saved_model, k, _get(model, k)) for k in MODEL_KEYS]
    pairs += [(f"data.{k}", saved_data, k, _get(data, k)) for k in DATA_KEYS]
    changed = [name for name, saved, k, now in pairs if k in saved and saved[k] != now]
    if _shape(saved_model.get("phases"), saved_model) != _shape(_get(model, "phases"), model):
        changed.append("model.phases")
    if changed:
        raise NSTError(
            f"the run being resumed was made with a different {', '.join(changed)}; "
            "resume with its settings (see its config.yaml) or start a fresh run without --ckpt_path"
        )


def _get(settings: Any, key: str) -> Any:
    value = settings.get(key) if isinstance(settings, dict) else getattr(settings, key, None)
    if key in ("content_layers", "style_layers") and value:  # conv_4 and conv2_2 are one layer
        return canonical_layers(value, key, quiet=True)
    return value


def _shape(phases: list[Any] | None, model: Any) -> list[tuple[Any, ...]] | None:
    # What of the phases makes the run: their sizes, lengths and optimizers. Their weights and
    # learning rates may change on resume, as the model's own may.
    if not phases:
        return None
    optimizer = _get(model, "optimizer")
    return [(_get(p, "size"), _get(p, "steps"), _get(p, "optimizer") or optimizer) for p in phases]
