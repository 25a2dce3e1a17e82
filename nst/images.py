"""Reading, resizing and writing images as [1, 3, H, W] float tensors in [0, 1]."""

import functools
import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from nst import download
from nst.errors import NSTError, brief
from nst.files import atomic_write

# Larger than any photo or scan style transfer needs (a 12000 x 8000 px scan is 96 MP), and
# checked from the header, so a decompression bomb is refused before it takes the memory.
MAX_PIXELS = 100 * 10**6


def read_image(source: str, role: str = "image") -> Image.Image:
    """Open a local path or URL as an RGB PIL image, upright as its EXIF orientation says."""
    path = download.fetch(source) if download.is_url(source) else Path(source)
    if not path.exists():
        raise NSTError(f"{role} {source} does not exist; check the path")
    if not path.is_file():
        raise NSTError(f"{role} {source} is not a file; give the path of an image")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 megapixels; nst's own limit, checked next, is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_pixel_count(opened, role, source)  # from the header, before decoding
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:  # Pillow's own limit, above nst's, refused it first
        raise NSTError(
            f"{role} {source} is over the {MAX_PIXELS // 10**6} megapixels nst decodes; shrink it first"
        ) from error
    except UnidentifiedImageError as error:
        raise NSTError(f"{role} {source} {_why_unreadable(path)}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise NSTError(
            f"{role} {source} cannot be decoded ({brief(error)}); re-save or replace the file"
        ) from error
    return _to_rgb(_to_srgb(image))


def from_memory(image: Image.Image, role: str = "image") -> Image.Image:
    """An image given as a PIL image, made ready as :func:`read_image` makes a file's:
    upright, converted to sRGB, RGB."""
    _check_pixel_count(image, role, "given in memory")
    return _to_rgb(_to_srgb(ImageOps.exif_transpose(image)))


def _to_srgb(image: Image.Image) -> Image.Image:
    """Pixels described by an embedded ICC profile (Adobe RGB, Display P3, a CMYK press, Lab)
    are converted to sRGB, the space the network was trained in and results are written in."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image  # untagged: taken to be sRGB already
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
    try:
        embedded = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, embedded, _srgb(), outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):  # a profile Little CMS cannot use: as if untagged
        return image


def _why_unreadable(path: Path) -> str:
    if path.stat().st_size == 0:
        return "is an empty file; replace it with an image"
    suffix = path.suffix.lower()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    if suffix and suffix not in readable:
        return f"is in a format nst cannot read ({suffix}); convert it to PNG, JPEG, WebP or TIFF"
    return (
        "is not an image (its contents match no format Pillow reads); replace it or re-save it as PNG or JPEG"
    )


def _check_pixel_count(image: Image.Image, role: str, source: str) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise NSTError(
            f"{role} {source} is {width}×{height} px, over the {MAX_PIXELS // 10**6} megapixels nst decodes; "
            "shrink it first"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):  # 16- or 32-bit grey: Pillow's RGB conversion would clip it
        image = _high_bit_depth_to_8bit(image)
    # Transparent pixels become white, as on a page, rather than whatever colour they hide.
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) <= 65535 else values.max()
    return Image.fromarray(np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) of an image of ``size`` scaled so its longer side is ``long_side``."""
    scale = long_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Scale so the longer side is ``long_side`` pixels, keeping the aspect ratio."""
    size = long_side_size(image.size, long_side)
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def check_painted_size(size: tuple[int, int], made_by: str, fix: str) -> None:
    """Refuse to make an image of ``size`` = (width, height) over MAX_PIXELS, before anything is
    made at that size: Pillow's resize to a size a mistyped setting asks for (10**6 px a side)
    takes the machine's memory and ends in a bare MemoryError (or worse), before the run's memory estimate
    (nst.numerics.memory) could refuse it. ``made_by`` says what makes the image ("data.size 9000
    makes the result"), ``fix`` what to change."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise NSTError(
            f"{made_by} {width}×{height} px, over the {MAX_PIXELS // 10**6} megapixels nst paints; {fix}"
        )


def largest_long_side(size: tuple[int, int]) -> int:
    """The longest side an image of ``size``'s aspect ratio can be scaled to within MAX_PIXELS."""
    side = math.isqrt(MAX_PIXELS * max(size) // min(size))
    while side > 1 and math.prod(long_side_size(size, side)) > MAX_PIXELS:  # rounding: a step or two
        side -= 1
    return side


def to_tensor(image: Image.Image) -> Tensor:
    return (pil_to_tensor(image).float() / 255).unsqueeze(0).contiguous()


def load_image(source: str, long_side: int, role: str = "image") -> Tensor:
    """Read ``source`` (path or URL) and return it as [1, 3, H, W] with the given long side."""
    return to_tensor(resize_long_side(read_image(source, role), long_side))


def resize_tensor(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a [B, 3, H, W] image tensor to ``size`` = (H, W), staying in [0, 1]."""
    if tuple(image.shape[-2:]) == size:
        return image
    return torch.nn.functional.interpolate(image, size=size, mode="bicubic", antialias=True).clamp(0, 1)


# What a result can be written as, by extension. TIFF keeps 16 bits per channel.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_profile() -> bytes:
    """The sRGB ICC profile every result is tagged with: its pixels are sRGB, and saying so
    keeps colour-managed viewers and printers from guessing."""
    profile = bytearray(_srgb().tobytes())
    # Little CMS stamps a new profile with the time it was made; without the stamp (and the
    # checksum over it) the same image gives the same file in every run, which resumes rely on.
    profile[24:36] = bytes(12)  # ICC header: creation date and time
    profile[84:100] = bytes(16)  # ICC header: profile ID, zero meaning "not computed"
    return bytes(profile)


def save_image(image: Tensor, path: str | os.PathLike, quality: int = 95) -> None:
    """Write a [3, H, W] or [1, 3, H, W] image in [0, 1] atomically, tagged sRGB, in the format
    of the extension: PNG (8 bit), JPEG and WebP (``quality``; WebP 100 is lossless), TIFF (16 bit)."""
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise NSTError(f"{path} has an extension nst does not write; use .png, .jpg, .webp or .tif")
    values = image.detach().float().clamp(0, 1).cpu().squeeze(0)
    with atomic_write(path) as (out, tmp):
        if fmt == "TIFF":  # Pillow writes no 16-bit RGB; tifffile does (by path: it wants a named file)
            import tifffile

            pixels = values.mul(65535).round().to(torch.int32).permute(1, 2, 0).numpy().astype(np.uint16)
            tifffile.imwrite(tmp, pixels, photometric="rgb", iccprofile=srgb_profile())
            with open(tmp, "rb") as written:  # on disk before the rename, as atomic_write does for `out`
                os.fsync(written.fileno())
            return
        options: dict = {"icc_profile": srgb_profile()}
        if fmt == "JPEG":
            options |= {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
        elif fmt == "WEBP":
            options |= {"quality": quality, "lossless": quality == 100}
        to_pil(values).save(out, format=fmt, **options)


def to_pil(image: Tensor) -> Image.Image:
    """A [3, H, W] or [1, 3, H, W] image in [0, 1] as an 8-bit RGB PIL image (as PNGs are written)."""
    values = image.detach().float().clamp(0, 1).cpu().squeeze(0)
    return to_pil_image(values.mul(255).round().to(torch.uint8))
