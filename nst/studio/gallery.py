"""Past runs, read from ``logs/``: every run directory (the studio's and the CLI's) with its
picture, settings, losses and time. A run is named to the page by an id made here
(``<name>~<version>``) and found again only by looking it up among the runs found."""

import json
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nst.errors import NSTError
from nst.many.sweep_figure import final_losses
from nst.run import run_dirs
from nst.studio.form import form_of
from nst.studio.jobs import run_label
from nst.video.run import RESULT as VIDEO
from nst.video.run import STATE, is_video_run

_ID = re.compile(r"^[A-Za-z0-9_.-]+~\d+$")
REMOVED = ".removed"  # logs/.removed/: runs taken out of the gallery, kept until someone deletes them


class Gallery:
    def __init__(
        self,
        logs: Path,
        names: Callable[[str], str | None] = lambda upload_id: None,
        uploads: Path | None = None,
        weights_dir: Path | None = None,
    ) -> None:
        self.logs = logs
        self.weights_dir = weights_dir
        self.names = names  # an uploaded image's file name, by the id it is stored under
        self.uploads = uploads  # where the studio keeps uploads: a run of them can be run again with them

    def run_dirs(self) -> dict[str, Path]:
        """Every run directory under the logs folder, by id (sweeps' cells are left out)."""
        found = {}
        if not self.logs.is_dir():
            return found
        for name in self.logs.iterdir():
            if not name.is_dir() or name.name == REMOVED:
                continue
            for version in name.glob("version_*"):
                if (
                    (version / "config.yaml").is_file()
                    and not (version / "sweep.yaml").exists()
                    and not is_training_run(version)  # listed as instant styles instead
                ):
                    found[f"{name.name}~{version.name.removeprefix('version_')}"] = version
        return found

    def find(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not _ID.match(run_id):
            raise NSTError("no such run")
        run_dir = self.run_dirs().get(run_id)
        if run_dir is None:
            raise NSTError("no such run")
        return run_dir

    def entries(self) -> list[dict[str, Any]]:
        entries = [self.entry(run_id, run_dir) for run_id, run_dir in self.run_dirs().items()]
        return sorted(entries, key=lambda e: e["time"], reverse=True)

    def entry(self, run_id: str, run_dir: Path) -> dict[str, Any]:
        checkpoint = run_dirs.checkpoint_of(run_dir)
        finished = (run_dir / run_dirs.RESULT).is_file()
        stamps = [
            p.stat().st_mtime
            for p in (run_dir / run_dirs.RESULT, checkpoint, run_dir / "config.yaml")
            if p.exists()
        ]
        config = self.config(run_dir)
        data = config.get("data", {})
        styles = data.get("style")
        video = self._video(run_dir)
        damaged = False
        if video is not None:
            finished, frames = video["finished"], video["frames"]
            stamps.append((run_dir / STATE).stat().st_mtime)
            checkpoint = run_dir / STATE  # its progress: the frames finished and the frame's checkpoint
        elif not finished and checkpoint.is_file():
            # torch writes a zip; a cut-off or overwritten one has lost its central directory.
            damaged = not zipfile.is_zipfile(checkpoint)
        status = "finished" if finished else "interrupted" if checkpoint.is_file() else "empty"
        return {
            "id": run_id,
            "name": run_dir.parent.name,
            "version": run_dir.name,
            "label": run_label(run_dir),
            "status": "damaged" if damaged else status,
            "picture": not damaged and (finished or (frames > 0 if video else checkpoint.is_file())),
            "continuable": not damaged and checkpoint.is_file() and not finished,
            "kind": "video" if video else "picture",
            "frames": frames if video else None,
            "time": max(stamps),
            "seconds": max(stamps) - min(stamps),
            "losses": video["losses"] if video else final_losses(run_dir),
            "content": self._named(data.get("content")),
            "style": [self._named(s) for s in _listed(styles)],
            "form": form_of(config, self.weights_dir),
            "uploads": self._uploads_of(data.get("content"), styles),
        }

    def form(self, run_dir: Path) -> dict[str, Any]:
        return form_of(self.config(run_dir), self.weights_dir)

    def names_of(self, run_dir: Path) -> list[str]:
        """The names of the pictures a run was made from: its photo, then its paintings."""
        data = self.config(run_dir).get("data") or {}
        sources = [data.get("content"), *_listed(data.get("style"))]
        return [Path(name).stem for name in (self._named(s) for s in sources) if name]

    def remove(self, run_dir: Path) -> Path:
        """Take a run out of the gallery: moved into logs/.removed/, not deleted."""
        kept = self.logs / REMOVED / f"{run_dir.parent.name}_{run_dir.name}_{time.strftime('%Y%m%d-%H%M%S')}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        run_dir.rename(kept)
        return kept

    @staticmethod
    def _video(run_dir: Path) -> dict[str, Any] | None:
        if not is_video_run(run_dir):
            return None
        frames = len(list((run_dir / "frames").glob("*.png")))
        try:
            losses = json.loads((run_dir / STATE).read_text())["losses"]
        except (OSError, ValueError, KeyError):
            losses = []
        last = losses[-1] if losses and isinstance(losses[-1], dict) else {}
        shown = {k: v for k, v in last.items() if k in ("total", "content", "style", "temporal")}
        return {"finished": (run_dir / VIDEO).is_file(), "frames": frames, "losses": shown}

    def _uploads_of(self, content: Any, styles: Any) -> dict[str, Any] | None:
        """The studio uploads a run's pictures are, to pick them again; None if any is not one."""
        styles = [s for s in _listed(styles) if s is not None]

        def upload(source: Any) -> dict[str, Any] | None:
            path = Path(str(source))
            if self.uploads is None or path.parent != self.uploads or not path.is_file():
                return None
            return {"id": path.stem, "name": self.names(path.stem) or path.name}

        found = [upload(s) for s in styles]
        picked = upload(content) if content is not None else None
        if None in found or (content is not None and picked is None):
            return None
        return {"content": picked, "styles": found}

    def _named(self, source: Any) -> str | None:
        if source is None:
            return None
        stem = Path(str(source)).stem
        return self.names(stem) or stem

    def config(self, run_dir: Path) -> dict[str, Any]:
        try:
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return config if isinstance(config, dict) else {}


def _listed(styles: Any) -> list[Any]:
    """data.style as a list: a config names one painting, or several."""
    return styles if isinstance(styles, list) else [styles]


def is_training_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is an nst train run (a style network's, not a picture's)."""
    if (run_dir / "network.pt").exists():
        return True
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and isinstance(config.get("data"), dict) and "photos" in config["data"]
