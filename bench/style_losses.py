"""Seconds per iteration of each style statistic (model.style_loss), and of its share alone.

    python bench/style_losses.py [--size 256] [--steps 20]

Runs nst on drawn images with random VGG19 weights and Adam for ``--steps`` steps with each
style loss (start-up taken out by differencing two runs), and prints seconds per iteration and
the cost over Gram's.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from drawing import draw_content, draw_style

from nst.numerics.style_stats import KINDS
from nst.run.engine import Run


def seconds_per_step(folder: Path, kind: str, size: int, steps: int) -> float:
    settings = {"data.content": str(folder / "photo.png"), "data.style": str(folder / "painting.png"),
                "data.size": size, "model.weights": "random", "model.optimizer": "adam", "model.style_loss": kind,
                "trainer.enable_progress_bar": False}  # fmt: skip
    Run([{**settings, "trainer.max_steps": 2}], in_memory=True).fit()  # warm: weights, targets, kernels
    began = time.perf_counter()
    Run([{**settings, "trainer.max_steps": steps + 2}], in_memory=True).fit()
    total = time.perf_counter() - began
    began = time.perf_counter()
    Run([{**settings, "trainer.max_steps": 2}], in_memory=True).fit()
    start_up = time.perf_counter() - began  # the run's fixed cost, taken out by differencing
    return (total - start_up) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        draw_content(args.size, args.size * 3 // 4).save(folder / "photo.png")
        draw_style(args.size).save(folder / "painting.png")
        figures = {kind: seconds_per_step(folder, kind, args.size, args.steps) for kind in KINDS}
    print(f"\n{args.size} px, Adam, random VGG19 weights, default layers (conv1_1 ... conv5_1)")
    print(f"{'style_loss':<14}{'s/iteration':>12}{'over gram':>12}")
    for kind, seconds in figures.items():
        print(f"{kind:<14}{seconds:>12.3f}{seconds - figures['gram']:>+12.3f}")
    print(json.dumps({"size": args.size, "seconds_per_iteration": figures}))


if __name__ == "__main__":
    main()
