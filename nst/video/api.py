"""The Python API of video: ``nst.stylize_video`` paints a video file or a folder of frames the
way ``python cli.py video`` does, and returns the path of the written video::

    import nst
    path = nst.stylize_video("clip.mp4", "starry.jpg", size=512, log_dir="runs")
"""

import dataclasses
import difflib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from PIL import Image

from nst.errors import NSTError
from nst.run.api import ImageSource, _options, _settings, _source, _watchers
from nst.run.stopping import Stop
from nst.video.options import VideoOptions
from nst.video.run import VideoRun

# Options of the video section, by their own names (``init`` is where later frames start).
VIDEO_OPTIONS = {field.name for field in dataclasses.fields(VideoOptions)}


def stylize_video(
    content: str | os.PathLike,
    style: ImageSource | Sequence[ImageSource],
    *,
    log_dir: str | os.PathLike = "logs",
    ckpt_path: str | None = None,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    progress_bar: bool = True,
    **options: Any,
) -> Path:
    """Paint the video ``content`` (a file or a folder of numbered frames) in the style of
    ``style`` (paths, URLs, PIL images or tensors, as nst.stylize takes them) and return the
    path of ``video.mp4`` in the run directory under ``log_dir``/video.

    ``options`` are the config's option names, as nst.stylize takes them (``size``,
    ``style_weight``, ``weights``, ``seed``, ``device`` ...), plus ``temporal_weight`` and the
    video section's: ``init`` (``warped`` or ``content``), ``steps_first``, ``steps``,
    ``frames``, ``consistency``, ``patience``, ``min_delta``, ``flow``, ``fps``.
    ``ckpt_path="last"`` continues the latest video run there. Setting ``stop`` ends the run at
    the next step boundary, with a checkpoint; then (and on Ctrl-C) :class:`nst.RunInterrupted`
    is raised, as there is no whole video to return. Bad input raises :class:`nst.NSTError`.
    """
    if not isinstance(content, str | os.PathLike):
        raise NSTError(
            f"the video is a {type(content).__name__}; give the path of a video file or a folder of frames"
        )
    _check_names(options)
    video = {f"video.{name}": options.pop(name) for name in list(options) if name in VIDEO_OPTIONS}
    if "temporal_weight" in options:
        video["model.temporal_weight"] = options.pop("temporal_weight")
    images: dict[str, Image.Image] = {}
    settings = _settings(options) | video
    settings["data.content"] = os.fspath(content)
    styles = style if isinstance(style, list | tuple) else [style]
    sources = [_source(s, f"style {i + 1}", images) for i, s in enumerate(styles)]
    settings["data.style"] = sources if isinstance(style, list | tuple) else sources[0]
    settings |= {"trainer.enable_progress_bar": progress_bar, "trainer.enable_model_summary": False}
    if ckpt_path is not None:
        settings["ckpt_path"] = ckpt_path
    requests = Stop()
    run = VideoRun(
        [settings],
        callbacks=[*_watchers(None, 1, stop, requests), *callbacks],
        save_dir=log_dir,
        name="video",
        stop=requests,
        images=images,
    )
    with requests.signals():
        result = run.fit()
    if result.stopped is not None:  # no whole video to hand back; --ckpt_path last continues it
        raise result.stopped
    return result.video


def _check_names(options: dict[str, Any]) -> None:
    known = [*_options(), *VIDEO_OPTIONS, "temporal_weight", "device"]
    for name in options:
        if "." not in name and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise NSTError(
                f"nst.stylize_video has no option {name!r}; {hint}the options are the config's and the video "
                f"section's: {', '.join(sorted(known))}"
            )
