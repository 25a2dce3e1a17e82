"""Batches: folders of pictures as sweep axes, their results, failed cells, and the cells spread
over processes by Lightning's launcher (real processes, gloo-free, on this CPU)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from drawing import draw_content, draw_style
from PIL import Image, ImageOps

from nst.cli import main
from nst.many.sweep_file import read_sweep

CLI = Path(__file__).resolve().parents[1] / "cli.py"


@pytest.fixture
def photos(workdir: Path) -> Path:
    """Five photos (one drawing, turned five ways) in a folder, and one painting beside it."""
    folder = workdir / "photos"
    folder.mkdir()
    base = draw_content()
    for name, image in {
        "a": base, "b": ImageOps.mirror(base), "c": ImageOps.flip(base),
        "d": ImageOps.invert(base), "e": ImageOps.grayscale(base).convert("RGB"),
    }.items():  # fmt: skip
        image.save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image: left out of the batch")
    draw_style().save(workdir / "painting.png")
    return folder


def batch_dir(workdir: Path, version: int = 0) -> Path:
    return workdir / "logs" / "tiny-batch" / f"version_{version}"


def image_of(cell_dir: Path) -> torch.Tensor:
    return torch.load(cell_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image"]


def test_a_folder_or_a_glob_is_its_images_sorted_by_name(workdir, photos):
    sweep = workdir / "batch.yaml"
    sweep.write_text(yaml.safe_dump({"rows": {"key": "data.content", "values": "photos/"},
                                     "columns": {"key": "data.style", "values": ["painting.png", "photos/[ab].png"]}}))  # fmt: skip
    read = read_sweep(sweep)
    assert read.rows.values == [f"photos/{n}.png" for n in "abcde"]
    assert read.rows.labels == list("abcde")
    assert read.columns.values == ["painting.png", "photos/a.png", "photos/b.png"]
    (photos / "empty").mkdir()
    sweep.write_text(yaml.safe_dump({"rows": {"key": "data.content", "values": "photos/empty"}}))
    with pytest.raises(Exception, match="photos/empty holds no images"):
        read_sweep(sweep)


def test_every_photo_in_every_style_without_a_sweep_file(tiny_config, workdir, photos, capsys):
    main(["sweep", "--config", str(tiny_config()), "--contents", "photos/", "--styles", "painting.png",
          "photos/a.png", "--trainer.max_steps", "2"])  # fmt: skip
    results = batch_dir(workdir) / "results"
    names = sorted(p.name for p in results.iterdir())
    assert names == [f"{p}__{s}.png" for p in "abcde" for s in ("a", "painting")]
    cell = batch_dir(workdir) / "cells" / "r3c0"  # d in the painting's style
    assert (results / "d__painting.png").read_bytes() == (cell / "final.png").read_bytes()
    assert (batch_dir(workdir) / "figure.png").is_file()


def test_a_sweep_whose_runs_logged_no_curve_draws_its_loss_plot_without_a_warning(
    tiny_config, workdir, photos
):
    # Runs shorter than trainer.log_every_n_steps log no loss curve: matplotlib warned that the
    # plot had nothing to put in its legend.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["sweep", "--config", str(tiny_config()), "--contents", "photos/[ab].png", "--styles", "painting.png",
              "--trainer.max_steps", "2", "--trainer.log_every_n_steps", "50"])  # fmt: skip
    assert not [w for w in caught if "No artists with labels" in str(w.message)]
    assert (batch_dir(workdir) / "losses.png").is_file()


def test_a_bad_image_in_a_folder_is_named_before_anything_runs(tiny_config, workdir, photos, capsys):
    (photos / "f.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(tiny_config()), "--contents", "photos/", "--styles", "painting.png"])
    assert exit_info.value.code == 2
    assert "content image photos/f.png is not an image" in capsys.readouterr().err
    assert not (workdir / "logs").exists()


def test_two_files_with_one_name_are_refused(tiny_config, workdir, photos, capsys):
    draw_content().save(photos / "a.jpg")
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(tiny_config()), "--contents", "photos/", "--styles", "painting.png"])
    assert "two values named a (results are named after them)" in capsys.readouterr().err


def test_a_cell_that_fails_is_reported_and_the_others_go_on(tiny_config, workdir, capsys):
    sweep = workdir / "weights.yaml"
    sweep.write_text(yaml.safe_dump({"rows": {"key": "model.style_weight", "values": [1.0e300, 1.0]},
                                     "set": {"model.optimizer": "adam", "trainer.max_steps": 3}}))  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(tiny_config()), "--sweep", str(sweep)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 2 cells failed (r0c0: the loss became NaN or infinite")
    out = workdir / "logs" / "tiny-weights" / "version_0"
    assert (out / "cells" / "r1c0" / "final.png").is_file() and (out / "figure.png").is_file()
    assert [p.name for p in (out / "results").iterdir()] == ["style_weight=1.0.png"]
    # Continuing runs the failed cell again (it fails again: its weight still diverges).
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(tiny_config()), "--sweep", str(sweep), "--ckpt_path", "last"])
    assert "1 of 2 cells failed (r0c0" in capsys.readouterr().err


def test_result_names_are_unique_and_numbers_keep_their_digits(workdir, photos):
    sweep = workdir / "numbers.yaml"
    sweep.write_text(yaml.safe_dump({"rows": {"key": "model.style_weight", "values": [1.0e6, 1000001.0]}}))
    read = read_sweep(sweep)
    assert [read.result_name(c) for c in read.cells()] == ["style_weight=1000000.0", "style_weight=1000001.0"]
    (photos / "a__b.png").write_bytes((photos / "a.png").read_bytes())
    (workdir / "b__c.png").write_bytes((workdir / "painting.png").read_bytes())
    sweep.write_text(yaml.safe_dump({"rows": {"key": "data.content", "values": ["photos/a.png", "photos/a__b.png"]},
                                     "columns": {"key": "data.style", "values": ["b__c.png", "c.png"]}}))  # fmt: skip
    with pytest.raises(Exception, match="two cells would both be named a__b__c"):
        read_sweep(sweep)


def test_one_picture_on_several_devices_is_refused_in_one_line(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit):
        main(
            ["fit", "--config", str(tiny_config()), "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
        )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one picture runs on one device" in err and "nst sweep" in err
    assert not (workdir / "logs").exists()


# -- several processes ------------------------------------------------------------------------

# Torch's CPU kernels sum in an order that depends on the number of threads, so every process
# here uses one, as a one-process run with one thread does.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def sweep_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(CLI), "sweep", "--config", str(config), "--contents", "photos/",
            "--styles", "painting.png", "--trainer.accelerator", "cpu", *extra]  # fmt: skip


def run_batch(config: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(sweep_command(config, *extra), capture_output=True, text=True, env=env or ONE_THREAD,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_share_five_cells_and_equal_one_process_bit_for_bit(tiny_config, workdir, photos):
    config = tiny_config()
    run_batch(config)
    two = run_batch(config, "--trainer.devices", "2")
    one_dir, two_dir = batch_dir(workdir, 0), batch_dir(workdir, 1)
    ran = re.findall(r"\[rank (\d)\] \[\d/\d\] (r\dc\d)", two.stdout)
    assert sorted(cell for _, cell in ran) == [f"r{i}c0" for i in range(5)]  # each once, none lost
    assert {rank for rank, _ in ran} == {"0", "1"}
    for i in range(5):
        cell = f"r{i}c0"
        assert torch.equal(image_of(one_dir / "cells" / cell), image_of(two_dir / "cells" / cell)), cell
        assert len(list((two_dir / "cells" / cell).glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (two_dir / "results").iterdir()) == [f"{p}__painting.png" for p in "abcde"]
    assert (two_dir / "figure.png").is_file()


@pytest.mark.slow
def test_a_stopped_batch_resumes_with_another_number_of_processes(tiny_config, workdir, photos):
    config = tiny_config()
    slow = ("--trainer.max_steps", "40", "--data.size", "64", "--checkpoint.every_n_steps", "5")
    run_batch(config, *slow)  # the uninterrupted reference, in one process
    process = subprocess.Popen(sweep_command(config, *slow, "--trainer.devices", "2"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ONE_THREAD)  # fmt: skip
    for line in process.stdout:  # rank 0 is into its second cell: stop the batch
        if line.startswith("[rank 0] [2/3]"):
            time.sleep(1)
            process.send_signal(signal.SIGTERM)
            break
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-3000:]
    assert "Continue with the same command plus --ckpt_path last" in err
    stopped = batch_dir(workdir, 1)
    assert not (stopped / "figure.png").exists()

    run_batch(config, *slow, "--ckpt_path", "last")  # one process finishes what two began
    for i in range(5):
        cell = f"r{i}c0"
        assert torch.equal(
            image_of(batch_dir(workdir, 0) / "cells" / cell), image_of(stopped / "cells" / cell)
        )
    assert len(list((stopped / "results").iterdir())) == 5


@pytest.mark.slow
def test_a_worker_killed_ends_the_batch_and_the_resume_finishes_it(tiny_config, workdir, photos):
    config = tiny_config()
    slow = ("--trainer.max_steps", "60", "--data.size", "64", "--checkpoint.every_n_steps", "5")
    process = subprocess.Popen(sweep_command(config, *slow, "--trainer.devices", "2"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ONE_THREAD)  # fmt: skip
    for line in process.stdout:
        if line.startswith("[rank 1] [1/2]"):
            break
    time.sleep(2)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)  # the worker Lightning's launcher started
    process.communicate(timeout=120)  # ends; does not hang
    assert process.returncode != 0
    run_batch(config, *slow, "--ckpt_path", "last")
    assert len(list((batch_dir(workdir) / "results").iterdir())) == 5


@pytest.mark.slow
def test_two_nodes_of_one_process_each_equal_one_process(tiny_config, workdir, photos):
    config = tiny_config()
    run_batch(config)
    port = str(free_port())
    nodes = [
        subprocess.Popen(sweep_command(config, "--trainer.num_nodes", "2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env={**ONE_THREAD, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(n)})
        for n in (0, 1)
    ]  # fmt: skip
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    for i in range(5):
        cell = f"r{i}c0"
        assert torch.equal(
            image_of(batch_dir(workdir, 0) / "cells" / cell), image_of(batch_dir(workdir, 1) / "cells" / cell)
        )
    assert len(list((batch_dir(workdir, 1) / "results").iterdir())) == 5


@pytest.mark.slow
def test_torchrun_starts_the_processes_itself(tiny_config, workdir, photos):
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_port", str(free_port()), *sweep_command(tiny_config(), "--trainer.devices", "2")[1:]]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = re.findall(r"\[rank (\d)\] \[\d/\d\] (r\dc\d)", done.stdout)
    assert sorted(cell for _, cell in ran) == [f"r{i}c0" for i in range(5)]
    assert len(list((batch_dir(workdir) / "results").iterdir())) == 5


def test_a_large_batch_gets_a_contact_sheet_within_bounds():
    from nst.many.figure import draw_contact_sheet

    items = [
        (f"photo{i:03d}__painting{i % 5}", Image.new("RGB", (512, 384), (i, 90, 200))) for i in range(300)
    ]
    items[7] = ("failed", None)
    sheet, boxes = draw_contact_sheet(items, 8000)
    assert max(sheet.size) <= 8000 and len(boxes) == 300
    left, top, right, bottom = boxes[12]
    assert sheet.crop(boxes[12]).getpixel((1, 1)) == (12, 90, 200)  # each thumbnail where its box says
    assert right - left <= 160 and (right - left) / (bottom - top) == pytest.approx(512 / 384, rel=0.05)
