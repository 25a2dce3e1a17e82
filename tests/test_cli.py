"""The command line end to end, in-process: runs, run directories, TensorBoard, resume, interruption."""

import io
import os
import re
import signal
import struct

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback
from PIL import Image
from steps import AtStep
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_crc

from nst.cli import main


def run(*args: str, callbacks=()) -> None:
    main(["fit", *args], callbacks=callbacks)


def send(signum):
    return lambda trainer, module: os.kill(os.getpid(), signum)


def stopped_run(tiny_config, action) -> int:
    """The exit code of a 6-step run named "stopped" whose ``action`` comes after step 2."""
    with pytest.raises(SystemExit) as exit_info:
        run(
            "--config", str(tiny_config("stopped")), "--trainer.max_steps", "6", callbacks=[AtStep(2, action)]
        )
    return exit_info.value.code


def final_image(run_dir) -> torch.Tensor:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["image"]


def test_a_run_leaves_its_results_in_its_own_directory(tiny_config, workdir):
    config = tiny_config()
    run("--config", str(config))
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert {"final.png", "config.yaml", "hparams.yaml", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
    assert Image.open(run_dir / "final.png").size == (32, 24)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert "max_steps: 4" in (run_dir / "config.yaml").read_text()

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"loss/content", "loss/style", "loss/tv", "loss/total"}
    expected |= {f"loss/style/{name}" for name in ("conv1_1", "conv2_1", "conv3_1")}
    assert expected <= scalars
    assert {"image/content", "image/style", "image/current"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("image/current")] == [0, 4]
    # The step-4 image as TensorBoard shows it (a JPEG) is the checkpoint's image at step 4, to
    # a few levels in 255 on this noise-like picture (the step-0 image is ~28 levels away).
    shown = Image.open(io.BytesIO(events.Images("image/current")[-1].encoded_image_string))
    assert shown.format == "JPEG" and shown.size == (32, 24)
    pixels = torch.from_numpy(np.array(shown)).permute(2, 0, 1).float() / 255
    assert (pixels - final_image(run_dir)[0].float()).abs().mean() < 6 / 255

    # A second fresh run never touches the first.
    before = (run_dir / "final.png").read_bytes()
    run("--config", str(config))
    assert (workdir / "logs" / "tiny" / "version_1" / "final.png").is_file()
    assert (run_dir / "final.png").read_bytes() == before


def test_event_files_carry_the_checksums_tensorboard_computes(tiny_config, workdir):
    # nst computes TensorBoard's record checksums in C (nst.run.tensorboard); here each record of a
    # run's event file is checked against TensorBoard's own pure-Python CRC-32C.
    run("--config", str(tiny_config()))
    (events,) = (workdir / "logs" / "tiny" / "version_0").glob("events.out.tfevents.*")
    data, records = events.read_bytes(), 0
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        header_crc, record, data_crc = data[8:12], data[12 : 12 + length], data[12 + length : 16 + length]
        assert struct.unpack("<I", header_crc)[0] == tensorboard_crc(data[:8])
        assert struct.unpack("<I", data_crc)[0] == tensorboard_crc(record)
        data, records = data[16 + length :], records + 1
    assert records > 10  # scalars and images


def test_output_path_and_command_line_overrides(tiny_config, workdir, images):
    out = workdir / "result.jpg"
    run(
        "--config",
        str(tiny_config()),
        "--data.size",
        "40",
        "--trainer.max_steps",
        "2",
        "--output.path",
        str(out),
    )
    assert Image.open(out).size == (40, 30)
    before = out.read_bytes()
    with pytest.raises(SystemExit) as exit_info:  # an existing file is never overwritten unasked
        run("--config", str(tiny_config()), "--output.path", str(out))
    assert exit_info.value.code == 2
    assert out.read_bytes() == before
    run("--config", str(tiny_config()), "--output.path", str(out), "--output.overwrite", "true")
    assert Image.open(out).size == (32, 24)  # replaced by the 32 px run's result


@pytest.mark.parametrize(
    ("optimizer", "precision"), [("lbfgs", "32-true"), ("adam", "32-true"), ("lbfgs", "64-true")]
)
def test_resumed_run_equals_uninterrupted_run(tiny_config, workdir, optimizer, precision):
    whole = tiny_config("whole", optimizer=optimizer)
    run("--config", str(whole), "--trainer.max_steps", "6", "--trainer.precision", precision)
    halves = tiny_config("halves", optimizer=optimizer)
    run("--config", str(halves), "--trainer.max_steps", "3", "--trainer.precision", precision)
    run(
        "--config",
        str(halves),
        "--trainer.max_steps",
        "6",
        "--trainer.precision",
        precision,
        "--ckpt_path",
        "last",
    )

    whole = workdir / "logs" / "whole" / "version_0"
    resumed = workdir / "logs" / "halves" / "version_0"
    assert not (workdir / "logs" / "halves" / "version_1").exists()  # continued in its own directory
    assert torch.equal(final_image(whole), final_image(resumed))
    assert (whole / "final.png").read_bytes() == (resumed / "final.png").read_bytes()
    assert (resumed / "config.resume1.yaml").is_file() and (resumed / "config.yaml").is_file()

    events = EventAccumulator(str(resumed), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/total")]
    assert sorted(steps) == list(range(6))  # one curve: the resumed part continues, nothing repeats


class Counts(Callback):
    def __init__(self) -> None:
        self.epochs = self.steps = 0

    def on_train_epoch_start(self, *_: object) -> None:
        self.epochs += 1

    def on_train_batch_end(self, *_: object) -> None:
        self.steps += 1


def test_a_run_is_one_epoch_which_its_continuation_continues(tiny_config, workdir, recwarn):
    # Lightning's work at an epoch's start and end costs as much as a small picture's losses.
    first, then = Counts(), Counts()
    with pytest.raises(SystemExit):
        run(
            "--config",
            str(tiny_config()),
            "--trainer.max_steps",
            "6",
            callbacks=[AtStep(3, send(signal.SIGINT)), first],
        )
    run("--config", str(tiny_config()), "--trainer.max_steps", "6", "--ckpt_path", "last", callbacks=[then])
    assert (first.epochs, first.steps) == (1, 4)  # asked before step 4: stops after it
    assert (then.epochs, then.steps) == (0, 2)  # continues that epoch
    assert not [w for w in recwarn if "resum" in str(w.message)]  # e.g. "your dataloader is not resumable"


def test_a_checkpoint_from_before_steps_were_taken_by_hand_resumes_at_its_step(tiny_config, workdir):
    # Earlier versions let Lightning's automatic loop count the steps; a module that optimises
    # by hand keeps the count elsewhere in the checkpoint, and would start again at step 0.
    run("--config", str(tiny_config("whole")), "--trainer.max_steps", "6")
    run("--config", str(tiny_config("halves")), "--trainer.max_steps", "3")
    path = workdir / "logs" / "halves" / "version_0" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    loops = checkpoint["loops"]["fit_loop"]
    by_hand = loops["epoch_loop.manual_optimization.optim_step_progress"]
    assert by_hand["total"]["completed"] == 3
    loops["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"] = by_hand
    loops["epoch_loop.manual_optimization.optim_step_progress"] = {
        "total": {"ready": 0, "completed": 0},
        "current": {"ready": 0, "completed": 0},
    }
    torch.save(checkpoint, path)  # as an older nst wrote it
    then = Counts()
    run(
        "--config",
        str(tiny_config("halves")),
        "--trainer.max_steps",
        "6",
        "--ckpt_path",
        "last",
        callbacks=[then],
    )
    assert then.steps == 3
    assert torch.equal(final_image(workdir / "logs" / "whole" / "version_0"), final_image(path.parents[1]))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_saves_a_checkpoint_that_resumes_exactly(tiny_config, workdir, capsys, signum, code):
    run("--config", str(tiny_config("whole")), "--trainer.max_steps", "6")
    assert stopped_run(tiny_config, send(signum)) == code
    stopped = workdir / "logs" / "stopped" / "version_0"
    assert not (stopped / "final.png").exists()  # an unfinished run shows no result
    assert torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert "--ckpt_path last" in capsys.readouterr().err

    run("--config", str(tiny_config("stopped")), "--trainer.max_steps", "6", "--ckpt_path", "last")
    assert torch.equal(final_image(workdir / "logs" / "whole" / "version_0"), final_image(stopped))
    events = EventAccumulator(str(stopped), size_guidance={"scalars": 0})
    events.Reload()
    # The step the signal came in is in the curve too: its metrics were written before the stop.
    assert sorted(e.step for e in events.Scalars("loss/total")) == list(range(6))


@pytest.mark.parametrize(
    "change",
    [
        ["--data.size", "48"],
        ["--model.optimizer", "adam"],
        ["--model.style_layers", "[conv1_1]"],
        ["--data.style", "null"],
        ["--model.padding", "replicate"],
        ["--data.style_scale", "0.5"],
    ],
)
def test_resume_with_other_settings_is_refused(tiny_config, workdir, capsys, change):
    run("--config", str(tiny_config()), "--trainer.max_steps", "2")
    with pytest.raises(SystemExit) as exit_info:
        run("--config", str(tiny_config()), *change, "--trainer.max_steps", "3", "--ckpt_path", "last")
    assert exit_info.value.code == 2
    assert f"made with a different {change[0][2:]}" in capsys.readouterr().err
    assert not list(workdir.glob("logs/tiny/version_0/config.resume*.yaml"))  # the failed resume left nothing


def test_a_new_learning_rate_applies_when_a_run_is_resumed(tiny_config, workdir):
    # The optimizer state comes back with the lr it was saved with; the one asked for wins.
    run("--config", str(tiny_config(optimizer="adam")), "--trainer.max_steps", "2")
    resume = ["--trainer.max_steps", "4", "--model.lr", "0.5", "--ckpt_path", "last"]
    run("--config", str(tiny_config(optimizer="adam")), *resume)
    state = torch.load(
        workdir / "logs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert state["global_step"] == 4 and state["optimizer_states"][0]["param_groups"][0]["lr"] == 0.5


def test_export_a_checkpoint_image(tiny_config, workdir, capsys):
    from nst.run.export import main as export

    run("--config", str(tiny_config()), "--trainer.max_steps", "2")
    run_dir = workdir / "logs" / "tiny" / "version_0"
    export([str(run_dir / "checkpoints" / "last.ckpt"), "step2.png"])
    assert (workdir / "step2.png").read_bytes() == (run_dir / "final.png").read_bytes()
    with pytest.raises(SystemExit):
        export([str(run_dir / "checkpoints" / "last.ckpt"), "step2.png"])
    assert "step2.png exists" in capsys.readouterr().err


def test_without_a_logger_nothing_is_written_to_the_working_directory(tiny_config, workdir):
    run("--config", str(tiny_config()), "--trainer.logger", "false", "--checkpoint.every_n_steps", "0")
    assert not (workdir / "final.png").exists() and not (workdir / "config.yaml").exists()
    run("--config", str(tiny_config()), "--trainer.logger", "false", "--checkpoint.every_n_steps", "0")
    assert len(list((workdir / "checkpoints").glob("last*.ckpt"))) == 2  # the first run's is kept


def test_a_stop_signal_during_the_last_step_lets_the_run_finish(tiny_config, workdir):
    # Sent after step 3: the callbacks of step 4 of 4 see the flag.
    run("--config", str(tiny_config()), callbacks=[AtStep(3, send(signal.SIGINT))])
    assert (workdir / "logs" / "tiny" / "version_0" / "final.png").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_running_a_saved_config_again_starts_a_new_run(tiny_config, workdir):
    run("--config", str(tiny_config()), "--trainer.max_steps", "2")
    first = workdir / "logs" / "tiny" / "version_0"
    saved = workdir / "saved.yaml"
    saved.write_text((first / "config.yaml").read_text())
    before = (first / "checkpoints" / "last.ckpt").read_bytes()
    run("--config", str(saved))
    assert (workdir / "logs" / "tiny" / "version_1" / "final.png").is_file()
    assert (first / "checkpoints" / "last.ckpt").read_bytes() == before


def test_an_explicit_version_never_writes_into_a_finished_run(tiny_config, workdir, capsys):
    run("--config", str(tiny_config()), "--trainer.max_steps", "2")
    with pytest.raises(SystemExit):
        run("--config", str(tiny_config()), "--trainer.logger.init_args.version", "0")
    assert "already holds a run" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tiny_config, workdir, capsys):
    run("--config", str(tiny_config("whole")), "--trainer.max_steps", "6")

    def impatient(trainer, module):  # step 2 has just been checkpointed (every 2 steps)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    assert stopped_run(tiny_config, impatient) == 130
    stopped = workdir / "logs" / "stopped" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(stopped, weights_only=True)["global_step"] == 2  # at once: step 3 never ran
    assert "--ckpt_path last" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    run("--config", str(tiny_config("stopped")), "--trainer.max_steps", "6", "--ckpt_path", "last")
    whole, stopped = (workdir / "logs" / name / "version_0" for name in ("whole", "stopped"))
    assert torch.equal(final_image(whole), final_image(stopped))


def test_the_progress_bar_counts_steps_and_shows_the_losses(tiny_config, workdir, capsys):
    run("--config", str(tiny_config()), "--trainer.enable_progress_bar", "true")
    out = capsys.readouterr().out
    assert "step 4/4 |" in out and " left, loss " in out
    assert re.search(r"loss [\d.e+-]+ \([<>]?\d+% style\)", out), out  # and the style's share of it


def test_the_progress_bar_is_redrawn_at_most_ten_times_a_second_and_at_the_end(
    tiny_config, workdir, capsys, monkeypatch
):
    from nst.run import progress

    clock = iter(range(1000))  # 30 ms a step: one step in four is drawn, and the last
    monkeypatch.setattr(progress, "monotonic", lambda: next(clock) * 0.03)
    run("--config", str(tiny_config()), "--trainer.max_steps", "9", "--trainer.enable_progress_bar", "true")
    shown = re.findall(r"step (\d+)/9 \|", capsys.readouterr().out.replace("\r", "\n"))
    assert sorted({int(n) for n in shown}) == [0, 1, 5, 9]


def test_divergence_stops_with_a_reason_and_writes_no_result(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("--config", str(tiny_config()), "--model.optimizer", "adam", "--model.style_weight", "1e300")
    assert exit_info.value.code == 2
    assert "diverged; lower model.lr or the loss weights" in capsys.readouterr().err
    assert not list(workdir.glob("logs/tiny/version_*"))  # nothing to resume, nothing to show


def test_divergence_keeps_the_last_good_checkpoint(tiny_config, workdir, capsys):
    def poison(trainer, module):  # step 2 was checkpointed just before (every 2 steps)
        module.image.data.fill_(float("nan"))

    with pytest.raises(SystemExit) as exit_info:
        run("--config", str(tiny_config()), "--trainer.max_steps", "6", callbacks=[AtStep(2, poison)])
    assert exit_info.value.code == 2
    assert "diverged" in capsys.readouterr().err
    run_dir = workdir / "logs" / "tiny" / "version_0"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert torch.isfinite(checkpoint["state_dict"]["image"]).all()
    assert not (run_dir / "final.png").exists()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize(
    "where",
    ["loading the images", "reading the weights file", "and again in cleanup", "starting the data loader"],
)
def test_a_stop_signal_before_training_removes_the_new_run(
    tiny_config, workdir, monkeypatch, capsys, signum, code, where
):
    from nst.numerics import weights
    from nst.numerics.vgg import build_features
    from nst.run import run_dirs
    from nst.run.data import StyleTransferData

    def send_signal(*args, **kwargs):
        os.kill(os.getpid(), signum)

    torch.save(weights.load_weights(build_features(12), "random").state_dict(), workdir / "vgg.pth")
    if where == "reading the weights file":  # inside weights.py's `except Exception`: must not be swallowed
        real_load = torch.load
        monkeypatch.setattr(torch, "load", lambda *a, **k: (send_signal(), real_load(*a, **k))[1])
    elif where == "starting the data loader":  # Lightning's own clean-up then fails: the stop must win
        from lightning.pytorch.utilities.combined_loader import CombinedLoader

        real_iter = CombinedLoader.__iter__  # where the fit loop starts the run's loader
        monkeypatch.setattr(CombinedLoader, "__iter__", lambda self: (send_signal(), real_iter(self))[1])
    else:
        monkeypatch.setattr(StyleTransferData, "setup", send_signal)
    if where == "and again in cleanup":
        real_remove = run_dirs.remove_if_unfinished
        monkeypatch.setattr(
            run_dirs, "remove_if_unfinished", lambda made: (send_signal(), real_remove(made))[1]
        )
    with pytest.raises(SystemExit) as exit_info:
        run("--config", str(tiny_config()), "--model.weights", "vgg.pth")
    assert exit_info.value.code == code
    assert f"stopped by {signum.name}; no checkpoint had been written yet" in capsys.readouterr().err
    assert not (workdir / "logs").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


def test_texture_and_reconstruction_runs_from_the_command_line(tiny_config, workdir):
    run("--config", str(tiny_config()), "--data.content", "null", "--data.size", "[40,24]")
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert Image.open(run_dir / "final.png").size == (40, 24)
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"image/style", "image/current"} <= set(events.Tags()["images"])
    assert "image/content" not in events.Tags()["images"]

    run("--config", str(tiny_config()), "--data.style", "null", "--model.content_layers", "[conv1_1]")
    assert Image.open(workdir / "logs" / "tiny" / "version_1" / "final.png").size == (32, 24)


def test_a_reconstruction_cannot_be_resumed_as_a_style_transfer(tiny_config, workdir, images, capsys):
    run("--config", str(tiny_config()), "--data.style", "null", "--trainer.max_steps", "2")
    with pytest.raises(SystemExit):
        run("--config", str(tiny_config()), "--trainer.max_steps", "3", "--ckpt_path", "last")
    assert "made with a different data.style" in capsys.readouterr().err


def test_two_blended_styles_from_the_command_line(tiny_config, workdir, images):
    styles = f"[{images['style']}, {images['content']}]"
    run("--config", str(tiny_config()), "--data.style", styles, "--data.style_blend", "[2, 1]")
    run_dir = workdir / "logs" / "tiny" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"image/style", "image/style_2"} <= set(events.Tags()["images"])
    assert (run_dir / "final.png").is_file()


@pytest.mark.parametrize("name", ["result.jpg", "result.webp", "result.tif"])
def test_the_result_in_another_format(tiny_config, workdir, name):
    run(
        "--config",
        str(tiny_config()),
        "--trainer.max_steps",
        "1",
        "--output.path",
        name,
        "--output.quality",
        "90",
    )
    assert (workdir / name).stat().st_size > 0


def test_original_colours_and_matched_colours_from_the_command_line(tiny_config, workdir, images):
    from nst.images import load_image
    from nst.numerics.colour import to_space

    run("--config", str(tiny_config()), "--output.original_colours", "yiq", "--data.match_colours", "true")
    final = load_image(str(workdir / "logs" / "tiny" / "version_0" / "final.png"), 32)
    content = load_image(str(images["content"]), 32)
    chroma = (to_space(final, "yiq")[:, 1:] - to_space(content, "yiq")[:, 1:]).abs().mean()
    assert chroma < 0.02  # the photo's colours, up to 8-bit rounding and clipping


def test_a_stop_signal_while_the_run_is_finishing_lets_it_finish(tiny_config, workdir):
    class CtrlCAtTheEnd(Callback):
        def on_train_end(self, trainer, pl_module):  # the result and the last checkpoint come after
            os.kill(os.getpid(), signal.SIGINT)

    run("--config", str(tiny_config()), "--trainer.max_steps", "3", callbacks=[CtrlCAtTheEnd()])
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert (run_dir / "final.png").is_file()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
