"""Regions painted separately (data.content_masks, data.style_masks): each region of the photo
takes the statistics of its own region of the painting; bad masks get one line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_regions
from PIL import Image
from steps import AtStep

from nst.errors import NSTError
from nst.numerics.losses import gram
from nst.numerics.regions import guided_grams
from nst.run.engine import Run


@pytest.fixture
def regions(workdir: Path) -> dict[str, Path]:
    paths = {}
    for name, image in draw_regions().items():
        paths[name] = workdir / f"{name}.png"
        image.save(paths[name])
    return paths


def settings(regions: dict[str, Path], **more) -> dict:
    return {
        "data.content": str(regions["photo"]), "data.style": str(regions["painting"]),
        "data.content_masks": str(regions["photo_labels"]), "data.style_masks": str(regions["painting_labels"]),
        "data.size": 32, "model.weights": "random", "model.init": "noise", "model.content_weight": 0.0,
        "model.style_layers": ["conv1_1", "conv2_1"], "model.content_layers": ["conv2_2"],
        "model.optimizer": "adam", "model.lr": 0.05, "trainer.max_steps": 200,
        "trainer.enable_progress_bar": False, **more,
    }  # fmt: skip


def halves(picture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean colour of the left and right halves of a [1, 3, H, W] picture."""
    width = picture.shape[-1]
    return picture[0, :, :, : width // 2].mean(dim=(1, 2)), picture[0, :, :, width // 2 :].mean(dim=(1, 2))


def test_each_region_takes_its_own_regions_style(regions):
    painting = np.asarray(Image.open(regions["painting"]), dtype=np.float32) / 255
    warm, cool = painting[:32].mean(axis=(0, 1)), painting[32:].mean(axis=(0, 1))  # red, blue labels
    left, right = halves(Run([settings(regions)], in_memory=True).fit().tensor)
    # Left (red label) takes the warm stripes, right (blue label) the cool checks.
    assert left[0] > left[2] and right[2] > right[0], (left, right)
    assert np.linalg.norm(left.numpy() - warm) < np.linalg.norm(left.numpy() - cool)
    assert np.linalg.norm(right.numpy() - cool) < np.linalg.norm(right.numpy() - warm)
    # The same run with the painting's labels swapped swaps the result's regions.
    swapped = Image.open(regions["painting_labels"]).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    swapped.save(regions["painting_labels"])
    left, right = halves(Run([settings(regions)], in_memory=True).fit().tensor)
    assert left[2] > left[0] and right[0] > right[2], (left, right)


def test_a_full_mask_is_the_plain_gram_matrix():
    features = torch.randn(1, 4, 6, 5)
    assert torch.allclose(guided_grams(features, torch.ones(1, 6, 5))[0], gram(features)[0], atol=1e-6)


def test_bad_masks_get_one_line(regions, workdir):
    Image.new("RGB", (20, 20), (255, 0, 0)).save(workdir / "small.png")
    three = Image.open(regions["painting_labels"]).copy()
    three.paste((0, 255, 0), (0, 0, 8, 8))
    three.save(workdir / "three.png")
    cases = [
        ({"data.content_masks": str(workdir / "small.png")}, "is 20×20 px but its image is 64×64 px"),
        ({"data.style_masks": str(workdir / "three.png")}, "only in the painting's"),
        ({"model.style_loss": "mean_std"}, "region masks work with model.style_loss gram"),
        ({"data.style_masks": None}, "give data.content_masks and data.style_masks together"),
        ({"data.style": [str(regions["painting"]), str(regions["photo"])]}, "one style image"),
    ]
    for change, says in cases:
        with pytest.raises(NSTError, match=None) as error:
            Run([settings(regions, **change)], in_memory=True).fit()
        assert says in str(error.value) and "\n" not in str(error.value), (change, str(error.value))


def test_resume_is_exact_with_regions(regions, workdir):
    base = settings(regions, **{"model.optimizer": "lbfgs", "model.lr": None, "trainer.max_steps": 8})
    whole = Run([base]).fit()
    holder = {}
    first = Run([base], callbacks=[AtStep(4, lambda t, m: holder["run"].stop())])
    holder["run"] = first
    assert first.fit().stopped is not None
    resumed = Run([{**base, "ckpt_path": "last"}]).fit()
    assert resumed.run_dir.name == "version_1"  # the stopped run, continued in its own directory
    assert torch.equal(whole.tensor, resumed.tensor)


def test_the_shipped_regions_config_runs(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])  # its image paths are relative to the project
    args = ["--config", "configs/regions.yaml", "--model.weights", "random", "--trainer.max_steps", "3"]
    result = Run([args, {"data.size": 32}], in_memory=True).fit()
    assert result.steps == 3 and result.image.size == (32, 32)
