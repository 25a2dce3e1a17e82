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
