"""nst's optimisation against the PyTorch tutorial's loop, evaluation for evaluation.

    python bench/lbfgs_recovery.py --content photo.jpg --style painting.jpg [--size 128] [--evals 300]

The tutorial's way (facts from "Neural Transfer Using PyTorch", not its code): torch's L-BFGS with
its defaults (lr 1, 20 iterations and absolute tolerances per step, history 100), the image
clamped to [0, 1] before each evaluation, counted per evaluation. It is run here on nst's own
loss (the same layers, weights, targets and random VGG19), so that only the optimisation
differs. Against it: nst's L-BFGS (the steps the clamped image took, restarts, the best image
as the result), nst's L-BFGS with the strong-Wolfe line search (stopped at the same number of
evaluations), and Adam. Each starts from the photo. Prints, per style weight, the best loss
each reached, the loss of what it hands back, and seconds.
"""

import argparse
import json
import time

import torch
from lightning.pytorch import Callback

from nst.run.engine import Run
from nst.run.painting import initial_image


def objective(content: str, style: str, size: int, weight: float):
    """nst's loss for these images and weight, as a function of an image (and the start image)."""
    settings = {"data.content": content, "data.style": style, "data.size": size, "model.style_weight": weight,
                "model.weights": "random", "trainer.max_steps": 1, "trainer.enable_progress_bar": False}  # fmt: skip
    run = Run([settings], in_memory=True)
    run.fit()
    module = run.model
    objective = module.painting.objective  # the run's "how good is this picture", callable on any image
    start = initial_image("content", run.data.at(size))
    return (lambda image: objective.losses(objective.evaluate(module.vgg, image))["total"]), start


def tutorial(loss_of, start: torch.Tensor, evals: int) -> dict:
    image = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    history: list[float] = []

    def closure():
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        loss = loss_of(image)
        loss.backward()
        history.append(float(loss))
        return loss

    while len(history) < evals:  # as the tutorial counts: evaluations, whatever each step makes of them
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
        final = float(loss_of(image))
    history = history[:evals]
    return {
        "best": min(history),
        "at": history.index(min(history)) + 1,
        "handed_back": final,
        "evals": len(history),
    }


class _Budget(Callback):
    """Stops a run once L-BFGS has evaluated the loss ``evals`` times, and notes its best."""

    def __init__(self, evals: int) -> None:
        self.evals, self.used = evals, 0

    def on_train_batch_end(self, trainer, module, *args) -> None:
        inner = trainer.optimizers[0]
        state = inner.state.get(module.painting.image, {}) if isinstance(inner, torch.optim.LBFGS) else {}
        self.used = state.get("func_evals", trainer.global_step)
        if self.used >= self.evals:
            trainer.should_stop = True


def nst_run(content: str, style: str, size: int, weight: float, evals: int, **model) -> dict:
    budget = _Budget(evals)
    settings = {"data.content": content, "data.style": style, "data.size": size, "model.style_weight": weight,
                "model.weights": "random", "model.init": "content", "trainer.max_steps": evals,
                "trainer.enable_progress_bar": False, **{f"model.{k}": v for k, v in model.items()}}  # fmt: skip
    run = Run([settings], in_memory=True, callbacks=[budget])
    result = run.fit()
    painting, objective = run.model.painting, run.model.painting.objective
    with torch.no_grad():
        handed_back = float(objective.losses(objective.evaluate(run.model.vgg, result.tensor))["total"])
    return {"best": float(painting.best_loss), "handed_back": handed_back, "evals": budget.used,
            "steps": result.steps, "restarts": painting.restarts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--evals", type=int, default=300)
    parser.add_argument("--weights", type=float, nargs="+", default=[1e3, 1e6, 1e9])
    args = parser.parse_args()
    rows = []
    for weight in args.weights:
        loss_of, start = objective(args.content, args.style, args.size, weight)
        row = {"style_weight": weight}
        same = (args.content, args.style, args.size, weight, args.evals)
        contenders = {
            "tutorial": lambda loss_of=loss_of, start=start: tutorial(loss_of, start, args.evals),
            "nst_lbfgs": lambda same=same: nst_run(*same),
            "nst_wolfe": lambda same=same: nst_run(*same, line_search="strong_wolfe"),
            "nst_adam": lambda same=same: nst_run(*same, optimizer="adam"),
        }
        for name, go in contenders.items():
            began = time.perf_counter()
            row[name] = {**go(), "seconds": round(time.perf_counter() - began, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"\n{args.size} px, from the photo, {args.evals} evaluations; best loss / handed back (evaluations, s)"
    )
    for row in rows:
        cells = [f"{row['style_weight']:g}"]
        for name in ("tutorial", "nst_lbfgs", "nst_wolfe", "nst_adam"):
            r = row[name]
            cells.append(f"{r['best']:.4g} / {r['handed_back']:.4g} ({r['evals']}, {r['seconds']} s)")
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
