"""Seconds per step of nst against the plain-PyTorch reference loop, measured side by side.

    python bench/speed.py --size 256 --steps 60 [--content A.jpg --style B.jpg] [--rounds 2]

Both programs run the Gatys setting (conv4_2 / conv1_1 … conv5_1, L-BFGS, one VGG
forward and backward per step) on the same two images and the same VGG19 weights (nst's seeded random ones
unless --weights names a file), alternating (each going first in every other round),
``--rounds`` times. nst runs through its real command line with its
shipped defaults (TensorBoard scalars, images and a checkpoint included), each run in a
fresh process like the reference. Steady-state
time excludes the first 5 steps, as the reference does. With ``--cpu`` it is CPU time of whole
processes instead, start-up cancelled by differencing a run of steps/7 steps from one of --steps.
Prints a table and a JSON line.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from drawing import draw_content, draw_style  # noqa: E402

from nst.cli import main  # noqa: E402
from nst.numerics.vgg import build_features  # noqa: E402
from nst.numerics.weights import load_weights  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "bench" / "reference_gatys.py"
WARMUP = 5


class StepClock(Callback):
    """Wall time at the end of each step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cuda = torch.cuda.is_available()

    def on_train_batch_end(self, *args: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def nst_once(
    content: str, style: str, size: int, steps: int, workdir: str, device: str, weights: str, optimizer: str
) -> None:
    """One nst run in this process; prints its steady seconds per step as the last line."""
    clock = StepClock()
    args = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", content]
    args += ["--data.style", style, "--data.size", str(size), "--trainer.max_steps", str(steps)]
    args += ["--model.weights", weights, "--model.optimizer", optimizer]
    args += ["--trainer.enable_progress_bar", "false"]
    args += ["--trainer.accelerator", device, "--trainer.logger.init_args.save_dir", f"{workdir}/logs"]
    main(args, callbacks=[clock])
    print(json.dumps({"seconds_per_step": (clock.times[-1] - clock.times[WARMUP - 1]) / (steps - WARMUP)}))


def run_nst(
    content: str, style: str, size: int, steps: int, workdir: Path, device: str, weights: str, optimizer: str
) -> float:
    # A fresh process per run, like the reference gets: runs in one long-lived process drift.
    command = [sys.executable, __file__, "--nst-once", "--size", str(size), "--steps", str(steps)]
    command += ["--content", content, "--style", style, "--device", device, "--workdir", str(workdir)]
    command += ["--weights", weights, "--optimizer", optimizer]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds_per_step"]


def run_reference(
    content: str, style: str, size: int, steps: int, device: str, weights: str, optimizer: str
) -> float:
    command = [
        sys.executable,
        str(REFERENCE),
        "--size",
        str(size),
        "--evals",
        str(steps),
        "--optimizer",
        optimizer,
    ]
    command += ["--content", content, "--style", style, "--device", device, "--weights", weights]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds_per_eval_steady"]


def cpu_seconds(run: object, *args: object) -> float:
    """User + system CPU seconds of the child process that ``run(*args)`` starts and waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(*args)  # type: ignore[operator]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--content")
    parser.add_argument("--style")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU time of whole processes per step, start-up cancelled by differencing a run of "
        "steps/7 steps from one of --steps (instead of steady wall time inside each run)",
    )
    parser.add_argument("--nst-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--weights", help="VGG19 .pth for both programs (default: nst's seeded random weights)"
    )
    a = parser.parse_args()
    if a.nst_once:
        nst_once(a.content, a.style, a.size, a.steps, a.workdir, a.device, a.weights, a.optimizer)
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        content, style = a.content, a.style
        if content is None or style is None:
            content, style = str(workdir / "content.png"), str(workdir / "style.png")
            draw_content(a.size, a.size * 3 // 4).save(content)
            draw_style(a.size).save(style)
        weights = a.weights
        if weights is None:  # one network for both: same numbers through the same kernels
            weights = str(workdir / "vgg19_random.pth")
            torch.save(load_weights(build_features(37), "random").state_dict(), weights)
        ours, reference = [], []
        short = max(WARMUP + 1, a.steps // 7)
        for i in range(a.rounds):
            ref_args = (content, style, a.size, a.steps, a.device, weights, a.optimizer)
            nst_args = (content, style, a.size, a.steps, workdir, a.device, weights, a.optimizer)
            # The two go first in turn, so that the machine's drift over a round favours neither.
            order = [(run_reference, ref_args, reference), (run_nst, nst_args, ours)][:: -1 if i % 2 else 1]
            if not a.cpu:
                for run, args, out in order:
                    out.append(run(*args))
                continue
            for run, args, out in order:
                # The long and the short run go first in turn too, so that whatever a second
                # process of a program saves at start-up (nst's takes ~10 CPU seconds, mostly
                # imports) cancels over rounds instead of biasing the difference.
                cpu = {
                    n: cpu_seconds(run, *args[:3], n, *args[4:])
                    for n in (a.steps, short)[:: -1 if i % 2 else 1]
                }
                out.append((cpu[a.steps] - cpu[short]) / (a.steps - short))

    ratio = statistics.median(ours) / statistics.median(reference)
    per_round = [o / r for o, r in zip(ours, reference, strict=True)]
    unit = "CPU s/step" if a.cpu else "s/step"
    print(f"\n{'program':<12}{unit + ' (median)':>18}{'all rounds':>40}")
    print(f"{'reference':<12}{statistics.median(reference):>18.4f}{[round(x, 4) for x in reference]!s:>40}")
    print(f"{'nst':<12}{statistics.median(ours):>18.4f}{[round(x, 4) for x in ours]!s:>40}")
    print(
        f"nst / reference = {ratio:.3f}  ({a.size} px, {a.steps} {a.optimizer} steps, {a.device}, {torch.get_num_threads()} threads)"
    )
    print(
        f"per round: {', '.join(f'{x:.3f}' for x in per_round)}; their median {statistics.median(per_round):.3f}"
    )
    print(json.dumps({"size": a.size, "steps": a.steps, "optimizer": a.optimizer, "device": a.device, "cpu_time": a.cpu, "reference_s_per_step": reference,
                      "nst_s_per_step": ours, "ratio": round(ratio, 4),
                      "median_round_ratio": round(statistics.median(per_round), 4)}))  # fmt: skip


if __name__ == "__main__":
    main_bench()
