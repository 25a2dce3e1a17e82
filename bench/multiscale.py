"""Multi-scale against single-scale at the same wall time: which ends with the lower loss?

    python bench/multiscale.py [--content A.jpg --style B.jpg] [--phases 128:200,181:150,...]

First the multi-scale run goes through its phases (the last at ``--size``) and its wall time T is
taken, from the first step to the last. Then a single-scale run at ``--size`` gets the same T and
stops at the first step that ends past it. Both start from the content image (``--init noise``: from noise) with the settings of
``configs/starry.yaml`` (L-BFGS, conv4_2 / conv1_1 … conv5_1, style weight 1e6) and the same VGG19
weights (nst's seeded random ones unless ``--weights`` names a file), each in a fresh process.
Periodic checkpoints and TensorBoard images are off in both, so the clock sees the optimisation.

The loss compared is the one the single-scale run minimises: the final image at ``--size``
against the content and style targets at ``--size``, evaluated once after the last step.
Prints a table and a JSON line.
"""

import argparse
import json
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


class Clock(Callback):
    """Times the steps, stops the run once ``budget`` seconds have passed (if given), and
    evaluates the final image's losses once the last step is done."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.cuda = torch.cuda.is_available()
        self.start = 0.0
        self.seconds = 0.0
        self.steps = 0
        self.curve: list[tuple[float, float]] = []  # (seconds, loss before the step) per step
        self.final: dict[str, float] = {}

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        self.seconds = self._now() - self.start
        self.steps = trainer.global_step
        loss = (
            outputs["loss"] / pl_module.painting.loss_scale
        )  # the optimizer's units back to the logged ones
        self.curve.append((round(self.seconds, 3), float(loss)))
        if self.budget is not None and self.seconds >= self.budget:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        objective = pl_module.painting.objective
        with torch.no_grad():
            losses = objective.losses(objective.evaluate(pl_module.vgg, pl_module.image))
        self.final = {k: float(losses[k]) for k in ("total", "content", "style")}


def once(args: argparse.Namespace) -> None:
    """One run in this process; prints its figures as a JSON line."""
    clock = Clock(args.budget)
    command = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", args.content]
    command += ["--data.style", args.style, "--data.size", str(args.size), "--model.weights", args.weights]
    command += ["--trainer.accelerator", args.device, "--trainer.enable_progress_bar", "false"]
    command += ["--checkpoint.every_n_steps", "0", "--image_log.every_n_steps", "0"]
    command += ["--trainer.logger.init_args.save_dir", f"{args.workdir}/logs", "--model.init", args.init]
    if args.budget is None:
        command += ["--model.phases", phases_yaml(args.phases)]
    else:
        command += ["--trainer.max_steps", "1000000"]
    main(command, callbacks=[clock])
    figures = {"seconds": clock.seconds, "steps": clock.steps, "final": clock.final, "curve": clock.curve}
    print(json.dumps(figures))


def phases_yaml(phases: str) -> str:
    pairs = [p.split(":") for p in phases.split(",")]
    return "[" + ", ".join(f"{{size: {s}, steps: {n}}}" for s, n in pairs) + "]"


def run(args: argparse.Namespace, workdir: Path, budget: float | None) -> dict:
    # A fresh process per run: nothing cached from the other run, no drift of a long-lived one.
    command = [sys.executable, __file__, "--once", "--workdir", str(workdir)]
    for key in ("content", "style", "size", "phases", "device", "weights", "init"):
        command += [f"--{key}", str(getattr(args, key))]
    if budget is not None:
        command += ["--budget", str(budget)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--phases",
        default="128:200,181:150,256:100,362:60,512:40",
        help="size:steps,... of the multi-scale run; the last size must be --size",
    )
    parser.add_argument("--init", default="content", choices=["content", "noise"])
    parser.add_argument("--content")
    parser.add_argument("--style")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", help="VGG19 .pth for both runs (default: nst's seeded random weights)")
    parser.add_argument("--curves", help="also write both loss-against-time curves to this JSON file")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.once:
        once(a)
        return
    if int(a.phases.split(",")[-1].split(":")[0]) != a.size:
        parser.error(f"the last phase of --phases must be at --size ({a.size})")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if a.content is None or a.style is None:
            a.content, a.style = str(workdir / "content.png"), str(workdir / "style.png")
            draw_content(a.size, a.size * 3 // 4).save(a.content)
            draw_style(a.size).save(a.style)
        if a.weights is None:  # one network for both runs
            a.weights = str(workdir / "vgg19_random.pth")
            torch.save(load_weights(build_features(37), "random").state_dict(), a.weights)
        multi = run(a, workdir, None)
        single = run(a, workdir, multi["seconds"])

    print(f"\n{'run':<14}{'steps':>7}{'seconds':>10}{'total':>12}{'content':>12}{'style':>12}")
    for name, r in (("multi-scale", multi), ("single-scale", single)):
        f = r["final"]
        print(f"{name:<14}{r['steps']:>7}{r['seconds']:>10.1f}{f['total']:>12.4g}{f['content']:>12.4g}{f['style']:>12.4g}")  # fmt: skip
    ratio = multi["final"]["total"] / single["final"]["total"]
    print(f"multi / single final loss = {ratio:.3f}  ({a.size} px, from {a.init}, phases {a.phases}, {a.device}, "
          f"{torch.get_num_threads()} threads)")  # fmt: skip
    if a.curves:
        Path(a.curves).write_text(json.dumps({"multi": multi["curve"], "single": single["curve"]}))
    summary = {
        "size": a.size,
        "init": a.init,
        "phases": a.phases,
        "device": a.device,
        "ratio": round(ratio, 4),
    }
    for name, r in (("multi", multi), ("single", single)):
        summary[name] = {"seconds": round(r["seconds"], 2), "steps": r["steps"], "final": r["final"]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main_bench()
