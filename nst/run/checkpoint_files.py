"""Checkpoint files: written whole or not at all, one per picture, and read back with one line
for a file that is not a checkpoint."""

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from nst.errors import NSTError, brief
from nst.files import atomic_write

LAST = "last.ckpt"
# Each tensor in a checkpoint file costs ~25 µs to write, whatever its size. An L-BFGS history
# of a small picture is hundreds of tensors of a few kB (at 32 px, 15 ms of a 17 ms save), so
# its lists are written as one tensor each, up to this size (stacking copies them).
PACK_UP_TO_BYTES = 64 * 2**20
_PACKED = "nst_packed"


def checkpoint_of(run_dir: Path) -> Path:
    """Where a run directory keeps the checkpoint it continues from."""
    return run_dir / "checkpoints" / LAST


def check_ckpt_path(path: str | None, run: str = "an nst run") -> None:
    """Refuse a ``--ckpt_path`` that names no checkpoint of ``run`` (the kind of run continued),
    before a run directory is made: Lightning would otherwise fail on it mid-start, with a
    traceback (a torch file it did not write has no ``pytorch-lightning_version``)."""
    if path in ("best", "hpc", "registry"):
        raise NSTError(f"nst keeps one checkpoint per run; use --ckpt_path last or a .ckpt file, not {path}")
    if not path or path == "last":
        return
    if Path(path).is_dir():
        raise NSTError(
            f"checkpoint {path} is a folder; give --ckpt_path the checkpoints/last.ckpt of {run}, or last"
        )
    if not Path(path).is_file():
        raise NSTError(f"checkpoint {path} does not exist; give a .ckpt file or --ckpt_path last")
    read_checkpoint(path, run)


def read_checkpoint(path: str, run: str = "an nst run") -> dict[str, Any]:
    """The checkpoint at ``path``, on the CPU, its tensors read only when touched; one line
    naming ``run`` (the kind of run it should come from) for a file that is not a checkpoint."""
    try:  # mmap: an L-BFGS checkpoint can be hundreds of MB, and often only its settings are read
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        why = "it is not a whole file torch.save wrote" if not zipfile.is_zipfile(path) else brief(error)
        raise NSTError(
            f"checkpoint {path} cannot be read ({why}); give the checkpoints/last.ckpt of {run}"
        ) from error
    # What every checkpoint Lightning writes holds: a plain state dict, or any other torch file,
    # lacks them.
    if not (
        isinstance(checkpoint, dict)
        and "pytorch-lightning_version" in checkpoint
        and "state_dict" in checkpoint
    ):
        raise NSTError(
            f"checkpoint {path} is a torch file but not a checkpoint Lightning wrote; "
            f"give --ckpt_path the checkpoints/last.ckpt of {run}, or last"
        )
    return checkpoint


class RunCheckpointIO(TorchCheckpointIO):
    """Writes local checkpoints beside their target, flushed to disk, then renamed over it; and
    for pictures optimised together, one checkpoint per picture.

    Lightning's own writer goes through a temporary file in the system temp directory; when that
    is another filesystem (tmpfs, a different disk), the final move is a copy, so a kill -9 or a
    power cut mid-copy would leave a truncated ``last.ckpt``. Renaming within one directory is
    atomic.

    Args:
        pictures: With several pictures, each one's checkpoint file, in order. The module saves
            one part per picture (``nst_pictures``); each file gets the trainer's state and its
            picture's part, what a run of its own would have written, so a picture continues
            alone or together with any others; reading gives the parts back as one checkpoint.
    """

    def __init__(self, pictures: Sequence[Path] = ()) -> None:
        super().__init__()
        self.pictures = list(pictures)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        parts = checkpoint.get("nst_pictures")
        if parts is None:
            self._save(checkpoint, path, storage_options)
            return
        shared = {k: v for k, v in checkpoint.items() if k not in ("nst_pictures", "callbacks")}
        for own, part in zip(self.pictures, parts, strict=True):
            self._save({**shared, **part, "callbacks": {}}, own, storage_options)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        if len(self.pictures) < 2:
            return super().load_checkpoint(path, map_location, weights_only)
        parts = [super().load_checkpoint(own, map_location or _on_cpu, weights_only) for own in self.pictures]
        steps = {part["global_step"] for part in parts}
        if len(steps) > 1:  # nst.many.batches batches pictures at one step only
            raise NSTError(f"pictures stopped at different steps ({sorted(steps)}) cannot continue together")
        shared = {k: v for k, v in parts[0].items() if k not in ("state_dict", "optimizer_states")}
        return {**shared, "nst_pictures": parts}

    def _save(self, checkpoint: dict[str, Any], path: Any, storage_options: Any) -> None:
        if storage_options is not None or "://" in str(path):  # Lightning's handling (and errors)
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        # Leftovers of a writer that was killed mid-write; a run directory has one writer.
        for stale in path.parent.glob(f".{path.name}.*.part"):
            stale.unlink(missing_ok=True)
        try:
            with atomic_write(path) as (out, _):
                torch.save(pack_optimizer_lists(checkpoint), out)
        except OSError as error:  # a full disk, a folder made read-only: the earlier checkpoint stays
            raise NSTError(
                f"cannot write {path} ({error.strerror or error}); make room or fix the folder's "
                "permissions, then continue with --ckpt_path last"
            ) from error


def without_old_callback_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` without the state that the checkpoint callback of nst versions before
    2026-12-07 (a ModelCheckpoint) wrote, in place: Lightning would ask for that callback back."""
    states = checkpoint.get("callbacks") or {}
    for key in [k for k in states if isinstance(k, str) and k.startswith("RunCheckpoint{")]:
        del states[key]
    return checkpoint


def _on_cpu(storage: Any, location: Any) -> Any:
    return storage


def pack_optimizer_lists(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` with each optimizer state's lists of like tensors (L-BFGS's history) as one
    stacked tensor, where small; the checkpoint itself, which holds the live state, is left alone."""
    states = checkpoint.get("optimizer_states")
    if not isinstance(states, list):
        return checkpoint
    packed = [
        {**sd, "state": {k: _packed(v) for k, v in sd["state"].items()}} if "state" in sd else sd
        for sd in states
    ]
    return {**checkpoint, "optimizer_states": packed}


def unpack_optimizer_lists(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The lists that pack_optimizer_lists stacked, as lists again, in place (the module does
    this as a checkpoint is loaded, whichever CheckpointIO read it; others pass through)."""
    for sd in checkpoint.get("optimizer_states") or []:
        for state in sd.get("state", {}).values():
            for key, value in state.items():
                if isinstance(value, dict) and set(value) == {_PACKED}:
                    state[key] = list(value[_PACKED].unbind(0))
    return checkpoint


def _packed(state: Any) -> Any:
    if not isinstance(state, dict):
        return state
    out = dict(state)
    for key, value in state.items():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(t, torch.Tensor) for t in value)
            and len({(t.shape, t.dtype, t.device) for t in value}) == 1
            and sum(t.nbytes for t in value) <= PACK_UP_TO_BYTES
        ):
            out[key] = {_PACKED: torch.stack(value)}
    return out
