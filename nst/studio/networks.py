"""Trained style networks as the studio's instant styles: every ``network.pt`` of a run in the
logs folder, and in the folders ``nst serve --networks`` names, each named to the page by an id
made here (a run's id, ``<name>~<version>``, or a hash of the file's place). A network is found
again only by looking its id up among those found: nothing the page sends is used as a path.

The list reads of each version of a file (its mtime and size) only what it shows, with the
weights mapped from the file, not read; a network is loaded when it first paints, and the last
few loaded are kept in memory. TorchScript exports of networks (``nst export``) are passed over:
they are not files a network can be loaded from. A photo is painted on the CPU in torch's
inference mode, one at a time, beside whatever job the studio runs (it shares the CPU with it,
nothing else)."""

import functools
import hashlib
import io
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from nst.errors import NSTError, brief
from nst.images import resize_long_side, to_pil, to_tensor
from nst.train.architecture import TransformNet
from nst.train.network import FILE, MIN_SIDE, Network, is_torchscript, read_network_file

DEFAULT_SIDE = 512
MAX_SIDE = 2048
PREVIEW_SIDE = 128
KEPT = 8  # networks kept loaded (the paper's size is 7 MB each)
PHOTOS_KEPT = 4  # photos kept decoded and scaled, so that trying network after network is quick
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]+~\d+$")
_FOLDER_ID = re.compile(r"^n[0-9a-f]{16}$")
HOW = "nst train --config configs/train.yaml --data.photos photos/ --data.style painting.jpg"


@dataclass(frozen=True)
class Found:
    id: str
    path: Path
    run: str  # where it is, as the page shows it: train/version_0, or folder/file.pt

    @property
    def shown(self) -> str:
        """The file, as the page names it."""
        return f"{self.run}/{FILE}" if self.path.name == FILE else self.run


@dataclass
class _Read:
    """What one version of a network file gave: what it says of itself (``about``), its network
    once loaded to paint, or why it cannot be used."""

    stamp: tuple[int, int]
    about: dict[str, Any]
    network: Network | None = None
    error: str | None = None
    preview: bytes | None = None


class Networks:
    """The instant styles: the networks in ``logs`` (its runs' ``network.pt``) and ``folders``."""

    def __init__(self, logs: Path, folders: Sequence[Path] = ()) -> None:
        self.logs = logs
        self.folders = [Path(f).absolute() for f in folders]
        self._read: dict[Path, _Read] = {}
        self._exports: dict[Path, tuple[tuple[int, int], bool]] = {}  # TorchScript or not, by version
        self._loaded: OrderedDict[Path, Network] = OrderedDict()
        self._photos: OrderedDict[tuple[str, int], Image.Image] = OrderedDict()
        self._lock = threading.Lock()  # the caches
        # One painting at a time: two at once would each take twice as long on the same cores.
        self._painting = threading.Lock()

    def found(self) -> dict[str, Found]:
        """Every network file, by id; a file found twice (a folder inside the logs) once."""
        found: dict[str, Found] = {}
        seen: set[Path] = set()

        def add(network_id: str, path: Path, run: str) -> None:
            real = path.resolve()
            if real not in seen and path.is_file() and not self._is_export(path):
                seen.add(real)
                found[network_id] = Found(network_id, path, run)

        if self.logs.is_dir():
            for path in sorted(self.logs.glob(f"*/version_*/{FILE}")):
                version = path.parent.name.removeprefix("version_")
                if version.isdigit():
                    add(
                        f"{path.parent.parent.name}~{version}",
                        path,
                        f"{path.parent.parent.name}/{path.parent.name}",
                    )
        for folder in self.folders:
            # A folder of network files, of copied run directories, or of a logs folder's runs.
            paths = [*folder.glob("*.pt"), *folder.glob(f"*/{FILE}"), *folder.glob(f"*/*/{FILE}")]
            for path in sorted(paths):
                where = path.relative_to(folder)
                run = f"{folder.name}/{where.parent if path.name == FILE else where}"
                add("n" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16], path, run)
        return found

    def find(self, network_id: Any) -> Found:
        if not isinstance(network_id, str) or not (_RUN_ID.match(network_id) or _FOLDER_ID.match(network_id)):
            raise NSTError("no such network: pick one from the list")
        found = self.found().get(network_id)
        if found is None:
            raise NSTError("no such network: pick one from the list (its run may have been removed)")
        return found

    def entries(self) -> list[dict[str, Any]]:
        """The page's list, newest first (those that cannot paint last): each network's name,
        steps and whether it can paint. No network is loaded for it."""
        entries = []
        for found in self.found().values():
            read = self._read_file(found)
            about = read.about
            styles = about.get("style") or []
            styles = styles if isinstance(styles, list) else [styles]
            style = " + ".join(Path(str(s)).stem for s in styles) or "network"
            entries.append(
                {
                    "id": found.id,
                    "name": f"{style} · {found.run}",
                    "style": style,
                    "run": found.run,
                    "steps": _number(about.get("steps")),
                    "size": _number(about.get("size")),
                    "usable": read.error is None,
                    "error": read.error,
                    "time": read.stamp[0] / 1e9,
                }
            )
        return sorted(entries, key=lambda e: (e["usable"], e["time"]), reverse=True)  # usable first

    def network(self, network_id: str) -> Network:
        """The network of ``network_id``, loaded (once per version of its file)."""
        read = self._read_file(self.find(network_id), load=True)
        if read.error is not None:
            raise NSTError(f"this network cannot paint: {read.error}")
        assert read.network is not None
        return read.network

    def preview(self, network_id: str) -> bytes:
        """A small JPEG of the network's painting of a drawn scene, painted once per version."""
        network = self.network(network_id)
        read = self._read_file(self.find(network_id))
        if read.preview is None:
            with self._painting:
                painted = network(_scene(PREVIEW_SIDE))
            out = io.BytesIO()
            painted.save(out, format="JPEG", quality=85)
            read.preview = out.getvalue()
        return read.preview

    def paint(
        self,
        network_id: str,
        photo: bytes,
        check: Callable[[bytes], Image.Image],
        long_side: int = DEFAULT_SIDE,
    ) -> "Painted":
        """``photo`` (an upload's bytes, checked by ``check(data)``, which gives the image or
        raises NSTError) painted at ``long_side`` px (at most the photo's own size) as a PNG."""
        started = time.perf_counter()
        network = self.network(network_id)
        picture = self._photo(photo, check, long_side)
        with self._painting:
            painting = time.perf_counter()
            painted = network.paint(to_tensor(picture))
            paint_ms = (time.perf_counter() - painting) * 1000
        out = io.BytesIO()
        # Little compression: the bytes go to this machine's browser, and level 6 costs more
        # than the painting at 2048 px.
        to_pil(painted[0]).save(out, format="PNG", compress_level=1)
        return Painted(out.getvalue(), picture.size, paint_ms, (time.perf_counter() - started) * 1000)

    def _photo(self, data: bytes, check: Callable[[bytes], Image.Image], long_side: int) -> Image.Image:
        key = (hashlib.sha256(data).hexdigest(), long_side)
        with self._lock:
            if key in self._photos:
                self._photos.move_to_end(key)
                return self._photos[key]
        image = check(data)
        scaled = resize_long_side(image, min(long_side, max(image.size)))  # never enlarged
        if min(scaled.size) < MIN_SIDE:
            raise NSTError(
                f"the photo is {scaled.width}×{scaled.height} px at that size; a style network needs "
                f"{MIN_SIDE} px on each side: give a larger size or a less narrow photo"
            )
        with self._lock:
            self._photos[key] = scaled
            while len(self._photos) > PHOTOS_KEPT:
                self._photos.popitem(last=False)
        return scaled

    def _is_export(self, path: Path) -> bool:
        """Whether ``path`` is a TorchScript export, looked at once per version of the file."""
        try:
            stat = path.stat()
        except OSError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._exports.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        export = is_torchscript(path)  # the zip's directory only
        with self._lock:
            self._exports[path] = (stamp, export)
        return export

    def _read_file(self, found: Found, load: bool = False) -> _Read:
        """The file as it is now, looked at again only when its mtime or size changed (a
        training run writes network.pt anew at each checkpoint): what it says of itself, read
        with its weights mapped, not loaded; with ``load``, its network loaded too."""
        try:
            stat = found.path.stat()
        except OSError as error:
            return _Read((0, 0), {}, error=f"{found.shown} cannot be read ({brief(error)})")
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            read = self._read.get(found.path)
            if read is None or read.stamp != stamp:
                read = self._look(found, stamp)
                self._read[found.path] = read
            if load and read.network is None and read.error is None:  # not yet, or let go since
                read.network, read.error = self._load(found)
            return read

    def _look(self, found: Found, stamp: tuple[int, int]) -> _Read:
        """What the list needs of a file: its ``about``, and whether it holds a network whose
        weights fit its settings (their names and shapes; the weights themselves stay unread)."""
        try:
            held = read_network_file(found.path, mmap=True)
            shapes = {name: tuple(weight.shape) for name, weight in held["state_dict"].items()}
            if shapes != _shapes(tuple(sorted(held["architecture"].items()))):
                raise ValueError("its weights do not fit its settings")
            about = held.get("about")
        except NSTError as error:
            return _Read(stamp, {}, error=self._said(error, found))
        except Exception as error:
            return _Read(stamp, {}, error=self._damaged(error, found))
        return _Read(stamp, dict(about) if isinstance(about, Mapping) else {})

    def _load(self, found: Found) -> tuple[Network | None, str | None]:
        try:
            network = Network.load(found.path, "cpu")
        except NSTError as error:
            return None, self._said(error, found)
        except Exception as error:
            return None, self._damaged(error, found)
        self._loaded[found.path] = network
        self._loaded.move_to_end(found.path)
        while len(self._loaded) > KEPT:  # the oldest let go; its listing stays, it is loaded again to paint
            let_go, _ = self._loaded.popitem(last=False)
            if let_go in self._read:
                self._read[let_go].network = None
        return network, None

    @staticmethod
    def _said(error: NSTError, found: Found) -> str:
        return str(error).replace(str(found.path), found.shown)  # no server paths on the page

    @staticmethod
    def _damaged(error: Exception, found: Found) -> str:
        # A damaged file: listed as unusable, with torch's line, never a 500.
        return f"{found.shown} is damaged ({brief(error)}); train it again or copy it again"


@dataclass
class Painted:
    png: bytes
    size: tuple[int, int]
    paint_ms: float  # the network's pass alone
    total_ms: float  # with reading the photo (unless kept from before), scaling and writing the PNG


@functools.lru_cache(maxsize=16)
def _shapes(architecture: tuple[tuple[str, Any], ...]) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the weights of a TransformNet of ``architecture``."""
    with torch.device("meta"):  # shapes only: no weights made
        net = TransformNet(**dict(architecture))
    return {name: tuple(weight.shape) for name, weight in net.state_dict().items()}


def _number(value: Any) -> int | None:
    """A number from a file's ``about``, or None: the file is not ours to trust with the page."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scene(side: int) -> Image.Image:
    """A small drawn landscape (sky, sun, hills, a house): edges and flat colours for a
    network's preview, the same for every network so that previews compare."""
    image = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(image)
    for y in range(side):
        t = y / side
        draw.line([(0, y), (side, y)], fill=(int(90 + 120 * t), int(150 + 70 * t), int(230 - 40 * t)))
    s = side / 128
    draw.ellipse((84 * s, 14 * s, 110 * s, 40 * s), fill=(250, 214, 90))
    draw.polygon([(0, 92 * s), (40 * s, 66 * s), (86 * s, 90 * s), (128 * s, 70 * s), (128 * s, 128 * s), (0, 128 * s)],
                 fill=(70, 130, 70))  # fmt: skip
    draw.rectangle((26 * s, 84 * s, 58 * s, 110 * s), fill=(200, 90, 60))
    draw.polygon([(22 * s, 86 * s), (42 * s, 68 * s), (62 * s, 86 * s)], fill=(110, 50, 40))
    draw.rectangle((38 * s, 96 * s, 46 * s, 110 * s), fill=(60, 40, 30))
    return image
