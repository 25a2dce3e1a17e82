"""Pictures per minute of a batch: one process against several, and one picture at a time
against several optimised together (--batch_size), as `nst sweep` runs them.

    python bench/batch.py [--pairs 12] [--size 64] [--steps 50] [--processes 1 2] [--batch_sizes 1 4]
    python bench/batch.py --accelerator cuda --size 256 --processes 1 --batch_sizes 1 4 12   # a GPU

Draws its own photos and paintings (4 photos x 3 paintings = 12 pairs by default), then times
``python cli.py sweep --contents photos/ --styles paintings/`` end to end (start-up, every
cell, the figure) with each process count and batch size in turn, on nst's seeded random VGG19.
On a CPU each process gets an equal share of the cores (OMP_NUM_THREADS), as Lightning's
launcher gives them. Prints a table, how far each picture of a batch is from the same picture
optimised alone (largest pixel difference, in 8-bit levels), and a JSON line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from PIL import ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from drawing import draw_content, draw_style  # noqa: E402


def draw_pairs(folder: Path, pairs: int) -> None:
    photos, paintings = folder / "photos", folder / "paintings"
    photos.mkdir()
    paintings.mkdir()
    styles = 3 if pairs % 3 == 0 else 1
    base = draw_content()
    turns = [
        lambda i: i,
        ImageOps.mirror,
        ImageOps.flip,
        ImageOps.invert,
        ImageOps.equalize,
        ImageOps.solarize,
    ]
    for i in range(pairs // styles):
        turns[i % len(turns)](base.rotate(15 * (i // len(turns)))).save(photos / f"photo{i:02d}.png")
    for j in range(styles):
        draw_style().rotate(90 * j).save(paintings / f"painting{j}.png")


def run_batch(folder: Path, processes: int, batch_size: int, args: argparse.Namespace) -> float:
    threads = max(1, (os.cpu_count() or 1) // processes) if args.accelerator == "cpu" else None
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", "--config", str(folder / "bench.yaml")]
    command += ["--contents", "photos/", "--styles", "paintings/", "--trainer.accelerator", args.accelerator]
    command += ["--trainer.devices", str(processes), "--trainer.enable_progress_bar", "false"]
    command += ["--batch_size", str(batch_size)]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def images_of(folder: Path) -> dict[str, torch.Tensor]:
    cells = (folder / "logs" / "bench-batch" / "version_0" / "cells").iterdir()
    return {
        c.name: torch.load(c / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image"]
        for c in cells
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    levels: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        draw_pairs(folder, args.pairs)
        config = {
            "data": {"size": args.size},
            "model": {"weights": "random", "optimizer": "adam", "lr": 0.05},
            "trainer": {"max_steps": args.steps, "log_every_n_steps": 10, "enable_model_summary": False},
            "checkpoint": {"every_n_steps": 0},
            "image_log": {"every_n_steps": 0},
        }
        (folder / "bench.yaml").write_text(yaml.safe_dump(config))
        alone: dict[str, torch.Tensor] = {}
        for _ in range(args.rounds):
            for processes in args.processes:
                for batch_size in args.batch_sizes:
                    name = f"{processes} × batch {batch_size}"
                    figures.setdefault(name, []).append(run_batch(folder, processes, batch_size, args))
                    images = images_of(folder)
                    alone = alone or images  # the first configuration's pictures
                    levels[name] = max((images[c] - alone[c]).abs().max().item() * 255 for c in images)
                    shutil.rmtree(folder / "logs")
    print(f"\n{args.pairs} pairs at {args.size} px, {args.steps} Adam steps each, {args.accelerator}")
    print(f"{'processes × batch':<20}{'seconds':>10}{'pictures/min':>15}{'max diff (levels)':>20}")
    for name, times in figures.items():
        best = min(times)
        print(f"{name:<20}{best:>10.1f}{args.pairs / best * 60:>15.1f}{levels[name]:>20.3f}")
    print(json.dumps({"pairs": args.pairs, "size": args.size, "steps": args.steps, "seconds": figures,
                      "max_difference_8bit_levels": levels}))  # fmt: skip


if __name__ == "__main__":
    main()
