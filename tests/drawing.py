"""Images the tests and the benchmark draw for themselves (no files from outside)."""

import math

from PIL import Image, ImageDraw


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
