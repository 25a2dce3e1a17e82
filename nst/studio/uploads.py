"""Uploaded images and short videos: capped, checked by nst's own loaders, and kept under
``logs/studio/uploads/`` by a name made from their content, never from the client."""

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from nst.errors import NSTError
from nst.files import atomic_write
from nst.images import read_image

MAX_BYTES = 40 * 2**20
# A video is painted frame by frame (seconds to minutes a frame): the studio takes short clips.
MAX_VIDEO_SECONDS = 20
MAX_VIDEO_FRAMES = 300
MAX_VIDEO_MEGAPIXELS = 2.1  # a frame of 1920 x 1080
_ID = re.compile(r"^[0-9a-f]{20}$")
THUMBNAIL = 256


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, data: bytes, filename: str) -> dict[str, Any]:
        """Store an uploaded image; bad input raises NSTError with the loader's one line."""
        shown = _shown(filename)
        _check_bytes(data, shown)
        self.folder.mkdir(parents=True, exist_ok=True)
        upload_id = hashlib.sha256(data).hexdigest()[:20]
        suffix = _suffix(shown)
        checking = (
            self.folder / f".checking-{upload_id}{suffix}"
        )  # the loader reads the format's name from it
        checking.write_bytes(data)
        try:
            if _animated(checking):  # a GIF of several frames is a video, not its first frame
                video = _video_info(checking, shown)
                if video is not None:
                    return self._keep_video(checking, upload_id, suffix or ".gif", shown, video)
            image = read_image(str(checking), "image")
        except NSTError as error:
            # An image Pillow knows that nst refuses (too large, damaged) stays refused as an
            # image: FFmpeg would read it as a video of one frame.
            video = None if _pillow_knows(checking) else _video_info(checking, shown)
            if video is None:
                raise NSTError(str(error).replace(str(checking), shown)) from None
            return self._keep_video(checking, upload_id, suffix, shown, video)
        finally:
            checking.unlink(missing_ok=True)  # (a video kept was moved away from it)
        width, height = image.size
        # Kept as PNG, upright (EXIF orientation applied), whatever format it came in.
        with atomic_write(self.folder / f"{upload_id}.png") as (out, _):
            image.save(out, format="PNG")
        info = {"id": upload_id, "name": shown, "width": width, "height": height, "time": time.time()}
        with atomic_write(self.folder / f"{upload_id}.json") as (out, _):
            out.write(json.dumps(info).encode())
        return info

    @staticmethod
    def photo(data: bytes, filename: str) -> Image.Image:
        """An uploaded photo checked as ``add`` checks an image (bytes, format, megapixels), but
        not kept: an instant style needs it only while it paints it, and writing a large photo
        as PNG would take longer than the painting. A video is refused in one line."""
        from nst.video.source import VIDEO_SUFFIXES

        shown = _shown(filename)
        _check_bytes(data, shown)
        suffix = _suffix(shown)
        if suffix in VIDEO_SUFFIXES - {".gif"}:
            raise NSTError(
                f"{shown} is a video; an instant style paints a photo (a video is painted frame by frame from 1 · Pictures)"
            )
        # nst's loader reads from a file, and names the format by its suffix in what it says.
        handle, name = tempfile.mkstemp(prefix="nst-photo-", suffix=suffix)
        checking = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            image = read_image(str(checking), "photo")
        except NSTError as error:
            raise NSTError(str(error).replace(str(checking), shown)) from None
        finally:
            checking.unlink(missing_ok=True)
        return image

    def _keep_video(
        self, checking: Path, upload_id: str, suffix: str, shown: str, video: dict[str, Any]
    ) -> dict[str, Any]:
        # Kept as it came (its container and sound); the file name is the id and its suffix.
        from nst.video.source import VIDEO_SUFFIXES

        kept = self.folder / f"{upload_id}{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
        checking.replace(kept)
        info = {
            "id": upload_id,
            "name": shown,
            "time": time.time(),
            "kind": "video",
            "file": kept.name,
            **video,
        }
        with atomic_write(self.folder / f"{upload_id}.json") as (out, _):
            out.write(json.dumps(info).encode())
        return info

    def path(self, upload_id: str) -> Path:
        """The stored image (or video) of ``upload_id``; an id that is not one raises NSTError."""
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise NSTError("no such upload")
        path = self.folder / f"{upload_id}.png"
        if path.is_file():
            return path
        kept = self.info(upload_id).get("file")
        if isinstance(kept, str) and re.fullmatch(rf"{upload_id}\.[a-z0-9]{{1,8}}", kept):
            path = self.folder / kept
            if path.is_file():
                return path
        raise NSTError("no such upload")

    def info(self, upload_id: str) -> dict[str, Any]:
        """What was noted of ``upload_id`` when it came ({} if nothing)."""
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            return {}
        try:
            info = json.loads((self.folder / f"{upload_id}.json").read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def is_video(self, upload_id: str) -> bool:
        return self.info(upload_id).get("kind") == "video"

    def name(self, upload_id: str) -> str | None:
        """The file name ``upload_id`` was uploaded as."""
        if not _ID.match(upload_id):
            return None
        try:
            return json.loads((self.folder / f"{upload_id}.json").read_text())["name"]
        except (OSError, ValueError, KeyError):
            return None

    def recent(self, limit: int = 24) -> list[dict[str, Any]]:
        infos = []
        for meta in self.folder.glob("*.json"):
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if _ID.match(str(info.get("id", ""))):
                try:
                    self.path(info["id"])
                except NSTError:
                    continue
                infos.append(info)
        return sorted(infos, key=lambda i: i["time"], reverse=True)[:limit]

    def thumbnail(self, upload_id: str) -> Image.Image:
        path = self.path(upload_id)
        if self.is_video(upload_id):
            from nst.video.source import VideoSource

            image = Image.fromarray(next(iter(VideoSource(path).frames(1))))
        else:
            with Image.open(path) as image:
                image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        return image


def _shown(filename: str) -> str:
    """The client's file name as it is said back: its last part, never used as a path."""
    return Path(filename or "upload").name[:120] or "upload"


def _suffix(shown: str) -> str:
    suffix = Path(shown).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _check_bytes(data: bytes, shown: str) -> None:
    if len(data) > MAX_BYTES:
        raise NSTError(
            f"{shown} is {len(data) / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB an upload may be"
        )
    if not data:
        raise NSTError(f"{shown} is empty")


def _animated(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError):
        return False


def _pillow_knows(path: Path) -> bool:
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def _video_info(path: Path, shown: str) -> dict[str, Any] | None:
    """A video's frame count, rate and size, checked against the studio's caps (one line when
    over them); None if the file is not a video either."""
    from nst.video.source import VIDEO_SUFFIXES, VideoSource

    try:
        source = VideoSource(path)
    except NSTError as error:
        # FFmpeg opens nearly anything as some stream: a file is only taken for a broken video
        # if it is named as a video.
        if "not a video" in str(error) or Path(shown).suffix.lower() not in VIDEO_SUFFIXES:
            return None
        raise NSTError(str(error).replace(str(path), shown)) from None
    width, height = source.size
    if width * height > MAX_VIDEO_MEGAPIXELS * 10**6:
        raise NSTError(
            f"{shown} is {width}×{height} px a frame, over the {MAX_VIDEO_MEGAPIXELS} megapixels (1920×1080) a video upload may be"
        )
    frames = source.count
    if frames is None:  # the container does not say: counted, up to one past the cap
        frames = sum(1 for _ in source.frames(MAX_VIDEO_FRAMES + 1))
    seconds = frames / source.fps
    if seconds > MAX_VIDEO_SECONDS or frames > MAX_VIDEO_FRAMES:
        raise NSTError(
            f"{shown} is {float(seconds):.1f} s ({frames} frames), over the {MAX_VIDEO_SECONDS} s and "
            f"{MAX_VIDEO_FRAMES} frames a video upload may be; cut it shorter, or run it with python cli.py video"
        )
    if frames == 0:
        raise NSTError(f"{shown} has no frames")
    return {
        "width": width,
        "height": height,
        "frames": frames,
        "fps": float(source.fps),
        "seconds": float(seconds),
    }
