"""Paint photos, folders of photos or a video with a trained style network (the network.pt that
nst train writes), each picture in one pass::

    nst apply --network logs/train/version_0/network.pt --input photo.jpg --output painted.jpg
    nst apply --network network.pt --input photos/ --output painted/      (or "photos/*.jpg", or a.jpg b.png)
    nst apply --network network.pt --input clip.mp4 --output painted.mp4

The network file holds its settings: no config is needed. Photos of one size are painted
together, up to ``--batch`` at a time and up to 8 megapixels together (a larger photo alone); a
video's frames are read, painted and written a few at a time, never all held at once, and its
sound is copied. Each file appears whole or not at all, and Ctrl-C ends the run after the
pictures in progress, keeping those finished.
"""

import argparse
import contextlib
import glob
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nst.errors import NSTError, OneLineParser, brief
from nst.images import (
    MAX_PIXELS,
    OUTPUT_FORMATS,
    check_painted_size,
    read_image,
    resize_long_side,
    resize_tensor,
    save_image,
    to_tensor,
)
from nst.run.stopping import RunInterrupted, Stop
from nst.train.data import PHOTO_SUFFIXES
from nst.train.network import MIN_SIDE, Network, check_side
from nst.video.source import VIDEO_SUFFIXES, VideoSource
from nst.video.writer import write_video

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # as --help and the errors name them
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# A batch holds at most this many pixels of input, a larger picture alone: the network's first
# layers hold 32 to 64 float channels per pixel, so 8 megapixels take a few GB at most, where 8
# full-size camera photos would take tens.
MAX_BATCH_PIXELS = 8 * 10**6
_FALLBACK_SUFFIX = ".png"  # for photos in a format nst reads but does not write (.bmp)
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations of a camera held on its side: width and height swap
T = TypeVar("T")


@dataclass
class Applied:
    """What a run of :func:`apply_network` did: ``output`` (the file, or the folder of many
    photos), how many pictures (photos or frames) it painted of how many (None: a video that
    does not say), and the signal that stopped it early (None: it finished)."""

    output: Path
    done: int
    total: int | None
    unit: str  # "photo" or "frame"
    stopped: int | None = None


@dataclass
class _Photo:
    source: Path
    target: Path
    size: tuple[int, int]  # (width, height) as painted


def pick_device(name: str = "auto") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` (the N-th GPU), ``mps`` or ``auto``: CUDA if there is a
    GPU, else Apple's MPS if there is one, else the CPU. One line for a form nst does not know
    or a device this machine does not have."""
    name = str(name).strip().lower()
    if not _DEVICE.match(name):
        raise NSTError(f"--device {name} is not a device nst knows; use one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name.startswith("cuda") and not cuda) or (name == "mps" and not mps):
        raise NSTError(f"--device {name}: no such device is available here; use --device auto or cpu")
    device = torch.device(name)
    if device.index is not None and device.index >= (count := torch.cuda.device_count()):
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise NSTError(f"--device {name}: this machine has {count} CUDA device{'s' * (count != 1)} ({have})")
    return device


def apply_network(
    network: str | Path | Network,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    device: str = "auto",
    size: int | None = None,
    batch: int = 8,
    overwrite: bool = False,
    stop: Stop | None = None,
    bar: bool = True,
) -> Applied:
    """Paint ``inputs`` with ``network`` (a network.pt, or a loaded Network) into ``output``.

    Args:
        inputs: One photo (``output`` is then an image file, or a folder to put it in); a video
            file (``output`` is an .mp4); or folders (searched recursively), globs and photo
            files (``output`` is a folder, created, where each painting keeps its photo's path
            below the folder given, or below the photos' common folder, its name and format;
            formats nst does not write, such as .bmp, become .png).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        size: Each photo or frame scaled to this long side first (None: as it is). A video's
            sides are made even (H.264 needs that): scaled, or without ``size``, its last odd
            row or column left out.
        batch: At most this many pictures of one size painted together, and at most
            ``MAX_BATCH_PIXELS`` of them (a larger picture is painted alone).
        overwrite: Replace existing outputs; otherwise they are refused before anything is painted.
        stop: A request made here (Ctrl-C, with ``stop.signals()``) ends the run after the
            pictures in progress; those finished are kept (a video as far as it was painted).
        bar: Show a progress bar on stderr.

    Raises:
        NSTError: in one line, for bad input; a run that wrote nothing leaves nothing behind.
    """
    if batch < 1:
        raise NSTError(f"--batch must be at least 1, got {batch}")
    if size is not None and size < MIN_SIDE:
        raise NSTError(
            f"--size must be at least {MIN_SIDE} px (the smallest side a network paints), got {size}"
        )
    given = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(i) for i in inputs]
    if not given:
        raise NSTError("give the photos, folders or video to paint as --input")
    output = Path(output)
    where = pick_device(device)
    if not isinstance(network, Network):
        network = Network.load(network)  # its one-line refusals come before anything is read
    stop = stop or Stop()
    if len(given) == 1 and given[0].is_file() and given[0].suffix.lower() in VIDEO_SUFFIXES:
        work = _Video(given[0], output, size, overwrite)
    else:
        work = _Photos(given, output, size, overwrite)
    network.to(where)
    made = _missing_folder(work.folder)
    try:
        with stop.signals(), stop.waiting():  # waiting: a first Ctrl-C is noted, not raised
            result = work.paint(network, batch, stop, bar)
    except RunInterrupted as interrupted:  # Ctrl-C again: at once, without the pictures in progress
        _remove_empty(made)
        raise stopped(Applied(work.output, work.kept, work.total, work.unit, interrupted.signum)) from None
    except BaseException:
        _remove_empty(made)
        raise
    if result.done == 0:
        _remove_empty(made)
    return result


def stopped(result: Applied) -> RunInterrupted:
    """What the command line says of a run that was stopped (``result.stopped`` set): what it kept."""
    of = f" of {result.total}" if result.total else ""
    kept = f"{result.done}{of} {result.unit}s painted, in {result.output}" if result.done else "nothing"
    interrupted = RunInterrupted(result.stopped or 0, kept)
    interrupted.resumable = False  # (no --ckpt_path: the same command with --overwrite paints all again)
    return interrupted


class _Photos:
    unit = "photo"

    def __init__(self, given: list[Path], output: Path, size: int | None, overwrite: bool) -> None:
        one = len(given) == 1 and given[0].is_file()
        if one and output.is_dir():
            output = output / _target_name(given[0].name)
        if one and output.suffix.lower() not in OUTPUT_FORMATS:
            raise NSTError(
                f"--output {output}: give an image file for one photo ({', '.join(sorted(OUTPUT_FORMATS))}), "
                "or an existing folder to put it in"
            )
        if not one and output.is_file():
            raise NSTError(f"--output {output} is a file; give a folder for the paintings of several photos")
        if not one and not output.is_dir() and output.suffix.lower() in OUTPUT_FORMATS:
            raise NSTError(
                f"--output {output} names an image file, but several photos, a folder or a glob are painted "
                "into a folder; give a folder as --output, or one photo as --input"
            )
        self.output, self.folder = output, output.parent if one else output
        sources = [(given[0], Path(given[0].name))] if one else _list_photos(given, output)
        self.photos = [
            _Photo(source, output if one else output / rel, _painted_size(source, size))
            for source, rel in sources
        ]
        self.size, self.total, self.kept = size, len(self.photos), 0
        _check_targets([p.target for p in self.photos], [p.source for p in self.photos], overwrite)

    def paint(self, network: Network, batch: int, stop: Stop, bar: bool) -> Applied:
        with _bar(self.total, self.unit, bar) as progress:
            for group in _batches(self.photos, batch, MAX_BATCH_PIXELS):
                if stop.requested is not None:
                    return Applied(self.output, self.kept, self.total, self.unit, stop.requested)
                pictures = [self._read(photo) for photo in group]
                if len({tuple(p.shape) for p in pictures}) > 1:  # a file changed since it was measured
                    painted = [_painted(network, p)[0] for p in pictures]
                else:
                    painted = list(_painted(network, torch.cat(pictures)))
                for photo, picture in zip(group, painted, strict=True):
                    save_image(picture, photo.target)
                    self.kept += 1
                    progress.update(1)
        return Applied(self.output, self.kept, self.total, self.unit)

    def _read(self, photo: _Photo) -> torch.Tensor:
        image = read_image(str(photo.source), "photo")
        return to_tensor(resize_long_side(image, self.size) if self.size else image)


class _Video:
    unit = "frame"
    kept = 0  # the video is written whole or not at all

    def __init__(self, source: Path, output: Path, size: int | None, overwrite: bool) -> None:
        if output.is_dir():
            output = output / f"{source.stem}.mp4"
        if output.suffix.lower() != ".mp4":
            raise NSTError(
                f"--output {output}: a video is written as an .mp4 file; give a path ending in .mp4"
            )
        self.source = _open_video(source)
        self.output, self.folder, self.total = output, output.parent, self.source.count
        width, height = self.source.size
        if size is not None:
            scale = size / max(width, height)
            width, height = round(width * scale), round(height * scale)
            check_painted_size((width, height), f"--size {size} paints {source} at", "lower --size")
        self.resize = size is not None
        self.size = (width - width % 2, height - height % 2)  # H.264 in yuv420p takes even sides only
        check_side(self.size[::-1], _as_painted(source, size))
        _check_targets([output], [source], overwrite)

    def paint(self, network: Network, batch: int, stop: Stop, bar: bool) -> Applied:
        done, cut = 0, False
        width, height = self.size
        source_width, source_height = self.source.size  # the frames are read at it, then scaled
        batch = _fitting(batch, max(width * height, source_width * source_height), MAX_BATCH_PIXELS)

        def frames(progress: Any) -> Iterator[np.ndarray]:
            nonlocal done, cut
            for chunk in _chunks(self.source.frames(), batch):
                if stop.requested is not None:  # the writer ends the video with the frames before
                    cut = True
                    return
                pictures = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div(255)
                if self.resize:
                    pictures = resize_tensor(pictures, (height, width))
                painted = _painted(network, pictures[..., :height, :width])
                for frame in painted.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
                    yield frame
                    done += 1
                    progress.update(1)

        with _bar(self.total, self.unit, bar) as progress:
            audio = self.source.path if self.source.audio else None
            try:
                write_video(self.output, frames(progress), self.source.fps, audio_from=audio)
            except NSTError:
                if not (cut and done == 0):
                    raise
                # Stopped before the first frame: write_video refuses to write no frames.
        if cut:
            return Applied(self.output, done, self.total, self.unit, stop.requested)
        return Applied(self.output, done, done, self.unit)


def _painted(network: Network, pictures: torch.Tensor) -> torch.Tensor:
    try:
        return network.paint(pictures).cpu()
    except torch.OutOfMemoryError as error:
        n, _, h, w = pictures.shape
        raise NSTError(
            f"the device ran out of memory painting {n} picture(s) of {w}×{h} px at once ({brief(error)}); "
            "lower --batch or --size, or use --device cpu"
        ) from error


def _list_photos(given: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """The photos in ``given`` (folders, globs, files), each with its path below the folder given
    (or the files' common folder), sorted; none of those inside ``output``."""
    found: dict[Path, Path] = {}
    loose: list[Path] = []
    for item in given:
        if item.is_dir():
            if _same_file(item, output):  # its photos are all "inside the output", and would be painted over
                raise NSTError(
                    f"--output {output} is the folder of the photos (--input {item}); give another folder"
                )
            for file in sorted(item.rglob("*")):
                if file.suffix.lower() in PHOTO_SUFFIXES and file.is_file() and not _inside(file, output):
                    found.setdefault(file, file.relative_to(item))
        elif item.is_file():
            if item.suffix.lower() in VIDEO_SUFFIXES:
                raise NSTError(
                    f"{item} is a video; paint a video on its own (--input {item} --output OUT.mp4)"
                )
            loose.append(item)
        elif any(c in str(item) for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=True))]
            loose += [m for m in matches if m.is_file() and m.suffix.lower() in PHOTO_SUFFIXES]
        else:
            raise NSTError(
                f"--input {item} does not exist; give a photo, a folder of photos, a glob or a video file"
            )
    if loose:
        root = Path(os.path.commonpath([p.parent.absolute() for p in loose]))
        for file in loose:
            if not _inside(file, output):
                found.setdefault(file, file.absolute().relative_to(root))
    if not found:
        raise NSTError(
            f"no photos in {' '.join(map(str, given))} (looked for {', '.join(sorted(PHOTO_SUFFIXES))}); "
            "give photos, folders of photos or a glob"
        )
    return [(file, rel.with_name(_target_name(rel.name))) for file, rel in found.items()]


def _target_name(name: str) -> str:
    path = Path(name)
    return name if path.suffix.lower() in OUTPUT_FORMATS else path.stem + _FALLBACK_SUFFIX


def _inside(file: Path, folder: Path) -> bool:
    return folder.resolve() in file.resolve().parents


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: through ``..``, symbolic links (of the file or a
    folder on the way) and hard links alike."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return False


def _open_video(source: Path) -> VideoSource:
    """``source`` opened, its refusals told in nst apply's terms: VideoSource's messages name
    the options of nst video and nst fit (data.content, --video.fps), which nst apply lacks."""
    try:
        return VideoSource(source)
    except NSTError as error:
        message = str(error)
        for theirs, ours in _VIDEO_TERMS:
            message = message.replace(theirs, ours)
        raise NSTError(message) from error


_VIDEO_TERMS = (
    ("set one with --video.fps, e.g. 25", "give it one, e.g. ffmpeg -i IN -r 25 OUT.mp4, and paint that"),
    ("--video.fps", "a frame rate"),
    ("video.fps", "the frame rate"),
    ("data.content", "--input"),
)


def _painted_size(photo: Path, long_side: int | None) -> tuple[int, int]:
    """The size ``photo`` is painted at, from its header: upright, as read_image turns it."""
    try:
        with Image.open(photo) as opened:
            width, height = opened.size
            if opened.getexif().get(0x0112, 1) in _TRANSPOSED:
                width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        read_image(str(photo), "photo")  # says in one line why it cannot be read
        raise
    if width * height > MAX_PIXELS:
        raise NSTError(
            f"photo {photo} is {width}×{height} px, over the {MAX_PIXELS // 10**6} megapixels nst decodes; "
            "shrink it first or leave it out"
        )
    if long_side is not None:  # as nst.images.resize_long_side scales it
        scale = long_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        check_painted_size((width, height), f"--size {long_side} paints {photo} at", "lower --size")
    check_side((height, width), _as_painted(photo, long_side))
    return width, height


def _as_painted(source: Path, long_side: int | None) -> str:
    """The picture, as a too-small one is named: with the --size that scaled it."""
    return f"{source} at --size {long_side}" if long_side is not None else str(source)


def _check_targets(targets: list[Path], sources: list[Path], overwrite: bool) -> None:
    # All checked before the first picture is painted: a run refused halfway would leave some
    # outputs replaced and others not.
    seen: dict[Path, Path] = {}
    for target, source in zip(targets, sources, strict=True):
        key = target.resolve()  # photos/../photos/a.png and a folder's symbolic link as one
        if _same_file(target, source):
            raise NSTError(f"--output would write over the photo {source} itself; give another --output")
        if key in seen:
            raise NSTError(
                f"{seen[key]} and {source} would both be painted to {target}; rename one or give them separately"
            )
        seen[key] = source
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise NSTError(f"{existing[0]} exists{more}; choose another --output or pass --overwrite")
    if overwrite and (folder := next((t for t in existing if t.is_dir()), None)) is not None:
        raise NSTError(f"{folder} is a folder; --overwrite replaces files only, give another --output")


def _batches(photos: list[_Photo], batch: int, pixels: int) -> Iterator[list[_Photo]]:
    """The photos in groups of one size, in the order each size first comes: at most ``batch``
    each, and at most ``pixels`` pixels (a larger photo alone)."""
    by_size: dict[tuple[int, int], list[_Photo]] = {}
    for photo in photos:
        by_size.setdefault(photo.size, []).append(photo)
    for (width, height), group in by_size.items():
        yield from _chunks(group, _fitting(batch, width * height, pixels))


def _fitting(batch: int, each: int, pixels: int) -> int:
    """How many pictures of ``each`` pixels go in one batch: at most ``batch``, and at most
    ``pixels`` of them together, but always one."""
    return max(1, min(batch, pixels // max(each, 1)))


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bar(total: int | None, unit: str, show: bool) -> Any:  # a tqdm bar
    from tqdm.auto import tqdm

    # A terminal redraws the line in place; a log file (or a pipe) gets every redraw as text.
    every = 0.2 if sys.stderr.isatty() else 10.0
    return tqdm(
        total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=every, disable=not show
    )


def _missing_folder(folder: Path) -> Path | None:
    """The outermost folder on the way to ``folder`` that does not exist yet (None: all do)."""
    missing = None
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing = path
    return missing


def _remove_empty(folder: Path | None) -> None:
    """Remove ``folder`` (one this run made) and the folders in it, where they hold no file."""
    if folder is None or not folder.is_dir():
        return
    for inner, _, _ in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):  # it holds a finished painting
            Path(inner).rmdir()


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def main(args: list[str] | None = None, stop: Stop | None = None) -> None:
    """``nst apply``: ``args`` as on the command line; ``stop`` takes Ctrl-C (the CLI's)."""
    parser = OneLineParser(
        prog="nst apply",
        description=" ".join(__doc__.split("::")[0].split()),
        epilog=(
            "One photo file gives one image file as --output (its format from its extension), or goes into "
            "--output if that is a folder. Folders (searched recursively), globs and several photos give a "
            "folder: each painting keeps its photo's path below the folder given (or the photos' common "
            "folder), its name and its format (.bmp becomes .png). A video file gives an .mp4 with the "
            "video's sound and even sides (H.264 needs them); each frame is painted on its own (no tie between "
            "frames: nst video paints a video that does not flicker)."
        ),
    )
    parser.add_argument("--network", required=True, help="the network.pt of an nst train run")
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="a photo, a folder of photos, a glob, several photos, or a video",
    )
    parser.add_argument("--output", required=True, help="an image file, a folder, or an .mp4 (see below)")
    parser.add_argument(
        "--device", default="auto", help="auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps (auto)"
    )
    parser.add_argument("--size", type=_at_least(MIN_SIDE), help="scale each picture to this long side first")
    parser.add_argument(
        "--batch",
        type=_at_least(1),
        default=8,
        help=(
            f"at most this many pictures of one size painted at once (8), and at most "
            f"{MAX_BATCH_PIXELS // 10**6} megapixels of them: a larger picture is painted alone"
        ),
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    options = parser.parse_args(args)
    result = apply_network(
        options.network,
        options.input,
        options.output,
        device=options.device,
        size=options.size,
        batch=options.batch,
        overwrite=options.overwrite,
        stop=stop,
    )
    if result.stopped is not None:
        raise stopped(result)
    print(f"Wrote {result.output} ({result.done} {result.unit}{'s' if result.done != 1 else ''})")


if __name__ == "__main__":
    from nst.cli import main as cli

    cli(["apply", *sys.argv[1:]])
