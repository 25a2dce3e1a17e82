"""Cells optimised together (sweep --batch_size): each picture comes out as it does alone,
keeps a run directory and checkpoint of its own, and fails on its own."""

import json
import math
from pathlib import Path

import pytest
import torch
from drawing import draw_content, draw_style
from PIL import Image, ImageOps
from steps import AtStep
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst.cli import main
from nst.errors import NSTError
from nst.many.batches import groups
from nst.many.sweep import run_sweep
from nst.many.sweep_file import contents_by_styles
from nst.run.pictures import images_of as data_of
from nst.run.stopping import RunInterrupted, Stop


@pytest.fixture
def photos(workdir: Path) -> Path:
    """Three photos of one size and a painting."""
    folder = workdir / "photos"
    folder.mkdir()
    base = draw_content()
    for name, image in {"a": base, "b": ImageOps.mirror(base), "c": ImageOps.flip(base)}.items():
        image.save(folder / f"{name}.png")
    draw_style().save(workdir / "painting.png")
    return folder


def sweep_args(config: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--contents", "photos/", "--styles", "painting.png", *extra]


def images_of(sweep_dir: Path) -> dict[str, torch.Tensor]:
    return {
        cell.name: torch.load(cell / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image"]
        for cell in sorted((sweep_dir / "cells").iterdir())
    }


def versions(workdir: Path) -> list[Path]:
    return sorted((workdir / "logs" / "tiny-batch").iterdir())


# 64-bit floats round alike in a batched convolution and in a single one, so there pictures
# come out of a batch exactly as alone, for both optimizers; in 32 bits they differ by rounding.
EXACT = ("--trainer.precision", "64-true", "--trainer.max_steps", "6")


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_pictures_together_come_out_as_alone(tiny_config, workdir, photos, optimizer):
    config = tiny_config(optimizer=optimizer, init="noise")  # noise: each picture draws its own start
    run_sweep(sweep_args(config, *EXACT))
    run_sweep(sweep_args(config, *EXACT, "--batch_size", "2"))
    alone, together = (images_of(v) for v in versions(workdir))
    assert alone.keys() == together.keys() == {"r0c0", "r1c0", "r2c0"}
    for cell in alone:
        assert torch.equal(alone[cell], together[cell]), cell
    assert not torch.equal(together["r0c0"], together["r1c0"])  # the pictures are not one another's
    result = json.loads((versions(workdir)[1] / "cells" / "r0c0" / "result.json").read_text())
    assert result["together_with"] == ["r1c0"] and result["losses"]["total"] > 0


def test_multi_scale_pictures_together_come_out_as_alone(tiny_config, workdir, photos):
    # Three phases, the middle one with its own optimizer: every picture enters each phase
    # (new size, targets and optimizer) in the same step as alone.
    phases = [{"size": 16, "steps": 3}, {"size": 23, "steps": 3, "optimizer": "adam", "lr": 0.05},
              {"size": 32, "steps": 2}]  # fmt: skip
    config = tiny_config(phases=phases)
    args = ("--trainer.precision", "64-true", "--trainer.max_steps", "8")
    run_sweep(sweep_args(config, *args))
    run_sweep(sweep_args(config, *args, "--batch_size", "3"))
    alone, together = (images_of(v) for v in versions(workdir))
    for cell in alone:
        assert together[cell].shape[-1] == 32 and torch.equal(alone[cell], together[cell]), cell


def test_in_32_bits_each_step_together_agrees_with_alone_to_rounding(tiny_config, workdir, photos):
    # Batched convolutions round differently from single ones; one Adam step apart, the
    # pictures agree to float32 rounding. Over many steps Adam amplifies that rounding at pixels
    # whose gradient is near zero (its step is about ±lr whatever the gradient's size), as it
    # does between any two devices; docs/many-pictures.md and bench/batch.py give the figures.
    config = tiny_config(optimizer="adam")
    for steps in ("1", "30"):
        run_sweep(sweep_args(config, "--trainer.max_steps", steps))
        run_sweep(sweep_args(config, "--trainer.max_steps", steps, "--batch_size", "3"))
    one_alone, one_together, alone, together = (images_of(v) for v in versions(workdir))
    for cell in alone:
        # 1.5e-5 measured at 32 px with oneDNN's channels-last convolutions, 1.5e-6 in NCHW.
        assert (one_alone[cell] - one_together[cell]).abs().max().item() < 5e-5, cell
        assert (alone[cell] - together[cell]).abs().mean().item() < 1 / 255, cell  # under one 8-bit level


def test_each_picture_keeps_a_run_directory_as_its_own_run_would(tiny_config, workdir, photos):
    config = tiny_config(optimizer="adam")
    run_sweep(sweep_args(config, *EXACT, "--trainer.log_every_n_steps", "2"))
    run_sweep(sweep_args(config, *EXACT, "--trainer.log_every_n_steps", "2", "--batch_size", "3"))
    alone, together = (v / "cells" / "r1c0" for v in versions(workdir))
    assert sorted(p.name for p in together.iterdir() if not p.name.startswith("events")) == sorted(
        p.name for p in alone.iterdir() if not p.name.startswith("events")
    )
    assert (alone / "final.png").read_bytes() == (together / "final.png").read_bytes()
    assert (alone / "hparams.yaml").read_text() == (together / "hparams.yaml").read_text()
    curves = [EventAccumulator(str(d)).Reload() for d in (alone, together)]
    tags = [{kind: sorted(names) for kind, names in c.Tags().items() if names} for c in curves]
    assert tags[0] == tags[1]
    for tag in tags[0]["scalars"]:
        steps = [[(e.step, e.value) for e in c.Scalars(tag)] for c in curves]
        assert steps[0] == steps[1], tag
    assert [e.step for e in curves[1].Images("image/current")] == [0, 6]


def stop_at(step: int, stop: Stop) -> AtStep:
    return AtStep(step, lambda trainer, module: stop.request())


@pytest.mark.parametrize(("first", "then"), [("2", "1"), ("1", "3")])
def test_a_stopped_batch_continues_in_batches_of_another_size(tiny_config, workdir, photos, first, then):
    config = tiny_config(optimizer="lbfgs")
    run_sweep(sweep_args(config, *EXACT))  # uninterrupted, one at a time
    stop = Stop()
    with pytest.raises(RunInterrupted):
        run_sweep(sweep_args(config, *EXACT, "--batch_size", first), stop=stop, callbacks=[stop_at(3, stop)])
    stopped = versions(workdir)[1]
    steps = {
        cell.name: torch.load(cell / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        for cell in (stopped / "cells").iterdir()
    }
    assert set(steps.values()) == {4}  # the first batch (or cell) stopped after the step it was asked in
    run_sweep(sweep_args(config, *EXACT, "--batch_size", then, "--ckpt_path", "last"))
    uninterrupted, resumed = images_of(versions(workdir)[0]), images_of(stopped)
    assert uninterrupted.keys() == resumed.keys()
    for cell in uninterrupted:
        assert torch.equal(uninterrupted[cell], resumed[cell]), cell


def test_a_picture_that_diverges_fails_alone_and_the_others_finish(tiny_config, workdir, photos, capsys):
    def poison(trainer, module) -> None:  # picture b's image goes NaN, in the batch and alone
        for painting, data in zip(module.paintings, data_of(trainer.datamodule), strict=True):
            if data.hparams.content.endswith("b.png"):
                painting.image.data.fill_(math.nan)

    with pytest.raises(NSTError, match=r"^1 of 3 cells failed \(r1c0: the loss became NaN"):
        run_sweep(
            sweep_args(tiny_config(optimizer="adam"), "--batch_size", "3"), callbacks=[AtStep(1, poison)]
        )
    assert "running them one at a time" in capsys.readouterr().out
    results = versions(workdir)[0] / "results"
    assert sorted(p.name for p in results.iterdir()) == ["a__painting.png", "c__painting.png"]


def test_only_cells_that_can_share_a_batch_share_one(tiny_config, workdir, photos):
    wide = draw_content().resize((48, 24), Image.Resampling.BICUBIC)  # another shape at data.size 32
    wide.save(photos / "d.png")
    config = tiny_config()
    sweep = contents_by_styles(["photos/"], ["painting.png"])

    def layers_of(cell):
        return [["--config", str(config)], cell.settings]

    made = groups(sweep.cells(), layers_of, lambda cell: workdir / "none" / cell.id, 2)
    assert [[cell.id for cell in group] for group in made] == [["r0c0", "r1c0"], ["r2c0"], ["r3c0"]]
    assert len(groups(sweep.cells(), layers_of, lambda cell: workdir / "none", 1)) == 4

    def animated(cell):
        return [*layers_of(cell), {"animation.every_n_steps": 2}]

    assert len(groups(sweep.cells(), animated, lambda cell: workdir / "none", 4)) == 4


def test_a_batch_size_that_is_no_count_is_refused_in_one_line(tiny_config, workdir, photos, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *sweep_args(tiny_config(), "--batch_size", "0")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch_size" in err and "whole number of cells ≥ 1" in err
