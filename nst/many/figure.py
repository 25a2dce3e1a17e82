"""Figures of a sweep: the grid of results with labels and captions, and the loss curves."""

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nst.files import atomic_write

PAD = 8
THUMBNAIL = 160  # largest side of the content and style images beside a grid
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GREY = (90, 90, 90)


@dataclass
class Grid:
    """What a grid figure shows. ``cells[r][c]`` is a result (or None for a cell not run)."""

    cells: list[list[Image.Image | None]]
    captions: list[list[list[str]]]  # lines under each cell
    row_labels: list[str]
    column_labels: list[str]
    row_images: list[Image.Image | None] | None = None  # e.g. each row's content image, left of the row
    column_images: list[Image.Image | None] | None = None  # e.g. each column's style image, above it
    header: list[tuple[str, Image.Image]] = field(default_factory=list)  # images every cell shares
    title: str = ""


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text or " ", font=font)
    return right - left, bottom - top


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def draw_grid(grid: Grid) -> tuple[Image.Image, list[list[tuple[int, int, int, int] | None]]]:
    """Lay the grid out; returns the figure and each cell's box (left, top, right, bottom).

    Results are pasted at their own size (never rescaled), so a figure cell is the run's
    ``final.png`` pixel for pixel.
    """
    font, small = _font(15), _font(12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    present = [image for row in grid.cells for image in row if image is not None]
    cell_w = max((image.width for image in present), default=64)
    cell_h = max((image.height for image in present), default=64)
    thumb = min(cell_w, cell_h, THUMBNAIL)
    line_h = _text_size(measure, "Ag", small)[1] + 3
    caption_h = line_h * max((len(c) for row in grid.captions for c in row), default=0)
    label_w = max((_text_size(measure, t, font)[0] for t in grid.row_labels), default=0)
    label_h = _text_size(measure, "Ag", font)[1]
    # A column is as wide as its widest result, caption or label.
    texts = [(line, small) for row in grid.captions for c in row for line in c]
    texts += [(label, font) for label in grid.column_labels]
    column_w = max([cell_w, *(_text_size(measure, t, f)[0] for t, f in texts)])

    header_h = 0
    if grid.title or grid.header:
        header_h = PAD + label_h + (PAD + thumb + line_h if grid.header else 0)
    left = PAD + label_w + PAD + (thumb + PAD if grid.row_images else 0)
    top = header_h + PAD + label_h + PAD + (thumb + PAD if grid.column_images else 0)
    rows, columns = len(grid.cells), len(grid.cells[0])
    step_x, step_y = column_w + PAD, cell_h + caption_h + PAD
    header_w = PAD + _text_size(measure, grid.title, font)[0] + PAD
    header_w = max(header_w, PAD + len(grid.header) * (thumb + 2 * PAD))
    figure = Image.new("RGB", (max(left + columns * step_x, header_w), top + rows * step_y), BACKGROUND)
    draw = ImageDraw.Draw(figure)

    if grid.title:
        draw.text((PAD, PAD), grid.title, fill=INK, font=font)
    x = PAD
    for name, image in grid.header:
        shown = _fit(image, (thumb, thumb))
        figure.paste(shown, (x, PAD + label_h + PAD))
        draw.text((x, PAD + label_h + PAD + thumb + 2), name, fill=GREY, font=small)
        x += max(shown.width, _text_size(measure, name, small)[0]) + 2 * PAD

    label_y = header_h + PAD
    for c, label in enumerate(grid.column_labels):
        x = left + c * step_x
        draw.text((x, label_y), label, fill=INK, font=font)
        if grid.column_images and grid.column_images[c] is not None:  # None: a run without that image
            figure.paste(_fit(grid.column_images[c], (cell_w, thumb)), (x, label_y + label_h + PAD))

    boxes: list[list[tuple[int, int, int, int] | None]] = []
    for r, row in enumerate(grid.cells):
        y = top + r * step_y
        draw.text((PAD, y + (cell_h - label_h) // 2), grid.row_labels[r], fill=INK, font=font)
        if grid.row_images and grid.row_images[r] is not None:
            figure.paste(_fit(grid.row_images[r], (thumb, cell_h)), (PAD + label_w + PAD, y))
        boxes.append([])
        for c, image in enumerate(row):
            x = left + c * step_x
            if image is None:
                boxes[-1].append(None)
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), outline=GREY)
            else:
                box = (x, y, x + image.width, y + image.height)
                figure.paste(image.convert("RGB"), box[:2])
                boxes[-1].append(box)
            for i, line in enumerate(grid.captions[r][c]):
                draw.text((x, y + cell_h + 2 + i * line_h), line, fill=GREY, font=small)
    return figure, boxes


def draw_contact_sheet(
    items: list[tuple[str, Image.Image | None]], max_side: int
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Named thumbnails in reading order, in as square a sheet as fits ``max_side``: a batch
    too large to show each result at its own size. Returns the sheet and each item's box."""
    small = _font(11)
    line_h = _text_size(ImageDraw.Draw(Image.new("RGB", (1, 1))), "Ag", small)[1] + 4
    columns = max(1, math.ceil(math.sqrt(len(items))))
    rows = math.ceil(len(items) / columns)
    thumb = max(
        16, min(THUMBNAIL, (max_side - PAD) // columns - PAD, (max_side - PAD) // rows - PAD - line_h)
    )
    sheet = Image.new("RGB", (PAD + columns * (thumb + PAD), PAD + rows * (thumb + line_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    boxes = []
    for i, (name, image) in enumerate(items):
        x, y = PAD + i % columns * (thumb + PAD), PAD + i // columns * (thumb + line_h + PAD)
        if image is None:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=GREY)
            boxes.append((x, y, x + thumb, y + thumb))
        else:
            shown = _fit(image, (thumb, thumb))
            sheet.paste(shown.convert("RGB"), (x, y))
            boxes.append((x, y, x + shown.width, y + shown.height))
        text = name if len(name) * 6 <= thumb else name[: max(1, thumb // 6 - 1)] + "…"
        draw.text((x, boxes[-1][3] + 2), text, fill=INK, font=small)  # right under the picture
    return sheet, boxes


def save_figure(figure: Image.Image, path: str | os.PathLike) -> None:
    with atomic_write(path) as (out, _):
        figure.save(out, format="PNG")


def plot_losses(
    curves: dict[str, tuple[list[int], list[float]]],
    path: Path,
    title: str,
    along: str = "iteration (one loss and gradient evaluation each)",
) -> None:
    """One line per run: total loss against iteration (or ``along``), on a log scale."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5), dpi=120)
    for label, (steps, values) in curves.items():
        ax.plot(steps, values, label=label, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel(along)
    ax.set_ylabel("total loss (weighted)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if not curves:  # runs shorter than trainer.log_every_n_steps, or none finished: no legend to draw
        ax.text(
            0.5,
            0.5,
            "no losses were logged (runs log every trainer.log_every_n_steps steps)",
            transform=ax.transAxes,
            ha="center",
            color="grey",
        )
    elif len(curves) <= 12:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    with atomic_write(path) as (out, _):
        fig.savefig(out, format="png")
    plt.close(fig)
