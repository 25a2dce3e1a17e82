"""Images the tests and the benchmark draw for themselves (no files from outside)."""

import math
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import numpy as np


def draw_content(width: int = 64, height: int = 48) -> Image.Image:
    """A smooth gradient with a few shapes: structure for the content loss to keep."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (40 + 170 * x // width, 40 + 170 * y // height, 128)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height * 3 // 4), fill=(220, 200, 60))
    draw.rectangle((width * 5 // 8, height // 3, width * 7 // 8, height * 2 // 3), fill=(50, 60, 190))
    return image


def draw_style(size: int = 64) -> Image.Image:
    """Coloured diagonal stripes: a texture whose Gram matrices differ from the content's."""
    image = Image.new("RGB", (size, size))
    pixels = image.load()
    for y in range(size):
        for x in range(size):
            t = math.sin((x + y) * 0.6)
            pixels[x, y] = (int(128 + 90 * t), int(128 - 90 * t), 60 + 140 * (x % 8 < 4))
    return image


def draw_regions(size: int = 64) -> dict[str, Image.Image]:
    """A photo and a painting of two regions each, with label images (red: left / top, blue:
    right / bottom). The painting's regions are two textures of different colours: warm
    stripes above, cool checks below, so that a result's colours tell which style a region took."""
    photo = draw_content(size, size)
    photo_labels = Image.new("RGB", (size, size), (0, 0, 255))
    ImageDraw.Draw(photo_labels).rectangle((0, 0, size // 2 - 1, size - 1), fill=(255, 0, 0))
    painting = Image.new("RGB", (size, size))
    pixels = painting.load()
    for y in range(size):
        for x in range(size):
            if y < size // 2:  # warm diagonal stripes
                t = math.sin((x + y) * 0.8)
                pixels[x, y] = (int(200 + 50 * t), int(90 + 60 * t), 30)
            else:  # cool checks
                pixels[x, y] = (20, 90, 230) if (x // 4 + y // 4) % 2 else (40, 200, 210)
    painting_labels = Image.new("RGB", (size, size), (0, 0, 255))
    ImageDraw.Draw(painting_labels).rectangle((0, 0, size - 1, size // 2 - 1), fill=(255, 0, 0))
    return {
        "photo": photo,
        "photo_labels": photo_labels,
        "painting": painting,
        "painting_labels": painting_labels,
    }


def scene_background(x: "np.ndarray", y: "np.ndarray") -> "np.ndarray":
    """[..., 3] in [0, 1] at the points (x, y): a texture with detail at several scales everywhere (optical flow needs something to follow)."""
    import numpy as np

    r = 0.5 + 0.25 * np.sin(0.31 * x + 0.17 * y) + 0.2 * np.sin(0.11 * x - 0.23 * y + 1.0)
    g = 0.5 + 0.25 * np.sin(0.19 * x - 0.29 * y + 2.0) + 0.2 * np.cos(0.07 * x + 0.13 * y)
    b = 0.5 + 0.3 * np.cos(0.23 * x + 0.27 * y + 0.5) * np.sin(0.05 * y + 0.09 * x)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


def draw_clip(
    frames: int = 6, width: int = 96, height: int = 64, shift: tuple[int, int] = (2, 1), box: int = 20
):
    """A textured scene moving by ``shift`` pixels a frame, with a textured square standing still
    in front of it, which uncovers background as the scene moves past it. Returns the frames
    ([H, W, 3] uint8) and the square's (left, top, right, bottom), exclusive at the right and bottom."""
    import numpy as np

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    left, top = width // 2 - box // 2, height // 2 - box // 2
    square = (left, top, left + box, top + box)
    out = []
    for t in range(frames):
        image = scene_background(xs - t * shift[0], ys - t * shift[1])
        inside = (xs >= left) & (xs < left + box) & (ys >= top) & (ys < top + box)
        check = 0.5 + 0.4 * np.sin(0.9 * xs) * np.sin(0.7 * ys)
        image[inside] = np.stack([check, 1 - check, 0.5 * check], axis=-1)[inside]
        out.append((image * 255 + 0.5).astype(np.uint8))
    return out, square


def write_clip(path: "str | Path", frames: "list[np.ndarray]", fps: int = 12, audio: bool = False) -> None:
    """``frames`` as an H.264 file (nearly lossless: flow tests read it back), with a tone as
    its sound if ``audio``."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.pix_fmt, video.options = "yuv420p", {"crf": "4"}
        video.height, video.width = frames[0].shape[:2]
        sound = container.add_stream("aac", rate=44100) if audio else None
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            seconds = Fraction(len(frames), fps)
            samples = int(44100 * seconds)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 44100)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[:, start : start + 1024].copy(), format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 44100, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
