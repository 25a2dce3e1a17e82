"""Run directories: ``logs/<config name>/version_N``, one per run, never shared, never reused by accident."""

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.run.checkpoint_files import checkpoint_of

_VERSION = re.compile(r"version_(\d+)$")
RESULT = "final.png"  # written only by a run that finished


def versions(root: Path) -> list[int]:
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
        version = max(versions(root), default=-1) + 1
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


def latest_run(root: Path) -> Path | None:
    """The run under ``root`` whose ``last.ckpt`` was written most recently."""
    runs = [root / f"version_{v}" for v in versions(root)]
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


@dataclass(frozen=True)
class Where:
    """Where a run writes, as a front door hands it to the run (None: as its settings say,
    ``trainer.logger.init_args``).

    Args:
        save_dir: The log folder.
        name: The run's folder in it (default: the config file's stem), which holds its
            ``version_N`` directories.
        run_dir: Exactly this run directory (a sweep's cell, a run continued from the studio);
            it must be new or empty unless the run continues from a checkpoint.
    """

    save_dir: str | None = None
    name: str | None = None
    run_dir: Path | None = None


def place(where: Where, logger: Any, stem: str, ckpt_path: str | None, made: list[list[Path]]) -> str | None:
    """Choose a run's directory, filling in ``logger``'s ``save_dir``, ``name`` and ``version``
    (a TensorBoard logger's init_args, before it is made); returns the checkpoint to continue
    from (``last`` becomes the file). A new directory is made now (see create_run_dir), so two
    runs started together get their own, and noted in ``made``."""
    if where.run_dir is not None:
        run_dir = Path(where.run_dir)
        logger.save_dir, logger.name, logger.version = (
            str(run_dir.parent.parent),
            run_dir.parent.name,
            run_dir.name,
        )
    else:
        logger.save_dir = where.save_dir or logger.save_dir
        logger.name = logger.name or where.name or stem  # a name the settings give wins
    root = Path(logger.save_dir) / logger.name
    if logger.version is not None:
        version = logger.version
        run_dir = root / (f"version_{version}" if isinstance(version, int) else version)
    elif ckpt_path == "last":
        run_dir = latest_run(root)
        if run_dir is None:
            raise NSTError(
                f"no run of {logger.name!r} to resume: {root} holds no checkpoints/last.ckpt; "
                "start a fresh run without --ckpt_path"
            )
        logger.version = version_of(run_dir)
    else:
        new = create_run_dir(root)
        made.append(new)
        logger.version = version_of(new[0])
        return ckpt_path
    if ckpt_path == "last":
        if not checkpoint_of(run_dir).is_file():
            raise NSTError(f"{run_dir} holds no checkpoints/last.ckpt to resume from")
        print(f"Resuming {run_dir}")
        return str(checkpoint_of(run_dir))
    if ckpt_path is None and run_dir.is_dir() and any(run_dir.iterdir()):
        raise NSTError(
            f"{run_dir} already holds a run; resume it with --ckpt_path last, "
            "or leave trainer.logger.init_args.version unset for a new directory"
        )
    return ckpt_path
