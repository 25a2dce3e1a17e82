"""Sweeps: a grid of real runs, its figure, resuming, and the shipped sweep files."""

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from steps import AtStep

from nst.cli import main
from nst.many.sweep import check_cells, read_sweep

SWEEPS = sorted((Path(__file__).parents[1] / "configs" / "sweeps").glob("*.yaml"))
REPO = Path(__file__).parents[1]


def write_sweep(workdir: Path) -> Path:
    path = workdir / "weights_init.yaml"
    spec = {
        "rows": {"key": "model.style_weight", "values": [1.0, 1.0e6]},
        "columns": {"key": "model.init", "values": ["noise", "content"]},
        "set": {"trainer.max_steps": 3},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def tiny_sweep(config: Path, workdir: Path, *extra: str) -> None:
    main(["sweep", "--config", str(config), "--sweep", str(write_sweep(workdir)), *extra])


def sweep_dir(workdir: Path) -> Path:
    return workdir / "logs" / "tiny-weights_init" / "version_0"


def test_a_2x2_sweep_lays_its_runs_out_in_one_figure(tiny_config, workdir):
    main(["sweep", "--config", str(tiny_config()), "--sweep", str(write_sweep(workdir))])
    out = sweep_dir(workdir)
    figure = Image.open(out / "figure.png").convert("RGB")
    boxes = json.loads((out / "figure.json").read_text())
    assert sorted(boxes) == ["r0c0", "r0c1", "r1c0", "r1c1"]
    for cell, box in boxes.items():
        final = Image.open(out / "cells" / cell / "final.png").convert("RGB")
        assert final.size == (32, 24)
        assert (box[2] - box[0], box[3] - box[1]) == final.size
        assert figure.crop(box).tobytes() == final.tobytes()  # the cell is the run's result, unscaled
    # Two rows and two columns, inside the figure, with room for labels on the left and top.
    assert boxes["r0c0"][1] == boxes["r0c1"][1] < boxes["r1c0"][1] == boxes["r1c1"][1]
    assert boxes["r0c0"][0] == boxes["r1c0"][0] < boxes["r0c1"][0] == boxes["r1c1"][0]
    assert boxes["r0c0"][0] > 0 and boxes["r0c0"][1] > 0
    assert max(b[2] for b in boxes.values()) <= figure.width
    assert max(b[3] for b in boxes.values()) <= figure.height
    # Each cell is a real run with its own curves, and the results differ as the settings do.
    for cell in boxes:
        assert list((out / "cells" / cell).glob("events.out.tfevents.*"))
        result = json.loads((out / "cells" / cell / "result.json").read_text())
        assert result["seconds"] > 0 and result["losses"]["total"] > 0
    assert (out / "losses.png").is_file() and Image.open(out / "losses.png").width > 400
    noise = Image.open(out / "cells" / "r0c0" / "final.png").tobytes()
    assert noise != Image.open(out / "cells" / "r0c1" / "final.png").tobytes()


def test_an_interrupted_sweep_resumes_without_redoing_finished_cells(
    tiny_config, workdir, monkeypatch, capsys
):
    config, sweep = str(tiny_config()), str(write_sweep(workdir))
    fits = []

    def interrupt_the_third_cell(trainer, module):
        fits.append("interrupted")
        os.kill(os.getpid(), signal.SIGINT)

    third = AtStep(
        1, interrupt_the_third_cell, when=lambda trainer: trainer.logger.version == "r1c0" and not fits
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", config, "--sweep", sweep], callbacks=[third])
    assert exit_info.value.code == 130
    assert "--ckpt_path last" in capsys.readouterr().err
    cells = sweep_dir(workdir) / "cells"
    done = {c: (cells / c / "result.json").stat().st_mtime_ns for c in ("r0c0", "r0c1")}
    assert not (cells / "r1c0" / "final.png").exists() and not (cells / "r1c1").exists()

    main(["sweep", "--config", config, "--sweep", sweep, "--ckpt_path", "last"])
    assert {c: (cells / c / "result.json").stat().st_mtime_ns for c in done} == done  # not run again
    assert all(len(list((cells / c).glob("events.out.tfevents.*"))) == 1 for c in done)
    assert (cells / "r1c0" / "config.resume1.yaml").is_file()  # continued from its checkpoint
    assert (cells / "r1c1" / "final.png").is_file()
    assert (sweep_dir(workdir) / "figure.png").is_file()
    assert not (workdir / "logs" / "tiny-weights_init" / "version_1").exists()


def test_a_stop_signal_in_a_cells_last_step_stops_the_sweep_after_that_cell(
    tiny_config, workdir, monkeypatch, capsys
):
    last_step_of_the_first_cell = AtStep(  # step 3 of 3 runs next
        2,
        lambda trainer, module: os.kill(os.getpid(), signal.SIGINT),
        when=lambda t: t.logger.version == "r0c0",
    )
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["sweep", "--config", str(tiny_config()), "--sweep", str(write_sweep(workdir))],
            callbacks=[last_step_of_the_first_cell],
        )
    assert exit_info.value.code == 130
    assert "--ckpt_path last" in capsys.readouterr().err
    cells = sweep_dir(workdir) / "cells"
    assert (cells / "r0c0" / "result.json").is_file()  # the cell finished its last step
    assert not (cells / "r0c1").exists()  # and the next one never started


def test_a_bad_cell_is_named_before_anything_runs(tiny_config, workdir, capsys):
    path = workdir / "layers.yaml"
    path.write_text(
        yaml.safe_dump({"rows": {"key": "model.style_layers", "values": [["conv1_1"], ["conv9_1"]]}})
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(tiny_config()), "--sweep", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sweep cell r1c0 (style_layers=conv9_1): unknown VGG19 layer 'conv9_1'")
    assert not (workdir / "logs").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("rows: [1, 2]\n", "'rows' needs a key and a non-empty list of values"),
        ("rows: {key: model.lr, values: [0.1]}\ncolour: red\n", "unknown entries ['colour']"),
        ("rows: {key: model.lr, values: [0.1, 0.2], labels: [a]}\n", "has 2 values but 1 labels"),
    ],
)
def test_bad_sweep_files(tiny_config, workdir, capsys, content, message):
    if content is not None:
        (workdir / "bad.yaml").write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(tiny_config()), "--sweep", "bad.yaml"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_there_are_the_seven_studies():
    assert [p.name.split("_")[0] for p in SWEEPS] == ["1", "2", "3", "4", "5", "6", "7"]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweep_validates(path, workdir, monkeypatch):
    monkeypatch.chdir(REPO)  # sweep files name their base config relative to the project
    sweep = read_sweep(path)
    assert sweep.config and (REPO / sweep.config).is_file()
    cells = check_cells(sweep, [["--config", sweep.config]], load_images=False)
    assert len(cells) == len(sweep.rows.values) * (len(sweep.columns.values) if sweep.columns else 1)


def test_a_sweep_animates_its_grid(tiny_config, workdir):
    tiny_sweep(tiny_config(), workdir, "--animation.every_n_steps", "1")
    out = sweep_dir(workdir)
    assert (out / "cells" / "r0c0" / "animation.gif").is_file()  # each cell's own
    with Image.open(out / "animation.gif") as gif:  # and the grid's: steps 0 to 3
        assert gif.n_frames == 4
        assert gif.size == Image.open(out / "figure.png").size


def test_the_cells_share_one_network_and_one_set_of_targets(tiny_config, workdir, monkeypatch):
    from nst.numerics import reuse
    from nst.run.objectives import Objectives

    loads, target_passes = [], []
    real_load, real_features_of = reuse.load_weights, Objectives.features_of
    monkeypatch.setattr(reuse, "load_weights", lambda *a: (loads.append(a), real_load(*a))[1])
    monkeypatch.setattr(
        Objectives,
        "features_of",
        lambda self, image, make: (target_passes.append(1), real_features_of(self, image, make))[1],
    )
    main(["sweep", "--config", str(tiny_config()), "--sweep", str(write_sweep(workdir))])
    assert len(loads) == 1  # four cells, one VGG
    assert len(target_passes) == 2  # one content and one style pass for all four cells


def test_a_cell_in_another_precision_does_not_change_the_network_of_the_next(tiny_config, workdir):
    path = workdir / "precision.yaml"
    path.write_text(yaml.safe_dump({"rows": {"key": "trainer.precision", "values": ["64-true", "32-true"]}}))
    main(["sweep", "--config", str(tiny_config()), "--sweep", str(path)])
    cells = workdir / "logs" / "tiny-precision" / "version_0" / "cells"
    assert (cells / "r1c0" / "final.png").is_file()  # a float64 network would have failed here


def test_resuming_after_the_sweep_file_changed_is_refused(tiny_config, workdir, capsys):
    config, sweep = str(tiny_config()), write_sweep(workdir)
    main(["sweep", "--config", config, "--sweep", str(sweep)])
    sweep.write_text(sweep.read_text().replace("noise", "style"))
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", config, "--sweep", str(sweep), "--ckpt_path", "last"])
    assert exit_info.value.code == 2
    assert "was run with another sweep file or other arguments" in capsys.readouterr().err


def test_a_problem_found_at_setup_is_named_before_anything_runs(tiny_config, workdir, capsys):
    path = workdir / "init.yaml"
    path.write_text(yaml.safe_dump({"rows": {"key": "model.init", "values": ["noise", "style"]}}))
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(tiny_config()), "--sweep", str(path), "--data.style", "null"])
    err = capsys.readouterr().err
    assert "error: sweep cell r1c0 (init=style): model.init is style but there is no data.style" in err
    assert not (workdir / "logs").exists()


def test_a_sweep_with_and_without_a_style_image(tiny_config, workdir, images):
    path = workdir / "style.yaml"
    path.write_text(yaml.safe_dump({"rows": {"key": "data.style", "values": [None, str(images["style"])]}}))
    main(["sweep", "--config", str(tiny_config()), "--sweep", str(path), "--trainer.max_steps", "2"])
    out = workdir / "logs" / "tiny-style" / "version_0"
    assert (out / "figure.png").is_file()
    assert json.loads((out / "cells" / "r0c0" / "result.json").read_text())["losses"]["style"] == 0


def test_output_path_is_refused_for_a_sweep(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit):
        tiny_sweep(tiny_config(), workdir, "--output.path", "a.png")
    assert "--output.* cannot be given to a sweep" in capsys.readouterr().err


def test_a_shipped_sweep_finds_its_config_from_any_directory(workdir):
    # Its config is named relative to the sweep file, so the working directory does not matter.
    sweep = read_sweep(REPO / "configs" / "sweeps" / "4_style_weight_x_init.yaml")
    assert Path(sweep.config).resolve() == (REPO / "configs" / "starry.yaml").resolve()


def test_the_command_line_wins_over_the_sweep_files_set(tiny_config, workdir, capsys):
    # The sweep file says 3 steps; the command line, typed last, says 2.
    tiny_sweep(tiny_config(), workdir, "--trainer.max_steps", "2")
    assert (
        "--trainer.max_steps 2 from the command line replaces the sweep file's 3" in capsys.readouterr().out
    )
    for cell in ("r0c0", "r1c1"):
        saved = torch.load(
            sweep_dir(workdir) / "cells" / cell / "checkpoints" / "last.ckpt", weights_only=True
        )
        assert saved["global_step"] == 2


def test_an_axis_key_on_the_command_line_is_refused(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tiny_sweep(tiny_config(), workdir, "--model.init", "style")
    assert exit_info.value.code == 2
    assert "--model.init is what the sweep varies (model.init)" in capsys.readouterr().err
    assert not (workdir / "logs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the sweep with --sweep FILE"),
        (["--sweep", "s.yaml", "--ckpt_path", "best"], "a sweep resumes with --ckpt_path last"),
    ],
)
def test_bad_sweep_arguments_get_one_line(workdir, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {err.strip().removeprefix('error: ')}"] and message in err
