"""What nst paints does not change unnoticed: small runs in 64-bit precision, through the front
doors, give the pictures recorded in tests/pinned/pictures.pt (see tests/pinned/record.py)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "pinned"))

from record import CASES, record

RECORDED = Path(__file__).parent / "pinned" / "pictures.pt"
# In float64 the same arithmetic in another order (another CPU's matrix kernels) moves a
# pixel by ~1e-15 a step; a change to what is computed moves it by far more than this.
TOLERANCE = 1e-9


def test_the_same_settings_paint_the_recorded_pictures(workdir):
    recorded = torch.load(RECORDED, weights_only=True)
    painted = record(workdir)
    assert set(painted) == set(recorded) and set(CASES) < set(painted)
    for case, tensors in recorded.items():
        assert set(painted[case]) == set(tensors), case
        for kind, expected in tensors.items():
            got = painted[case][kind]
            assert got.dtype == torch.float64 and got.shape == expected.shape, (case, kind)
            difference = (got - expected).abs().max().item()
            assert difference <= TOLERANCE, f"{case} {kind}: off by {difference:.3g}"


# tests/pinned/written_before.ckpt: step 2 of a run written by nst before its modules moved into
# subpackages and pictures were painted by nst.run.painting (commit e40a0c3), made by:
# data {content: content.png, style: style.png, size: 32}; model {weights: random,
# content_layers: [conv2_2], style_layers: [conv1_1, conv2_1], lbfgs_history: 5};
# trainer {max_steps: 2, precision: 64-true}; checkpoint {every_n_steps: 1}.
BEFORE = Path(__file__).parent / "pinned" / "written_before.ckpt"


def test_a_checkpoint_written_before_continues_as_an_uninterrupted_run(workdir):
    import yaml
    from drawing import draw_content, draw_style

    from nst.cli import main

    draw_content().save(workdir / "content.png")
    draw_style().save(workdir / "style.png")
    config = {
        "data": {"content": "content.png", "style": "style.png", "size": 32},
        "model": {"weights": "random", "content_layers": ["conv2_2"], "style_layers": ["conv1_1", "conv2_1"],
                  "lbfgs_history": 5},
        "trainer": {"max_steps": 4, "precision": "64-true", "enable_progress_bar": False},
    }  # fmt: skip
    (workdir / "old.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "old.yaml"])
    main(["fit", "--config", "old.yaml", "--ckpt_path", str(BEFORE)])
    images = [
        torch.load(workdir / "logs" / "old" / f"version_{v}" / "checkpoints" / "last.ckpt", weights_only=True)
        for v in (0, 1)
    ]
    assert [image["global_step"] for image in images] == [4, 4]
    # Exact on one machine; within float64's reordering on another (its first two steps were this one's).
    difference = (images[0]["state_dict"]["image"] - images[1]["state_dict"]["image"]).abs().max().item()
    assert difference <= TOLERANCE
