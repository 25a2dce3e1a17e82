"""Where the time to the first step goes: a fresh process, a 64 px run, timed from its start.

    python bench/startup.py [--rounds 3]

Each round runs ``python bench/startup.py --once`` in a fresh process: it notes the time at
its first line, after importing torch, Lightning and nst's command line, when the trainer is
built, when training starts (weights loaded, targets computed) and when the first step ends.
Prints the median of each stage.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def once() -> dict[str, float]:
    marks = {"python": time.perf_counter() - START}
    import torch  # noqa: F401

    marks["torch"] = time.perf_counter() - START
    from lightning.pytorch import Callback

    marks["lightning"] = time.perf_counter() - START
    from nst.cli import main

    class Marks(Callback):
        def setup(self, *args: object, **kwargs: object) -> None:
            marks.setdefault("trainer built", time.perf_counter() - START)

        def on_train_start(self, *args: object) -> None:
            marks["weights and targets"] = time.perf_counter() - START

        def on_train_batch_end(self, *args: object) -> None:
            marks.setdefault("first step", time.perf_counter() - START)

    sys.path.insert(0, str(ROOT / "tests"))
    from drawing import draw_content, draw_style

    with tempfile.TemporaryDirectory() as tmp:
        draw_content(64, 48).save(f"{tmp}/c.png")
        draw_style(64).save(f"{tmp}/s.png")
        drawn = time.perf_counter() - START
        args = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", f"{tmp}/c.png"]
        args += ["--data.style", f"{tmp}/s.png", "--data.size", "64", "--trainer.max_steps", "1"]
        args += ["--model.weights", "random", "--trainer.logger.init_args.save_dir", f"{tmp}/logs"]
        main(args, callbacks=[Marks()])
        marks["run finished"] = time.perf_counter() - START
    # drawing the test images is not part of a run
    return {k: v - (drawn - marks["lightning"]) if v > drawn else v for k, v in marks.items()}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.once:
        print(json.dumps(once()))
        return
    rounds = []
    for _ in range(a.rounds):
        out = subprocess.run([sys.executable, __file__, "--once"], check=True, capture_output=True, text=True)
        rounds.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'stage':<22}{'s from start (median)':>24}")
    for stage in rounds[0]:
        print(f"{stage:<22}{statistics.median(r[stage] for r in rounds):>24.2f}")
    print(json.dumps({"rounds": rounds}))


if __name__ == "__main__":
    main_bench()
