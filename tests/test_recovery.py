"""Never a blown-up picture: the best image is what a run hands back, L-BFGS restarts from it
after a leap, learns the steps the clamped image took, may search along its lines, and a run
may stop early on a plateau."""

import json

import pytest
import torch
import yaml
from steps import AtStep
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst.cli import main
from nst.errors import NSTError
from nst.numerics.projection import free_gradient, project
from nst.run.engine import Run


def scramble(trainer, module) -> None:
    """A leap away: the image goes black, far above anything the run had reached."""
    with torch.no_grad():
        module.image.zero_()


def run(config, *args: str, callbacks=()):
    return Run([["--config", str(config), *args]], callbacks=callbacks).fit()


def test_the_result_is_the_best_image_not_a_last_leap_away(tiny_config, workdir):
    # Adam (no restarts): the image is scrambled before the last step, so the last image is noise.
    config = tiny_config(optimizer="adam", lr=0.01)
    watched = {}

    def keep(trainer, module) -> None:
        watched["best"] = module.painting.best.clone()
        watched["best_loss"] = float(module.painting.best_loss)
        scramble(trainer, module)

    result = run(config, "--trainer.max_steps", "8", callbacks=[AtStep(7, keep)])
    assert torch.equal(result.tensor, watched["best"].cpu())  # the best before the leap
    assert result.losses["total"] == pytest.approx(watched["best_loss"], rel=1e-5)  # its losses, reported
    events = EventAccumulator(str(result.run_dir)).Reload()
    assert events.Scalars("loss/total")[-1].value > watched["best_loss"]  # the last step's: the black image's
    assert events.Scalars("final/total")[-1].value == pytest.approx(watched["best_loss"], rel=1e-5)
    best = [e.value for e in events.Scalars("loss/best")]
    totals = [e.value for e in events.Scalars("loss/total")]
    assert all(b <= t + 1e-9 for b, t in zip(best, totals, strict=True)) and best == sorted(
        best, reverse=True
    )


def test_lbfgs_restarts_from_the_best_image_after_a_leap(tiny_config, workdir):
    config = tiny_config(optimizer="lbfgs", lbfgs_restart=1.5)  # a constructed leap: far enough
    before = {}

    def leap(trainer, module) -> None:
        before["best"] = float(module.painting.best_loss)
        scramble(trainer, module)

    def after(trainer, module) -> None:
        before["restarts"] = module.painting.restarts
        before["image_is_best"] = torch.equal(module.image.detach(), module.painting.best)

    result = run(config, "--trainer.max_steps", "10", callbacks=[AtStep(5, leap), AtStep(6, after)])
    assert before["restarts"] == 1 and before["image_is_best"]  # back at the best image, history gone
    assert result.losses["total"] <= before["best"]  # and it went on from there
    events = EventAccumulator(str(result.run_dir)).Reload()
    assert events.Scalars("lbfgs/restarts")[-1].value == 1


def test_no_restart_when_they_are_switched_off_but_the_result_is_still_the_best(tiny_config, workdir):
    config = tiny_config(optimizer="lbfgs", lbfgs_restart=None)
    seen = {}
    result = run(
        config,
        "--trainer.max_steps",
        "8",
        callbacks=[AtStep(5, scramble), AtStep(7, lambda t, m: seen.update(r=m.painting.restarts))],
    )
    assert seen["r"] == 0 and result.losses  # nothing restarted


def test_a_resumed_run_with_a_restart_equals_the_uninterrupted_one(tiny_config, workdir):
    config = tiny_config(optimizer="lbfgs", lbfgs_restart=1.5)
    whole = run(config, "--trainer.max_steps", "10", callbacks=[AtStep(3, scramble)])
    assert EventAccumulator(str(whole.run_dir)).Reload().Scalars("lbfgs/restarts")[-1].value == 1
    stop = {}

    def stop_now(trainer, module) -> None:
        stop["run"].stop()

    first = Run(
        [["--config", str(config), "--trainer.max_steps", "10"]],
        callbacks=[AtStep(3, scramble), AtStep(6, stop_now)],
    )
    stop["run"] = first
    stopped = first.fit()
    assert stopped.stopped is not None
    resumed = Run([["--config", str(config), "--trainer.max_steps", "10", "--ckpt_path", "last"]]).fit()
    assert torch.equal(whole.tensor, resumed.tensor)


def test_lbfgs_remembers_the_step_the_clamped_image_took():
    image = torch.nn.Parameter(torch.tensor([0.5, 0.95, 0.02]))
    optimizer = torch.optim.LBFGS([image], lr=1, max_iter=1, tolerance_grad=0, tolerance_change=0)

    def closure():
        optimizer.zero_grad()
        loss = (image * torch.tensor([1.0, -10.0, 10.0])).sum()  # pushes pixel 2 up, pixel 3 down
        loss.backward()
        return loss

    before = image.detach().clone()
    optimizer.step(closure)
    project(image, optimizer, before)
    state = optimizer.state[image]
    assert torch.all((image >= 0) & (image <= 1))
    assert torch.allclose(
        state["d"] * state["t"], image.detach() - before
    )  # the step taken, not the one meant


def test_held_pixels_pushed_outwards_lose_their_gradient():
    image = torch.nn.Parameter(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5]))
    image.grad = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0])  # descent goes to -grad
    free_gradient(image)
    assert image.grad.tolist() == [0.0, -1.0, 0.0, 1.0, 1.0]


def test_the_strong_wolfe_line_search_evaluates_more_and_goes_downhill(tiny_config, workdir):
    config = tiny_config(optimizer="lbfgs", line_search="strong_wolfe")
    counted = {}

    def count(trainer, module) -> None:
        counted["evals"] = trainer.optimizers[0].state[module.image]["func_evals"]

    result = run(config, "--trainer.max_steps", "6", callbacks=[AtStep(5, count)])
    assert counted["evals"] > 5  # several evaluations in some steps
    events = EventAccumulator(str(result.run_dir)).Reload()
    totals = [e.value for e in events.Scalars("loss/total")]
    assert totals == sorted(totals, reverse=True)


def test_lbfgs_restart_must_be_above_one(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tiny_config(lbfgs_restart=0.5))])
    assert "model.lbfgs_restart must be a number above 1" in capsys.readouterr().err
    with pytest.raises(NSTError):
        Run([["--config", str(tiny_config(lbfgs_restart=1.0))]])


@pytest.mark.parametrize("min_steps", [None, 12])
def test_early_stopping_from_yaml_ends_the_run_with_its_result_and_reason(
    tiny_config, workdir, capsys, min_steps
):
    config = tiny_config(optimizer="adam", lr=1e-9)  # a learning rate that makes no progress
    settings = yaml.safe_load(config.read_text())
    settings["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.EarlyStopping",
         "init_args": {"monitor": "loss/best", "patience": 3, "min_delta": 1e-3, "mode": "min"}}
    ]  # fmt: skip
    settings["trainer"]["max_steps"] = 50
    if min_steps is not None:  # a run is one epoch, and Lightning's min_steps wants a finished one too
        settings["trainer"]["min_steps"] = min_steps
    config.write_text(yaml.safe_dump(settings))
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "stopped early at step" in out and "of 50" in out and "loss/best" in out
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert (run_dir / "final.png").is_file()
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step < 10 if min_steps is None else step == min_steps


def test_a_sweep_records_which_cells_stopped_early(tiny_config, workdir):
    config = tiny_config(optimizer="adam")
    sweep = workdir / "lr.yaml"
    sweep.write_text(yaml.safe_dump({
        "rows": {"key": "model.lr", "values": [1e-9, 0.05]},
        "set": {"trainer.max_steps": 40, "trainer.callbacks": [
            {"class_path": "lightning.pytorch.callbacks.EarlyStopping",
             "init_args": {"monitor": "loss/best", "patience": 3, "min_delta": 1e-3}}]},
    }))  # fmt: skip
    main(["sweep", "--config", str(config), "--sweep", str(sweep)])
    cells = workdir / "logs" / "tiny-lr" / "version_0" / "cells"
    stuck = json.loads((cells / "r0c0" / "result.json").read_text())
    assert stuck["stopped_early"].startswith("stopped early at step")
