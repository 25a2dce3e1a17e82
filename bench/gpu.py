"""Milliseconds per evaluation on a GPU: nst against the plain-PyTorch reference loop, in fp32,
TF32 and bf16, at 512, 1024 and 2048 px, in one run.

    python bench/gpu.py [--sizes 512 1024 2048] [--steps 200] [--device cuda]

One evaluation is one VGG19 forward and backward (the Gatys layers, Adam, the same random
weights for both programs). nst runs through its command line with its shipped defaults
(TensorBoard scalars every 5 steps, images every 25, a checkpoint every 50); the progress
bar is off, as the reference prints nothing either. Steady state: the time from the end of
step 20 to the end of the last step, with the device synchronised only at those two points,
so that nothing waits on the host that a real run would not. The reference runs with
``--channels-last`` (nst's layout on CUDA) and, for TF32, with TF32 allowed. Also reported:
whether an nst step waited on the host (CUDA's sync debug mode, counted over the steady
steps). Prints a table and a JSON line. ``--device cpu --sizes 64`` checks the script itself.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

REFERENCE = ROOT.parent / "shared" / "bench" / "reference_gatys.py"
WARMUP = 20
MODES = {  # name: (nst options, reference options, TF32)
    "fp32": (["--trainer.precision", "32-true"], ["--precision", "fp32"], False),
    "tf32": (["--trainer.precision", "32-true", "--model.tf32", "true"], ["--precision", "fp32"], True),
    "bf16": (["--trainer.precision", "bf16-mixed"], ["--precision", "bf16"], False),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def nst_once(size: int, steps: int, mode: str, device: str, files: dict[str, str]) -> dict[str, float]:
    from lightning.pytorch import Callback

    from nst.cli import main

    marks: dict[str, float] = {}

    class Clock(Callback):
        def on_train_batch_end(self, trainer: object, *args: object) -> None:
            step = trainer.global_step  # type: ignore[attr-defined]
            if step == WARMUP:
                _sync(device)
                marks["start"] = time.perf_counter()
                if device.startswith("cuda"):
                    torch.cuda.set_sync_debug_mode("warn")
            if step == steps:
                if device.startswith("cuda"):
                    torch.cuda.set_sync_debug_mode("default")
                _sync(device)
                marks["end"] = time.perf_counter()

    args = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", files["content"]]
    args += ["--data.style", files["style"], "--data.size", str(size), "--trainer.max_steps", str(steps)]
    args += ["--model.weights", files["weights"], "--model.optimizer", "adam", "--trainer.accelerator", "gpu"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", files["logs"]]
    args += MODES[mode][0]
    if device == "cpu":
        args[args.index("gpu")] = "cpu"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(args, callbacks=[Clock()])
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return {
        "ms": (marks["end"] - marks["start"]) / (steps - WARMUP) * 1e3,
        "syncs_per_step": syncs / (steps - WARMUP),
    }


def reference_once(size: int, steps: int, mode: str, device: str, files: dict[str, str]) -> float:
    tf32 = MODES[mode][2]
    args = [str(REFERENCE), "--size", str(size), "--evals", str(steps), "--optimizer", "adam"]
    args += ["--content", files["content"], "--style", files["style"], "--weights", files["weights"]]
    args += ["--device", device, *MODES[mode][1]] + (["--channels-last"] if device.startswith("cuda") else [])
    code = (
        "import runpy, sys, torch\n"
        f"torch.backends.cudnn.allow_tf32 = {tf32}\ntorch.backends.cuda.matmul.allow_tf32 = {tf32}\n"
        "torch.backends.cudnn.benchmark = True\n"
        f"sys.argv = {args!r}\nrunpy.run_path({str(REFERENCE)!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds_per_eval_steady"] * 1e3


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--once", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.once:
        print(json.dumps(nst_once(int(a.once[0]), a.steps, a.once[1], a.device, json.loads(a.files))))
        return
    from drawing import draw_content, draw_style

    from nst.numerics.vgg import build_features
    from nst.numerics.weights import load_weights

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "content": f"{tmp}/c.png",
            "style": f"{tmp}/s.png",
            "weights": f"{tmp}/w.pth",
            "logs": f"{tmp}/logs",
        }
        torch.save(load_weights(build_features(37), "random").state_dict(), files["weights"])
        name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "CPU"
        print(f"{name}, torch {torch.__version__}, {a.steps} Adam steps, steady from step {WARMUP}")
        print(f"{'size':>6} {'mode':>5} {'reference ms':>13} {'nst ms':>8} {'nst/ref':>8} {'syncs/step':>11}")
        for size in a.sizes:
            draw_content(size, size * 3 // 4).save(files["content"])
            draw_style(size).save(files["style"])
            for mode in a.modes:
                reference = reference_once(size, a.steps, mode, a.device, files)
                command = [sys.executable, __file__, "--once", str(size), mode, "--steps", str(a.steps)]
                command += ["--device", a.device, "--files", json.dumps(files)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                ours = json.loads(out.strip().splitlines()[-1])
                rows.append({"size": size, "mode": mode, "reference_ms": reference, **ours})
                print(
                    f"{size:>6} {mode:>5} {reference:>13.2f} {ours['ms']:>8.2f} "
                    f"{ours['ms'] / reference:>8.2f} {ours['syncs_per_step']:>11.2f}",
                    flush=True,
                )
    print(json.dumps({"device": name, "steps": a.steps, "rows": rows}))


if __name__ == "__main__":
    main_bench()
