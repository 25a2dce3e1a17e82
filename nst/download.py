"""Images given by URL are downloaded once into a cache, as torchvision does with weights.

The cache lives in ``$TORCH_HOME/nst/images`` (default ``~/.cache/torch/nst/images``).
A file enters it only whole and only once Pillow recognises it as an image, so a
broken download never poisons later runs.
"""

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from PIL import Image

from nst.errors import NSTError, brief
from nst.files import atomic_write

MAX_BYTES = 100 * 2**20  # larger than any painting scan a style transfer needs
TIMEOUT_S = 30
_USER_AGENT = "nst-style-transfer/0.1 (Python urllib)"  # Wikimedia refuses requests without one


class Unreachable(NSTError):
    """A download that failed for want of a connection rather than because of its address: the
    other downloads of the run would fail the same way, so a run names them all at once
    (nst.run.downloads). ``reason`` is what went wrong, as the message says it."""

    def __init__(self, message: str, reason: object) -> None:
        super().__init__(message)
        self.reason = reason


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def cache_dir() -> Path:
    torch_home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(torch_home)) / "nst" / "images"


def cached_path(url: str) -> Path:
    """Where ``url`` is (or will be) cached: a hash of the URL keeps same-named files apart."""
    name = os.path.basename(urlparse(url).path) or "image"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_dir() / f"{digest}-{name}"


def fetch(url: str) -> Path:
    """Return the cached file for ``url``, downloading it first if it is not cached yet."""
    target = cached_path(url)
    if target.is_file():
        return target
    try:
        with atomic_write(target) as (out, partial):
            _download(url, out)
            out.flush()
            _check_image(url, partial)
    except OSError as error:  # the cache itself; network errors arrive as NSTError
        raise NSTError(
            f"cannot write the image cache {target.parent} ({error.strerror or error}); "
            "set TORCH_HOME to a writable directory"
        ) from error
    return target


def _download(url: str, out: BinaryIO) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > MAX_BYTES:
                raise _too_large(url)
            size = 0
            while chunk := response.read(2**16):
                size += len(chunk)
                if size > MAX_BYTES:  # a server may announce no size, or the wrong one
                    raise _too_large(url)
                out.write(chunk)
    except urllib.error.HTTPError as error:
        raise NSTError(f"cannot download {url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, http.client.HTTPException, ValueError, OSError) as error:
        reason = getattr(error, "reason", error)  # URLError wraps what went wrong while connecting
        if isinstance(reason, TimeoutError):
            reason = f"the server sent nothing for {TIMEOUT_S} s"
            raise Unreachable(
                f"cannot download {url}: {reason}; try again later or pass a local file instead", reason
            ) from error
        message = f"cannot download {url} ({reason}); check the address or the network, or pass a local file instead"
        if is_unreachable(error):
            raise Unreachable(message, reason) from error
        raise NSTError(message) from error


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (from urllib, or torch.hub's download) says the server could not be
    reached or stopped answering: no connection, no name lookup, a reset or a timeout. An answer
    the server gave (HTTP errors) or an address that is not one says nothing about the network."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, urllib.error.URLError | ConnectionError | TimeoutError | socket.gaierror)


def _too_large(url: str) -> NSTError:
    return NSTError(f"{url} is larger than {MAX_BYTES // 2**20} MiB; download and shrink it yourself")


def _check_image(url: str, path: Path) -> None:
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:
        raise NSTError(f"{url} did not return an image ({brief(error)})") from error
