"""nst's step against the reference's, paired: one reference step at each of nst's step boundaries.

    python bench/paired.py --size 32 --steps 300 [--optimizer adam] [--rounds 3]

bench/speed.py runs the two programs one after the other, minutes apart, and this machine's
speed drifts by more than the difference being measured. Here both run in one process: nst's
real command line (its shipped defaults: TensorBoard scalars, images and checkpoints) with a
callback that, at the end of each nst step, takes one step of the reference loop
(``../shared/bench/reference_gatys.py``'s network, features, Gram matrix and loss, with
torch's L-BFGS called once per step, as nst calls it, or Adam; by default its VGG in the
memory layout nst uses on the CPU, so that both run the same kernels). Each nst step is timed from
the end of one such reference step to the start of the next, so the two alternate step by
step and see the same machine. Time is the main thread's CPU time (``time.thread_time``);
``--clock process`` takes the whole process's, its OpenMP threads included (the issue's
measure, CPU time per iteration, without the drift between processes); ``--clock wall`` wall
time. The first 10 steps are left out; "plain" steps are those with no metrics written (not a
multiple of trainer.log_every_n_steps), "all" includes the periodic images
and checkpoints. A round's figures for plain steps and the reference's are medians, but with
``--clock process`` means: Linux brings another thread's CPU time up to date only at its scheduler ticks
(4 ms here, a fifth of a 32 px step), so the OpenMP worker's share of one step is stale by up to
a tick, which averages out over steps but biases a median. Prints one line per round and the
medians of rounds; the last line is JSON.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

import reference_gatys as ref  # noqa: E402
from drawing import draw_content, draw_style  # noqa: E402

from nst.cli import main  # noqa: E402
from nst.numerics.vgg import build_features  # noqa: E402
from nst.numerics.weights import load_weights  # noqa: E402
from nst.run.speed import prepare  # noqa: E402

SKIP = 10
CLOCKS = {  # --clock: the clock and its name in the output
    "thread": (time.thread_time, "main-thread CPU"),
    "process": (time.process_time, "process CPU"),
    "wall": (time.perf_counter, "wall"),
}


def reference_step(
    content: str, style: str, size: int, weights: str, optimizer: str, channels_last: bool
) -> Callable[[], object]:
    """One step of the reference loop per call, on its own copy of the network; with
    ``channels_last`` the network and each pass's input in that layout, as nst runs them (the
    image itself stays NCHW, which torch's L-BFGS needs)."""
    net = ref.vgg19(weights=None).features[: max(ref.STYLE) + 1]
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= max(ref.STYLE)})
    for module in net:
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.eval().requires_grad_(False).to(memory_format=layout)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (ref.MEAN, ref.STD))
    content_image = ref.load(content, size, "cpu", "content")
    style_image = F.interpolate(
        ref.load(style, size, "cpu", "style"), size=content_image.shape[-2:], mode="bicubic"
    ).clamp(0, 1)
    with torch.no_grad():
        c_targets = {i: f for i, f in ref.features(net, content_image, mean, std).items() if i in ref.CONTENT}
        s_targets = {
            i: ref.gram(f) for i, f in ref.features(net, style_image, mean, std).items() if i in ref.STYLE
        }
    image = content_image.clone().contiguous().requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=100)
    else:
        opt = torch.optim.Adam([image], lr=0.02)

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        f = ref.features(net, image.contiguous(memory_format=layout), mean, std)
        c_loss = sum(F.mse_loss(f[i], c_targets[i]) for i in ref.CONTENT)
        s_loss = sum(F.mse_loss(ref.gram(f[i]), s_targets[i]) for i in ref.STYLE)
        loss = c_loss + 1e6 * s_loss
        loss.backward()
        return loss

    return lambda: opt.step(closure)


class Paired(Callback):
    """Takes a reference step at each of nst's step ends and times both."""

    def __init__(self, step: Callable[[], object], clock: Callable[[], float]) -> None:
        self.step, self.clock = step, clock
        self.nst: list[tuple[int, float]] = []  # (global step, seconds)
        self.reference: list[float] = []
        self._resumed: float | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        start = self.clock()
        if self._resumed is not None:
            self.nst.append((trainer.global_step, start - self._resumed))
        self.step()
        end = self.clock()
        self.reference.append(end - start)
        self._resumed = self.clock()


def one_round(
    a: argparse.Namespace, workdir: Path, content: str, style: str, weights: str
) -> dict[str, float]:
    clock = CLOCKS[a.clock][0]
    same = a.reference_layout == "same" and prepare(torch.device("cpu"), tf32=False)
    paired = Paired(reference_step(content, style, a.size, weights, a.optimizer, same), clock)
    args = ["fit", "--config", str(ROOT / "configs" / "starry.yaml"), "--data.content", content]
    args += ["--data.style", style, "--data.size", str(a.size), "--trainer.max_steps", str(a.steps)]
    args += ["--model.weights", weights, "--model.optimizer", a.optimizer]
    args += [
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(workdir / "logs"),
    ]
    main(args, callbacks=[paired])
    every = 5  # starry.yaml's trainer.log_every_n_steps
    plain = [s for step, s in paired.nst if step > SKIP and step % every]
    every_step = [s for step, s in paired.nst if step > SKIP]
    reference = paired.reference[SKIP:]
    centre = statistics.mean if a.clock == "process" else statistics.median  # see the docstring
    return {
        "reference_ms": centre(reference) * 1e3,
        "nst_plain_ms": centre(plain) * 1e3,
        "plain_ratio": centre(plain) / centre(reference),
        "all_ratio": statistics.mean(every_step) / statistics.mean(reference),
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    parser.add_argument("--clock", choices=list(CLOCKS), default="thread", help="what time is measured")
    parser.add_argument(
        "--reference-layout",
        choices=["same", "plain"],
        default="same",
        help="the reference's VGG in the memory layout nst uses on this device (same: the "
        "same kernels, so that the difference is what nst does around them) or in PyTorch's "
        "default NCHW, as the reference script runs it (plain)",
    )
    a = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        content, style = str(workdir / "content.png"), str(workdir / "style.png")
        draw_content(a.size, a.size * 3 // 4).save(content)
        draw_style(a.size).save(style)
        weights = str(workdir / "vgg19_random.pth")  # one network for both
        torch.save(load_weights(build_features(37), "random").state_dict(), weights)
        for i in range(a.rounds):
            rounds.append(one_round(a, workdir / str(i), content, style, weights))
            print(" ".join(f"{k} {v:.3f}" for k, v in rounds[-1].items()), flush=True)
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    clock = CLOCKS[a.clock][1]
    print(
        f"nst / reference ({a.reference_layout} layout), {a.size} px, {a.optimizer}, {clock} time, "
        f"median of {a.rounds} rounds: "
        f"plain steps {medians['plain_ratio']:.3f}, all steps {medians['all_ratio']:.3f}"
    )
    print(json.dumps({"size": a.size, "optimizer": a.optimizer, "clock": clock, "rounds": rounds,
                      "reference_layout": a.reference_layout,
                      **{f"median_{k}": round(v, 4) for k, v in medians.items()}}))  # fmt: skip


if __name__ == "__main__":
    main_bench()
