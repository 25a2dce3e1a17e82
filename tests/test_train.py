"""Training a style network (nst train): it learns, it resumes exactly, two processes with a
batch of 2 each equal one with a batch of 4, and bad settings get one line."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from drawing import draw_content, draw_style
from lightning.pytorch import Callback
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst.cli import main
from nst.train.network import read_network_file
from nst.train.run import TrainRun

ROOT = Path(__file__).resolve().parent.parent
# A small network and 32 px crops: a step takes milliseconds on a CPU.
SMALL = ["--model.weights", "random", "--model.width", "8", "--model.blocks", "1", "--data.size", "32"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):  # drawn scenes of different sizes and shapes
        draw_content(48 + 5 * i, 40 + 3 * i).rotate(30 * i).save(folder / f"photo{i:02d}.png")
    draw_style(64).save(tmp_path / "style.png")
    return folder


def settings(photos: Path, *more: str) -> list[str]:
    return [
        *SMALL,
        "--data.photos",
        str(photos),
        "--data.style",
        str(photos.parent / "style.png"),
        "--data.val_photos",
        "2",
        "--data.workers",
        "0",
        *more,
    ]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_network_file(run_dir / "network.pt")["state_dict"]


def curve(run_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return [event.value for event in events.Scalars(tag)]


def test_training_lowers_the_held_out_loss_and_writes_the_network(photos, tmp_path):
    result = TrainRun(
        [settings(photos, "--trainer.max_steps", "40", "--trainer.val_check_interval", "4")],
        save_dir=tmp_path / "logs",
    ).fit()
    held_out = curve(result.run_dir, "val/total")
    assert len(held_out) == 10
    assert held_out[-1] < 0.7 * held_out[0], held_out
    assert result.network == result.run_dir / "network.pt"
    about = read_network_file(result.network)
    assert about["architecture"] == {"width": 8, "blocks": 1}
    assert about["about"]["steps"] == 40
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(result.run_dir), size_guidance={"images": 0}).Reload()
    assert len(events.Images("val/paintings")) == 10  # the held-out photos, painted at each validation


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step, self.run = step, None

    def on_train_batch_end(self, trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            self.run.stop()


def test_a_stopped_run_continues_exactly_as_one_that_never_stopped(photos, tmp_path):
    whole = TrainRun([settings(photos, "--trainer.max_steps", "8")], save_dir=tmp_path / "whole").fit()
    stop = StopAt(3)
    first = TrainRun(
        [settings(photos, "--trainer.max_steps", "8")], save_dir=tmp_path / "parts", callbacks=[stop]
    )
    stop.run = first
    stopped = first.fit()
    assert stopped.stopped is not None and stopped.steps == 3
    assert "--ckpt_path last" not in str(stopped.stopped)  # the message; the CLI adds the hint
    assert read_network_file(stopped.network)["about"]["steps"] == 3
    # Continued with worker processes: the crops and their order do not depend on them.
    rest = TrainRun(
        [settings(photos, "--trainer.max_steps", "8", "--data.workers", "2", "--ckpt_path", "last")],
        save_dir=tmp_path / "parts",
    ).fit()
    assert rest.run_dir == stopped.run_dir and rest.steps == 8
    a, b = weights(whole.run_dir), weights(rest.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "train", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# 2 processes with a batch of 2 each average gradients that 1 process with a batch of 4 takes
# over the same 4 crops: equal up to the order of float additions (measured in-process: the
# gradients agree to 1e-7 of their size). Adam's first steps are g/|g| elementwise, so weights
# whose true gradient is about zero move by ±lr either way, at random: after 6 steps the two
# runs' weights differ by 0.4 % of the distance training moved them (2026-12-07, this CPU,
# both ways of starting the processes). Without the averaging (1 process with a batch of 2) they
# differ by 75 %. The bound sits between, five times the measured difference.
DDP_TOLERANCE = 0.02


def moved_apart(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """How far apart two trained networks are, relative to how far training moved ``a``."""
    from lightning.pytorch import seed_everything

    from nst.train.architecture import TransformNet

    seed_everything(0, verbose=False)  # the network before training, as the run's seed makes it
    start = TransformNet(8, 1).state_dict()
    apart = sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5
    return float(apart / sum(((a[k] - start[k]) ** 2).sum() for k in a) ** 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["devices", "machines"])
def test_two_processes_with_batch_2_equal_one_with_batch_4(photos, tmp_path, how):
    steps = ["--trainer.max_steps", "6", "--trainer.accelerator", "cpu"]
    one = TrainRun([settings(photos, *steps, "--data.batch_size", "4")], save_dir=tmp_path / "one").fit()
    two = settings(photos, *steps, "--data.batch_size", "2", "--trainer.strategy", "ddp")
    two += ["--trainer.logger.init_args.save_dir", str(tmp_path / "two")]
    if how == "devices":  # Lightning's launcher starts the second process
        runs = [_train([*two, "--trainer.devices", "2"], tmp_path)]
    else:  # two machines of one device each, as SLURM or torchrun would start them
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
        machine = [*two, "--trainer.num_nodes", "2", "--trainer.devices", "1"]
        runs = [_train(machine, tmp_path, {**env, "NODE_RANK": str(n)}) for n in (0, 1)]
    for run in runs:
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out[-3000:]
    made = list((tmp_path / "two").glob("*/version_*"))
    assert len(made) == 1, made  # one run directory, written by the first process only
    assert moved_apart(weights(one.run_dir), weights(made[0])) < DDP_TOLERANCE
    alone = TrainRun([settings(photos, *steps, "--data.batch_size", "2")], save_dir=tmp_path / "alone").fit()
    assert moved_apart(weights(one.run_dir), weights(alone.run_dir)) > 10 * DDP_TOLERANCE


def _cli_error(args: list[str], capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["train", *args])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty folder", "no photos in"),
        ("missing folder", "does not exist"),
        ("only unreadable files", "could not be read"),
        ("no style", "give data.style"),
        ("too few photos", "training needs more than data.val_photos"),
        ("crops too small", "data.size must be at least 32"),
        (
            "crops beyond any memory",
            "data.size 1000000 makes each crop 1000000×1000000 px, over the 100 megapixels",
        ),
        ("a style beyond any memory", "data.style_size 1000000 makes the style image"),
        ("no network", "model.width must be at least 1"),
        ("accumulated batches", "accumulate_grad_batches does not apply to nst train"),
        ("half precision throughout", "bf16-true is not supported by nst train"),
        ("a picture's checkpoint", "the checkpoint holds no style network"),
        (
            "a torch file",
            "not a checkpoint Lightning wrote; give --ckpt_path the checkpoints/last.ckpt of an nst train run",
        ),
        ("a negative patience", "EarlyStopping's patience must be 0 or more"),
        ("a misspelt option", "python cli.py train --help"),
    ],
)
def test_bad_training_settings_get_one_line_and_leave_nothing(
    photos, tmp_path, capsys, case, expected, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = settings(photos, "--trainer.max_steps", "2")
    if case == "empty folder":
        args += ["--data.photos", str(empty)]
    elif case == "missing folder":
        args += ["--data.photos", str(tmp_path / "nowhere")]
    elif case == "only unreadable files":
        for i in range(5):
            (empty / f"broken{i}.jpg").write_bytes(b"not a photo")
        args += ["--data.photos", str(empty), "--data.batch_size", "1"]
    elif case == "no style":
        args += ["--data.style", ""]
    elif case == "too few photos":
        args += ["--data.val_photos", "12"]
    elif case == "crops too small":
        args += ["--data.size", "16"]
    elif case == "crops beyond any memory":
        args += ["--data.size", "1000000"]
    elif case == "a style beyond any memory":
        args += ["--data.style_size", "1000000"]
    elif case == "no network":
        args += ["--model.width", "0"]
    elif case == "accumulated batches":
        args += ["--trainer.accumulate_grad_batches", "2"]
    elif case == "half precision throughout":
        args += ["--trainer.precision", "bf16-true"]
    elif case == "a picture's checkpoint":
        picture = tmp_path / "picture.ckpt"  # what a picture's run keeps: its image, no network
        torch.save(
            {"pytorch-lightning_version": "2.6.0", "state_dict": {"image": torch.zeros(1, 3, 8, 8)}}, picture
        )
        args += ["--ckpt_path", str(picture)]
    elif case == "a torch file":
        torch.save({"a": 1}, tmp_path / "dict.ckpt")
        args += ["--ckpt_path", str(tmp_path / "dict.ckpt")]
    elif case == "a negative patience":
        args += [
            "--trainer.callbacks+=EarlyStopping",
            "--trainer.callbacks.monitor=loss/val",
            "--trainer.callbacks.patience=-1",
        ]
    elif case == "a misspelt option":
        args += ["--model.widht", "3"]
    assert expected in _cli_error(args, capsys)
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("version_*"))


def test_continuing_with_another_network_shape_is_refused_in_one_line(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    TrainRun([settings(photos, "--trainer.max_steps", "2")]).fit()
    err = _cli_error(
        [*settings(photos, "--trainer.max_steps", "4", "--model.width", "16", "--ckpt_path", "last")], capsys
    )
    assert "model.width 8" in err


def test_a_continued_run_takes_the_learning_rate_given_now(photos, tmp_path):
    TrainRun([settings(photos, "--trainer.max_steps", "2")], save_dir=tmp_path).fit()
    rest = TrainRun(
        [settings(photos, "--trainer.max_steps", "3", "--model.lr", "1e-5", "--ckpt_path", "last")],
        save_dir=tmp_path,
    )
    rest.fit()
    saved = torch.load(rest.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-5


def test_unreadable_photos_are_skipped_and_counted(photos, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"not a photo")
    Image.new("RGB", (4, 4)).save(photos / "tiny.png")  # readable: cropped after scaling up
    result = TrainRun(
        [settings(photos, "--trainer.max_steps", "10", "--data.batch_size", "2")], save_dir=tmp_path / "logs"
    ).fit()
    assert result.steps == 10
    said = capsys.readouterr()
    assert "skipped 1 unreadable photo in epoch 0: photos" in (said.out + said.err).replace(
        str(photos.parent) + "/", ""
    )
    assert curve(result.run_dir, "data/skipped")[0] == 1
