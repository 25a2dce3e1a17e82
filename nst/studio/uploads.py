"""Uploaded images: capped, checked by nst's own image loader, and kept under
``logs/studio/uploads/`` by a name made from their content, never from the client."""

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from PIL import Image

from nst.errors import NSTError
from nst.files import atomic_write
from nst.images import read_image

MAX_BYTES = 40 * 2**20
MAX_MEGAPIXELS = 50
_ID = re.compile(r"^[0-9a-f]{20}$")
THUMBNAIL = 256


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, data: bytes, filename: str) -> dict[str, Any]:
        """Store an uploaded image; bad input raises NSTError with the loader's one line."""
        shown = Path(filename or "upload").name[:120]
        if len(data) > MAX_BYTES:
            raise NSTError(
                f"{shown} is {len(data) / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB an upload may be"
            )
        if not data:
            raise NSTError(f"{shown} is empty")
        self.folder.mkdir(parents=True, exist_ok=True)
        upload_id = hashlib.sha256(data).hexdigest()[:20]
        suffix = Path(shown).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
        checking = (
            self.folder / f".checking-{upload_id}{suffix}"
        )  # the loader reads the format's name from it
        checking.write_bytes(data)
        try:
            image = read_image(str(checking), "image")
        except NSTError as error:
            raise NSTError(str(error).replace(str(checking), shown)) from None
        finally:
            checking.unlink(missing_ok=True)
        width, height = image.size
        if width * height > MAX_MEGAPIXELS * 10**6:
            raise NSTError(
                f"{shown} is {width}×{height} px, over the {MAX_MEGAPIXELS} megapixels an upload may be"
            )
        # Kept as PNG, upright (EXIF orientation applied), whatever format it came in.
        with atomic_write(self.folder / f"{upload_id}.png") as (out, _):
            image.save(out, format="PNG")
        info = {"id": upload_id, "name": shown, "width": width, "height": height, "time": time.time()}
        with atomic_write(self.folder / f"{upload_id}.json") as (out, _):
            out.write(json.dumps(info).encode())
        return info

    def path(self, upload_id: str) -> Path:
        """The stored image of ``upload_id``; an id that is not one raises NSTError."""
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise NSTError("no such upload")
        path = self.folder / f"{upload_id}.png"
        if not path.is_file():
            raise NSTError("no such upload")
        return path

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
            if _ID.match(str(info.get("id", ""))) and (self.folder / f"{info['id']}.png").is_file():
                infos.append(info)
        return sorted(infos, key=lambda i: i["time"], reverse=True)[:limit]

    def thumbnail(self, upload_id: str) -> Image.Image:
        with Image.open(self.path(upload_id)) as image:
            image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        return image
