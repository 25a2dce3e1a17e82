"""Files written whole or not at all: a crash mid-write never leaves a truncated result."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _read_umask() -> int:
    umask = os.umask(0)  # the only way to read it is to set it; done once, at import
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file under the process's umask."""
    return 0o666 & ~_UMASK


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield ``(file, temporary path)`` beside ``path``; renamed over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, tmp
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp makes files private; results are not
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
