"""Shared fixtures: a private TORCH_HOME, images the tests draw, and tiny run configs."""

import math
import urllib.error
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, ImageDraw


@pytest.fixture(autouse=True)
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty torch cache, and torch.hub cannot reach the network."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


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


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png"}
    draw_content().save(paths["content"])
    draw_style().save(paths["style"])
    return paths


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a temporary directory, so runs land in its logs/."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_config(workdir: Path, images: dict[str, Path]):
    """Write a tiny run config (random VGG, 32 px, shallow layers) and return its path."""

    def make(name: str = "tiny", **model: object) -> Path:
        config = {
            "data": {"content": str(images["content"]), "style": str(images["style"]), "size": 32},
            "model": {
                "weights": "random",
                "content_layers": ["conv2_2"],
                "style_layers": ["conv1_1", "conv2_1", "conv3_1"],
                **model,
            },
            "trainer": {
                "max_steps": 4,
                "log_every_n_steps": 1,
                "enable_progress_bar": False,
                "enable_model_summary": False,
            },
            "checkpoint": {"every_n_steps": 2},
        }
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return make
