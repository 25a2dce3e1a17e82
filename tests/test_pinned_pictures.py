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
