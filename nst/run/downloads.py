"""What a run downloads, fetched before it starts: its images given by URL and the ImageNet
VGG19 weights.

Each would otherwise be fetched where it is first read (the images in the datamodule's
``prepare_data``, the weights in the module's ``setup``), so that offline a run would name the
first file it could not download, and only the next try the next one. Fetched here, they are
all named at once: when one cannot be reached, neither can the others still to come.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torchvision.models import VGG19_Weights

from nst import download
from nst.errors import NSTError
from nst.numerics.weights import TRY_RANDOM, fetch_imagenet, imagenet_cache_file, imagenet_offline_fix

IMAGE_OPTIONS = ("content", "style", "content_masks", "style_masks")  # data.* that take URLs


@dataclass(frozen=True)
class _Download:
    name: str  # as the message names it
    option: str  # the option that takes a local file instead
    fetch: Callable[[], object]  # into its cache


def fetch_ahead(pictures: Sequence[Any]) -> None:
    """Download what the settings of ``pictures`` (nst.run.settings.Settings, each with its
    ``model`` and ``datamodule``) need and their caches lack. When the network cannot be
    reached, one NSTError names every file still missing and what to pass instead."""
    pending = _pending(pictures)
    for i, item in enumerate(pending):
        try:
            item.fetch()
        except download.Unreachable as error:
            if len(pending) - i == 1:
                raise  # its own message names it and the way round it
            raise NSTError(_unreachable(pending[i:], error.reason)) from error


def _pending(pictures: Sequence[Any]) -> list[_Download]:
    pending: dict[str, _Download] = {}  # by URL: pictures together may share an image
    for settings in pictures:
        data = settings.datamodule
        for option in IMAGE_OPTIONS:
            value = data.hparams.get(option)
            for source in value if isinstance(value, list) else [value]:
                if (
                    isinstance(source, str)
                    and source not in data.given
                    and download.is_url(source)
                    and not download.cached_path(source).is_file()
                ):
                    pending.setdefault(source, _Download(source, f"data.{option}", _fetcher(source)))
    weights = {settings.model.hparams.weights for settings in pictures}
    if "imagenet" in weights and not imagenet_cache_file().is_file():
        name = f"the ImageNet VGG19 weights {VGG19_Weights.IMAGENET1K_V1.url}"
        pending[name] = _Download(name, "model.weights", fetch_imagenet)
    return list(pending.values())


def _fetcher(url: str) -> Callable[[], object]:
    return lambda: download.fetch(url)


def _unreachable(missing: Sequence[_Download], reason: object) -> str:
    images = list(dict.fromkeys(f"--{item.option}" for item in missing if item.option != "model.weights"))
    fixes = [f"pass local images with {_listed(images)}"] if images else []
    weights = any(item.option == "model.weights" for item in missing)
    fixes += [imagenet_offline_fix()] if weights else []
    return (
        f"cannot download {_listed([item.name for item in missing])} ({reason}); "
        f"check the network, or {' and '.join(fixes)}{f'; {TRY_RANDOM}' if weights else ''}"
    )


def _listed(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
