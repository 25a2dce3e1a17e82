"""Multi-scale runs (model.phases): sizes, starts, targets, optimizers, resume, TensorBoard."""

import os
import signal

import pytest
import torch
from lightning.pytorch import Callback
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst import StyleTransfer, StyleTransferData
from nst.cli import main
from nst.images import resize_tensor
from nst.numerics.losses import gram
from nst.run.schedule import Schedule, phase_at

# 16 → 23 → 32 px, a factor of √2 a phase; the middle phase with its own optimizer and lr.
PHASES = [
    {"size": 16, "steps": 3},
    {"size": 23, "steps": 3, "optimizer": "adam", "lr": 0.05},
    {"size": 32, "steps": 2},
]


def run(*args: str) -> None:
    main(["fit", *args])


from steps import AtStep  # noqa: E402


def phased(config, phases=PHASES) -> list[str]:
    # The tiny config asks for 4 steps; a multi-scale run lasts as long as its phases.
    return ["--config", str(config), "--trainer.max_steps", str(sum(p["steps"] for p in phases))]


def checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def scalars(run_dir, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


class Recorder(Callback):
    """What each step saw: the image it started from and ended with, the optimizer, the targets."""

    def __init__(self) -> None:
        self.start: dict[int, torch.Tensor] = {}
        self.end: dict[int, torch.Tensor] = {}
        self.optimizer: dict[int, tuple[str, float]] = {}
        self.target_error: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # After the backward pass, before the update: the image the step started from
        # (L-BFGS evaluates once per step here, so this fires once per step).
        self.start.setdefault(trainer.global_step, pl_module.image.detach().clone())
        group = trainer.optimizers[0].param_groups[0]
        self.optimizer[trainer.global_step] = (type(trainer.optimizers[0]).__name__, group["lr"])

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        step = trainer.global_step - 1
        self.end[step] = pl_module.image.detach().clone()
        # The style targets in use equal the Grams of the style image at this phase's size.
        style = trainer.datamodule.at(max(pl_module.image.shape[-2:])).styles[0]
        with torch.no_grad():
            features = pl_module.vgg(style)
        self.target_error[step] = max(
            (gram(features[n]) - pl_module.painting.objective.targets.style[n]["gram"]).abs().max().item()
            for n in pl_module.style_layers
        )


def test_each_phase_runs_at_its_size_from_the_last_result_upscaled(tiny_config, workdir):
    recorder = Recorder()
    main(["fit", *phased(tiny_config(phases=PHASES))], callbacks=[recorder])

    sizes = {step: max(image.shape[-2:]) for step, image in recorder.end.items()}
    assert sizes == {s: PHASES[phase_at(PHASES, s)]["size"] for s in range(8)}
    for first in (3, 6):  # each phase starts from the previous result, upscaled
        shape = tuple(recorder.start[first].shape[-2:])
        assert torch.equal(recorder.start[first], resize_tensor(recorder.end[first - 1], shape))
    assert max(recorder.target_error.values()) < 1e-6  # style targets of each phase's own size
    kinds = {s: recorder.optimizer[s] for s in range(8)}
    assert kinds == {s: ("Adam", 0.05) if 3 <= s < 6 else ("LBFGS", 1.0) for s in range(8)}

    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert Image.open(run_dir / "final.png").size == tuple(reversed(recorder.end[7].shape[-2:]))
    assert max(Image.open(run_dir / "final.png").size) == 32
    # One loss curve over all phases, and the phases as an exact staircase beside it.
    assert sorted(scalars(run_dir, "loss/total")) == list(range(8))
    assert scalars(run_dir, "phase/size") == {0: 16, 2: 16, 3: 23, 5: 23, 6: 32, 7: 32}


def test_one_phase_at_the_full_size_is_a_run_without_phases(tiny_config, workdir):
    run("--config", str(tiny_config("plain")))
    run("--config", str(tiny_config("phased", phases=[{"size": 32, "steps": 4}])))
    plain, phased = (workdir / "logs" / name / "version_0" for name in ("plain", "phased"))
    assert torch.equal(checkpoint(plain)["state_dict"]["image"], checkpoint(phased)["state_dict"]["image"])
    assert (plain / "final.png").read_bytes() == (phased / "final.png").read_bytes()


def test_a_phase_can_have_its_own_weights(tiny_config, workdir):
    phases = [{"size": 16, "steps": 2, "style_weight": 0.0}, {"size": 32, "steps": 2}]
    run("--config", str(tiny_config(phases=phases)))
    style = scalars(workdir / "logs" / "tiny" / "version_0", "loss/style")
    assert style[0] == style[1] == 0 and style[2] > 0 and style[3] > 0


# A signal seen after step N is acted on after step N + 1: checkpoints at step 2 (inside the
# first phase), 3 (its last step), 4 (inside the second) and 6 (the second's last step);
# and in float64, where a checkpoint read into the float32 image of setup would be rounded.
@pytest.mark.parametrize(
    ("stop_after", "precision"),
    [(1, "32-true"), (2, "32-true"), (3, "32-true"), (5, "32-true"), (3, "64-true")],
)
def test_a_run_stopped_in_any_phase_resumes_exactly(tiny_config, workdir, monkeypatch, stop_after, precision):
    run(*phased(tiny_config("whole", phases=PHASES)), "--trainer.precision", precision)

    stop = AtStep(stop_after, lambda trainer, module: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(SystemExit):
        main(
            ["fit", *phased(tiny_config("stopped", phases=PHASES)), "--trainer.precision", precision],
            callbacks=[stop],
        )
    stopped = workdir / "logs" / "stopped" / "version_0"
    saved = checkpoint(stopped)
    assert saved["global_step"] == stop_after + 1
    phase = phase_at(PHASES, saved["global_step"] - 1)
    assert saved["nst_phase"]["index"] == phase  # the checkpoint records its phase
    assert max(saved["state_dict"]["image"].shape[-2:]) == PHASES[phase]["size"]

    run(
        *phased(tiny_config("stopped", phases=PHASES)),
        "--trainer.precision",
        precision,
        "--ckpt_path",
        "last",
    )
    whole = workdir / "logs" / "whole" / "version_0"
    assert torch.equal(checkpoint(whole)["state_dict"]["image"], checkpoint(stopped)["state_dict"]["image"])
    assert (whole / "final.png").read_bytes() == (stopped / "final.png").read_bytes()
    assert sorted(scalars(stopped, "loss/total")) == list(range(8))
    assert scalars(stopped, "phase/size") == scalars(whole, "phase/size")


def test_resuming_with_other_phases_is_refused(tiny_config, workdir, monkeypatch, capsys):
    stop = AtStep(4, lambda trainer, module: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(SystemExit):
        main(["fit", *phased(tiny_config(phases=PHASES))], callbacks=[stop])
    other = [{**PHASES[0], "steps": 2}, *PHASES[1:]]
    with pytest.raises(SystemExit) as exit_info:
        run(*phased(tiny_config(phases=other), other), "--ckpt_path", "last")
    assert exit_info.value.code == 2
    assert "made with a different model.phases" in capsys.readouterr().err


def test_the_animation_of_a_multi_scale_run_has_frames_of_one_size(tiny_config, workdir):
    run(*phased(tiny_config(phases=PHASES)), "--animation.every_n_steps", "1")
    run_dir = workdir / "logs" / "tiny" / "version_0"
    final = Image.open(run_dir / "final.png").size
    with Image.open(run_dir / "animation.gif") as gif:
        assert gif.size == final and gif.n_frames == 9
    assert {Image.open(p).size for p in (run_dir / "frames").glob("*.png")} != {final}  # sizes differed


def test_a_phase_with_another_optimizer_gets_that_optimizers_default_lr():
    model = StyleTransfer(weights="random", optimizer="lbfgs", lr=0.8, phases=[
        {"size": 16, "steps": 1, "optimizer": "adam"},
        {"size": 24, "steps": 1, "optimizer": "adam", "lr": 0.1},
        {"size": 32, "steps": 1},
    ])  # fmt: skip
    schedule = Schedule.of(model.hparams, long_side=32, max_steps=3)
    assert [phase.lr for phase in schedule] == [0.02, 0.1, 0.8]  # not L-BFGS's 0.8 for Adam


def test_the_images_follow_the_phase_size(images):
    data = StyleTransferData(
        content=str(images["content"]), style=str(images["style"]), size=32, style_scale=0.5
    )
    data.setup("fit")
    assert torch.equal(data.at(32).content, data.content) and torch.equal(data.at(32).styles[0], data.style)
    assert max(data.at(16).content.shape[-2:]) == 16 and max(data.at(16).styles[0].shape[-2:]) == 8
    assert data.at(16).shape == tuple(data.at(16).content.shape[-2:])

    sized = StyleTransferData(style=str(images["style"]), size=[40, 20], style_size=64)
    sized.setup("fit")
    assert sized.shape == (20, 40) and sized.at(20).shape == (10, 20)
    assert max(sized.at(20).styles[0].shape[-2:]) == 32  # style_size scales with the phase too


def test_the_progress_bar_shows_the_phase(tiny_config, workdir, capsys):
    run(*phased(tiny_config(phases=PHASES)), "--trainer.enable_progress_bar", "true")
    out = capsys.readouterr().out
    assert "phase 1/3 at 16 px" in out and "phase 3/3 at 32 px" in out
