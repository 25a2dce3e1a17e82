"""Records the pictures that tests/test_pinned_pictures.py holds nst to: a few small runs in
64-bit precision, through the front doors (a run in memory, and a sweep whose cells are
optimised together), each run's image as optimised and the picture as written.

    python tests/pinned/record.py          # writes tests/pinned/pictures.pt

Run it only to record a change in what nst paints on purpose, and say so in the commit: the
file is what keeps a refactoring from changing pictures unnoticed.
"""

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # tests/drawing.py

from drawing import draw_content, draw_regions, draw_style  # noqa: E402

SHALLOW = {
    "model.weights": "random",
    "model.content_layers": ["conv2_2"],
    "model.style_layers": ["conv1_1", "conv2_1", "conv3_1"],
    "data.size": 32,
    "trainer.precision": "64-true",
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
}

# name -> settings on top of SHALLOW; the images are drawn into the working directory.
CASES: dict[str, dict[str, Any]] = {
    "lbfgs": {"trainer.max_steps": 8},
    "lbfgs_tv_replicate_avg": {
        "trainer.max_steps": 6,
        "model.tv_weight": 1e-2,
        "model.padding": "replicate",
        "model.pooling": "avg",
        "model.init": "noise",
    },
    "adam_mean_std": {
        "trainer.max_steps": 8,
        "model.optimizer": "adam",
        "model.lr": 0.05,
        "model.style_loss": "mean_std",
    },
    "phases": {
        "model.phases": [{"size": 24, "steps": 3}, {"size": 32, "steps": 4, "optimizer": "adam", "lr": 0.03}],
        "trainer.max_steps": 7,
    },
    "blend_wasserstein_luminance": {
        "trainer.max_steps": 5,
        "data.style": ["style.png", "content.png"],
        "data.style_blend": [3.0, 1.0],
        "data.luminance_only": True,
        "model.style_loss": "wasserstein",
    },
    "texture": {"trainer.max_steps": 5, "data.content": None, "data.size": [40, 32]},
    "colours_style_scale": {
        "trainer.max_steps": 5,
        "output.original_colours": "ycbcr",
        "data.style_scale": 0.75,
        "data.match_colours": True,
        "model.style_layer_weights": [1.0, 0.5, 2.0],
    },
    "regions": {
        "trainer.max_steps": 5,
        "data.content": "photo.png",
        "data.style": "painting.png",
        "data.content_masks": "photo_labels.png",
        "data.style_masks": "painting_labels.png",
        "model.optimizer": "adam",
        "model.lr": 0.05,
    },
}
# Cells of a sweep run two at a time (--batch_size 2): one run's step for both pictures.
SWEEP = {
    "rows": {"key": "data.content", "values": ["content.png", "photo.png"]},
    "columns": {"key": "data.style", "values": ["style.png", "painting.png"]},
}
SWEEP_ARGS = ["--trainer.max_steps", "5", "--batch_size", "2", "--data.size", "32"]


def draw_images(folder: Path) -> None:
    draw_content().save(folder / "content.png")
    draw_style().save(folder / "style.png")
    for name, image in draw_regions().items():
        image.save(folder / f"{name}.png")


def layers(case: str) -> list[dict[str, Any]]:
    settings = {"data.content": "content.png", "data.style": "style.png", **SHALLOW, **CASES[case]}
    return [settings]


def sweep_files(folder: Path) -> list[str]:
    import yaml

    from nst.run.settings import nested

    (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    base = {key: value for key, value in SHALLOW.items() if key != "data.size"}
    (folder / "base.yaml").write_text(yaml.safe_dump(nested(base)))
    return ["sweep", "--config", "base.yaml", "--sweep", "sweep.yaml", *SWEEP_ARGS]


def record(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every case's image (and picture), run in ``folder``, the working directory."""
    import nst
    from nst.cli import main

    pictures: dict[str, dict[str, torch.Tensor]] = {}
    draw_images(folder)
    for case in CASES:
        run = nst.Run(layers(case), in_memory=True)
        result = run.fit()
        image, picture = run.model.image.detach().clone(), _picture(run, result)
        # The picture as written, where it is not the image itself (colours, a best image).
        pictures[case] = {"image": image} | ({} if torch.equal(image, picture) else {"picture": picture})
    main(sweep_files(folder))
    for cell in sorted((folder / "logs" / "base-sweep" / "version_0" / "cells").iterdir()):
        checkpoint = torch.load(cell / "checkpoints" / "last.ckpt", weights_only=True)
        pictures[f"sweep_{cell.name}"] = {"image": checkpoint["state_dict"]["image"]}
    return pictures


def _picture(run: Any, result: Any) -> torch.Tensor:
    from nst.run.outputs import FinalImage

    final = next(c for c in run.trainer.callbacks if isinstance(c, FinalImage))
    return final.results[0].detach().clone()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        recorded = record(Path(tmp))
    torch.save(recorded, HERE / "pictures.pt")
    print(f"wrote {HERE / 'pictures.pt'}")
