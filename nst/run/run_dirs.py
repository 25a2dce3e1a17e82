"""Run directories: ``logs/<config name>/version_N``, one per run, never shared, never reused by accident."""

import contextlib
import re
import shutil
from pathlib import Path

from nst.errors import NSTError

_VERSION = re.compile(r"version_(\d+)$")
RESULT = "final.png"  # written only by a run that finished


def _versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return [int(m.group(1)) for p in root.iterdir() if (m := _VERSION.match(p.name))]


def version_of(run_dir: Path) -> int:
    return int(_VERSION.match(run_dir.name).group(1))


def create_run_dir(root: Path) -> list[Path]:
    """Create ``root/version_N`` with the next free N.

    ``mkdir`` either creates the directory or fails, so two runs started at the same
    moment from the same config end up in different directories. Returns the directories
    made, the run directory first and then any parents that did not exist, deepest first.
    """
    made = [p for p in (root, *root.parents) if not p.exists()]
    try:
        version = max(_versions(root), default=-1) + 1
        while True:
            try:
                # parents=True: a failed run may remove an empty root between two runs' mkdirs
                (root / f"version_{version}").mkdir(parents=True)
                return [root / f"version_{version}", *made]
            except FileExistsError:
                version += 1
    except OSError as error:
        raise NSTError(
            f"cannot create a run directory in {root} ({error.strerror}); "
            "run from a writable directory or set --trainer.logger.init_args.save_dir"
        ) from error


def checkpoint_of(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def latest_run(root: Path) -> Path | None:
    """The run under ``root`` whose ``last.ckpt`` was written most recently."""
    runs = [root / f"version_{v}" for v in _versions(root)]
    resumable = [run for run in runs if checkpoint_of(run).is_file()]
    return max(resumable, key=lambda run: checkpoint_of(run).stat().st_mtime, default=None)


def remove_if_unfinished(made: list[Path]) -> bool:
    """Undo :func:`create_run_dir` if the run left neither a checkpoint nor a result: it has
    nothing to resume or show. Parents it made go too, if nothing else was put in them."""
    run_dir, *parents = made
    if not run_dir.is_dir() or any(run_dir.rglob("*.ckpt")) or (run_dir / RESULT).exists():
        return False
    shutil.rmtree(run_dir)
    for parent in parents:
        with contextlib.suppress(OSError):  # not empty: another run is using it
            parent.rmdir()
    return True
