"""Shared fixtures: a private TORCH_HOME, images the tests draw, and tiny run configs."""

import urllib.error
from pathlib import Path

import pytest
import torch
import yaml
from drawing import draw_content, draw_style


@pytest.fixture(autouse=True)
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty torch cache, and torch.hub cannot reach the network."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


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
