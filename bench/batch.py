"""Pictures per minute of a batch: one process against several, as `nst sweep` runs them.

    python bench/batch.py [--pairs 12] [--size 64] [--steps 50] [--processes 1 2] [--accelerator cpu]

Draws its own photos and paintings (4 photos x 3 paintings = 12 pairs by default), then times
``python cli.py sweep --contents photos/ --styles paintings/`` end to end (start-up, every
cell, the figure) with each process count in turn, on nst's seeded random VGG19. On a CPU
each process gets an equal share of the cores (OMP_NUM_THREADS), as Lightning's launcher
gives them. Prints a table and a JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_batch(folder: Path, processes: int, args: argparse.Namespace) -> float:
    threads = max(1, (os.cpu_count() or 1) // processes) if args.accelerator == "cpu" else None
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    command = [sys.executable, str(ROOT / "cli.py"), "sweep", "--config", str(folder / "bench.yaml")]
    command += ["--contents", "photos/", "--styles", "paintings/", "--trainer.accelerator", args.accelerator]
    command += ["--trainer.devices", str(processes), "--trainer.enable_progress_bar", "false"]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    figures = {}
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
        for _ in range(args.rounds):
            for processes in args.processes:
                seconds = run_batch(folder, processes, args)
                figures.setdefault(processes, []).append(seconds)
                subprocess.run(["rm", "-rf", str(folder / "logs")], check=True)
    print(f"\n{args.pairs} pairs at {args.size} px, {args.steps} Adam steps each, {args.accelerator}")
    print(f"{'processes':<12}{'seconds':>10}{'pictures/min':>15}")
    for processes, times in figures.items():
        best = min(times)
        print(f"{processes:<12}{best:>10.1f}{args.pairs / best * 60:>15.1f}")
    print(json.dumps({"pairs": args.pairs, "size": args.size, "steps": args.steps, "seconds": figures}))


if __name__ == "__main__":
    main()
