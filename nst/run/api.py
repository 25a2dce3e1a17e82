"""The Python API: style transfer inside a notebook or a program, through the same run core
as the command line, so the same settings give the same picture::

    import nst
    picture = nst.stylize("photo.jpg", "painting.jpg", size=512, steps=500)   # a PIL image
    result = nst.fit("configs/starry.yaml", {"data.size": 256, "trainer.max_steps": 100})
    result.image, result.losses, result.run_dir
"""

import difflib
import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image
from torch import Tensor

from nst.errors import NSTError
from nst.images import to_pil
from nst.run.data import StyleTransferData
from nst.run.engine import Result, Run
from nst.run.module import StyleTransfer
from nst.run.outputs import FinalImage
from nst.run.stopping import CALLER, Stop
from nst.run.tensorboard import final_losses

ImageSource = str | os.PathLike | Image.Image | Tensor


@dataclass
class Progress:
    """Where a run is, handed to a ``progress`` callback."""

    step: int
    total: int
    losses: dict[str, float]  # as last logged (weighted): total, content, style, tv
    _image: Callable[[], Tensor]

    def image(self) -> Image.Image:
        """The picture as it is now (copied from the device only when asked for)."""
        return to_pil(self._image())


def stylize(
    content: ImageSource | None,
    style: ImageSource | Sequence[ImageSource] | None,
    *,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 10,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    log_dir: str | os.PathLike | None = None,
    progress_bar: bool = True,
    **options: Any,
) -> Image.Image:
    """Paint ``content`` in the style of ``style`` and return the picture.

    ``content`` and ``style`` are paths, URLs, PIL images or [3, H, W] tensors in [0, 1]
    (``style`` may be a list, blended by ``style_blend``; either may be None for texture
    synthesis or reconstruction). ``options`` are the config's own option names: ``size``,
    ``steps``, ``style_weight``, ``content_layers``, ``optimizer``, ``init``, ``weights``,
    ``phases``, ``original_colours``, ... plus ``seed``, ``device`` (or ``accelerator``)
    and ``precision``.

    Nothing is written to disk unless ``log_dir`` is given; then the run gets a run directory
    there, with checkpoints, TensorBoard events and ``final.png``. ``progress`` is called every
    ``progress_every`` steps; setting ``stop`` ends the run after the step in progress and
    returns the picture so far. Ctrl-C does too, but raises :class:`nst.RunInterrupted`
    (the caller did not ask for half a picture). Bad input raises :class:`nst.NSTError`.
    """
    images: dict[str, Image.Image] = {}
    settings = _settings(options)
    settings["data.content"] = None if content is None else _source(content, "content", images)
    if isinstance(style, list | tuple):
        settings["data.style"] = [_source(s, f"style {i + 1}", images) for i, s in enumerate(style)]
    else:
        settings["data.style"] = None if style is None else _source(style, "style 1", images)
    settings |= {"trainer.enable_progress_bar": progress_bar, "trainer.enable_model_summary": False}
    requests = Stop()
    run = Run(
        [settings],
        callbacks=[*_watchers(progress, progress_every, stop, requests), *callbacks],
        in_memory=log_dir is None,
        save_dir=log_dir,
        name="stylize",
        stop=requests,
        images=images,
    )
    result = run.fit()
    if result.stopped is not None and result.stopped.signum != CALLER:
        raise result.stopped  # Ctrl-C: the caller did not ask for a picture half done
    return result.image


def fit(
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    ckpt_path: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 10,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
) -> Result:
    """Exactly ``python cli.py fit --config CONFIG`` with ``overrides`` (config keys such as
    ``"data.size"``): the same run directory, checkpoints, TensorBoard events and errors.
    ``ckpt_path="last"`` continues the latest run of the config. Returns the :class:`Result`;
    setting ``stop`` ends the run after the step in progress, with a checkpoint."""
    layers: list[Any] = []
    if isinstance(config, Mapping):
        layers.append(config)
    elif config is not None:
        layers.append(["--config", os.fspath(config)])
    layers.append(dict(overrides or {}))
    if ckpt_path is not None:
        layers.append({"ckpt_path": ckpt_path})
    requests = Stop()
    run = Run(
        layers, callbacks=[*_watchers(progress, progress_every, stop, requests), *callbacks], stop=requests
    )
    return run.fit()


class _Watch(Callback):
    def __init__(
        self,
        progress: Callable[[Progress], None] | None,
        every: int,
        stop: threading.Event | None,
        requests: Stop,
    ) -> None:
        if every < 1:
            raise NSTError(f"progress_every must be at least 1, got {every}")
        self.progress, self.every, self.stop, self.requests = progress, every, stop, requests

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        step = trainer.global_step
        if self.progress is not None and (step % self.every == 0 or step == trainer.max_steps):
            painting = pl_module.painting
            image = painting.image.detach().clone()  # as it is now; to the host only if asked
            self.progress(Progress(step, trainer.max_steps, final_losses(painting), image.cpu))
        if self.stop is not None and self.stop.is_set():
            self.requests.request()


def _watchers(
    progress: Callable[[Progress], None] | None, every: int, stop: threading.Event | None, requests: Stop
) -> list[Callback]:
    watched = progress is not None or stop is not None
    return [_Watch(progress, every, stop, requests)] if watched else []


def _source(image: ImageSource, role: str, images: dict[str, Image.Image]) -> str:
    """A path or URL as it is; an image in memory under a name that stands for its pixels."""
    if isinstance(image, str | os.PathLike):
        return os.fspath(image)
    if isinstance(image, Tensor):
        image = _tensor_to_pil(image, role)
    if not isinstance(image, Image.Image):
        raise NSTError(
            f"the {role} image is a {type(image).__name__}; give a path, URL, PIL image or [3, H, W] tensor"
        )
    digest = hashlib.sha1(image.tobytes() + f"{image.mode}{image.size}".encode()).hexdigest()[:12]
    name = f"<{role} in memory, {image.width}×{image.height}, {digest}>"
    images[name] = image
    return name


def _tensor_to_pil(image: Tensor, role: str) -> Image.Image:
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise NSTError(f"the {role} tensor has shape {list(image.shape)}; give an RGB image as [3, H, W]")
    if image.is_floating_point():
        if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise NSTError(f"the {role} tensor has values outside [0, 1]; scale it to [0, 1]")
        return to_pil(image)
    return Image.fromarray(image.permute(1, 2, 0).to(torch.uint8).cpu().numpy(), "RGB")


def _options() -> dict[str, str]:
    """Bare option name -> config key, for every model, data and output option."""
    found: dict[str, str] = {}
    for section, cls in (("model", StyleTransfer), ("data", StyleTransferData), ("output", FinalImage)):
        for name in inspect.signature(cls.__init__).parameters:
            if name not in ("self", "content", "style", "path", "overwrite"):
                found[name] = f"{section}.{name}"
    found |= {"steps": "trainer.max_steps", "precision": "trainer.precision", "seed": "seed_everything"}
    found |= {"accelerator": "trainer.accelerator", "devices": "trainer.devices"}
    return found


def _plain(value: Any) -> Any:
    """NumPy and torch scalars (np.float64(0.5), torch.tensor(3)) as the Python numbers they hold."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _device(device: Any) -> dict[str, Any]:
    """``"cuda:1"`` as accelerator cuda on device 1; ``"cpu"``, ``"mps"``, ``torch.device``..."""
    kind, _, index = str(device).partition(":")
    if index and not index.isdigit():
        raise NSTError(f"device {device!r} is not a device such as cpu, cuda, cuda:1 or mps")
    if kind == "cpu" or not index:
        return {"trainer.accelerator": kind, "trainer.devices": 1}
    return {"trainer.accelerator": kind, "trainer.devices": [int(index)]}


def _settings(options: Mapping[str, Any]) -> dict[str, Any]:
    known = _options()
    settings: dict[str, Any] = {}
    for name, value in options.items():
        value = _plain(value)
        if name == "device":
            settings |= _device(value)
        elif "." in name:  # a config key given in full, e.g. **{"checkpoint.every_n_steps": 10}
            settings[name] = value
        elif name in known:
            settings[known[name]] = value
        else:
            close = difflib.get_close_matches(name, [*known, "device"], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise NSTError(
                f"nst.stylize has no option {name!r}; {hint}the options are the config's: {', '.join(sorted(known))}"
            )
    return settings
