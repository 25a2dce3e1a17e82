"""Peak memory of one step, measured, against nst's estimate made before the run.

    python bench/memory.py [--sizes 512 1024 2048] [--optimizer adam] [--device cpu]

Each run is one step (forward, losses, backward, optimizer step) at the given long side (4:3
pictures, the Gatys layers, random weights) in a fresh process, with and without
activation checkpointing. Measured: on the CPU the process's peak resident memory less
what it held when the run began to build (the libraries, about 0.8 GB, which the estimate
leaves out); on CUDA the peak of PyTorch's allocator. Prints a table and a JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    # Linux >= 4.0: "5" restarts this process's peak RSS (VmHWM) from its RSS now.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _peak() -> int:
    # Not getrusage's ru_maxrss: Linux carries it over from the parent across fork and exec, so a
    # child of a large process (pytest after many tests) reports the parent's peak as its own.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def once(size: int, checkpointing: bool, optimizer: str, device: str) -> dict[str, float]:
    """One run in this process; returns measured and estimated bytes."""
    import torch
    from drawing import draw_content, draw_style
    from lightning.pytorch import Callback

    from nst.cli import main

    seen: dict[str, float] = {}

    class Probe(Callback):
        def setup(self, trainer: object, pl_module: object, stage: str) -> None:
            _reset_peak()
            seen["before"] = _rss()
            if torch.cuda.is_available() and device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                seen["before"] = torch.cuda.memory_allocated()

        def on_train_end(self, trainer: object, pl_module: object) -> None:
            seen["estimate"] = pl_module.memory.estimate.total  # type: ignore[attr-defined]
            seen["parts"] = dict(pl_module.memory.estimate.parts)  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory() as tmp:
        draw_content(size, size * 3 // 4).save(f"{tmp}/c.png")
        draw_style(size).save(f"{tmp}/s.png")
        args = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", f"{tmp}/c.png"]
        args += ["--data.style", f"{tmp}/s.png", "--data.size", str(size), "--trainer.max_steps", "1"]
        args += ["--model.weights", "random", "--model.optimizer", optimizer, "--trainer.accelerator", device]
        args += ["--model.activation_checkpointing", str(checkpointing).lower()]
        args += [
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.logger.init_args.save_dir",
            f"{tmp}/logs",
        ]
        args += ["--checkpoint.every_n_steps", "0", "--image_log.every_n_steps", "0"]
        main(args, callbacks=[Probe()])
    if device == "cuda":
        measured = torch.cuda.max_memory_allocated() - seen["before"]
    else:
        measured = _peak() - seen["before"]
    peak_rss = _peak()
    return {"measured": measured, "estimate": seen["estimate"], "peak_rss": peak_rss, "parts": seen["parts"]}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--once", nargs=2, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.once:
        result = once(int(a.once[0]), a.once[1] == "true", a.optimizer, a.device)
        print(json.dumps(result))
        return
    rows = []
    for size in a.sizes:
        for checkpointing in (False, True):
            command = [sys.executable, __file__, "--once", str(size), str(checkpointing).lower()]
            command += ["--optimizer", a.optimizer, "--device", a.device]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1]) | {"size": size, "checkpointing": checkpointing}
            rows.append(row)
            print(
                f"{size:>5} px  checkpointing {'on ' if checkpointing else 'off'}  "
                f"estimate {row['estimate'] / 1e9:5.2f} GB  measured {row['measured'] / 1e9:5.2f} GB  "
                f"({row['estimate'] / row['measured'] - 1:+.0%})  process peak {row['peak_rss'] / 1e9:5.2f} GB",
                flush=True,
            )
    print(json.dumps({"optimizer": a.optimizer, "device": a.device, "rows": rows}))


if __name__ == "__main__":
    main_bench()
