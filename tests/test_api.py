"""The Python API (nst.stylize, nst.fit, nst.Run) against the command line it must equal."""

import threading

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import nst
from nst.cli import main

SHALLOW = {
    "weights": "random",
    "content_layers": ["conv2_2"],
    "style_layers": ["conv1_1", "conv2_1", "conv3_1"],
}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def files_under(path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "torch_home" not in p.parts}


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stylize_gives_the_cli_picture_pixel_for_pixel(tiny_config, workdir, images, optimizer):
    main(["fit", "--config", str(tiny_config(optimizer=optimizer))])
    cli = Image.open(workdir / "logs" / "tiny" / "version_0" / "final.png")
    picture = nst.stylize(
        str(images["content"]),
        images["style"],
        size=32,
        steps=4,
        optimizer=optimizer,
        progress_bar=False,
        **SHALLOW,
    )
    assert isinstance(picture, Image.Image) and picture.size == cli.size == (32, 24)
    assert np.array_equal(pixels(picture), pixels(cli))


def test_stylize_takes_images_in_memory_and_writes_nothing(tiny_config, workdir, images):
    main(["fit", "--config", str(tiny_config())])
    cli = pixels(Image.open(workdir / "logs" / "tiny" / "version_0" / "final.png"))
    before = files_under(workdir)
    content = Image.open(images["content"])
    style = torch.from_numpy(pixels(Image.open(images["style"])).copy()).permute(2, 0, 1).float() / 255
    picture = nst.stylize(content, style, size=32, steps=4, progress_bar=False, **SHALLOW)
    assert np.array_equal(pixels(picture), cli)  # a PIL image and a [3, H, W] tensor: the same run
    assert files_under(workdir) == before  # no logs, checkpoints or cache entries


def test_stylize_reports_progress_and_stops_when_asked(workdir, images):
    seen, stop = [], threading.Event()

    def progress(p: nst.Progress) -> None:
        seen.append((p.step, p.total, p.losses["total"], p.image().size))
        if p.step == 4:
            stop.set()

    picture = nst.stylize(
        images["content"], images["style"], size=32, steps=20, optimizer="adam", progress=progress,
        progress_every=2, stop=stop, progress_bar=False, **SHALLOW,
    )  # fmt: skip
    assert [s[0] for s in seen] == [2, 4]  # stopped after the step in progress
    assert all(total == 20 and loss > 0 and size == (32, 24) for _, total, loss, size in seen)
    assert picture.size == (32, 24)


def test_stylize_texture_synthesis_and_several_styles(workdir, images):
    texture = nst.stylize(None, images["style"], size=[40, 24], steps=2, progress_bar=False, **SHALLOW)
    assert texture.size == (40, 24)
    blended = nst.stylize(
        images["content"], [images["style"], images["content"]], style_blend=[2, 1], size=32, steps=2,
        progress_bar=False, **SHALLOW,
    )  # fmt: skip
    assert blended.size == (32, 24)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"style_wieght": 1.0}, "nst.stylize has no option 'style_wieght'; did you mean style_weight?"),
        ({"size": 0}, "data.size must be a positive number of pixels, got 0"),
        ({"optimizer": "sgd"}, "Expected a typing.Literal['lbfgs', 'adam']. Got value: sgd"),
        ({"style_layers": ["conv9_1"]}, "unknown VGG19 layer 'conv9_1'"),
        # Refused before Pillow is asked to make such an image (which ran out of memory).
        (
            {"size": 10**6},
            "data.size 1000000 makes the result 1000000×750000 px, over the 100 megapixels nst paints; "
            "lower data.size (to 11547 at most for this content image)",
        ),
        (
            {"size": [10**5, 10**4]},
            "data.size [100000, 10000] makes the result 100000×10000 px, over the 100",
        ),
        ({"style_scale": 10**4}, "data.style_scale 10000.0 makes the style image"),
        (
            {"phases": [{"size": 10**6, "steps": 1}, {"size": 32, "steps": 1}], "steps": 2},
            "a model.phases size of",
        ),
    ],
)
def test_bad_options_raise_nst_error_with_the_cli_message(workdir, images, options, message):
    with pytest.raises(nst.NSTError) as error:
        nst.stylize(images["content"], images["style"], **{**SHALLOW, "size": 32, "steps": 1, **options})
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (workdir / "logs").exists()


def test_a_callback_of_the_caller_is_checked_as_one_the_config_names(workdir, images):
    stopping = EarlyStopping("loss/total", patience=-1)
    with pytest.raises(nst.NSTError, match="EarlyStopping's patience must be 0 or more"):
        nst.stylize(images["content"], images["style"], size=32, steps=2, callbacks=[stopping], **SHALLOW)


def test_a_bad_image_in_memory_is_named(images):
    with pytest.raises(nst.NSTError, match=r"the content tensor has shape \[32, 24\]; give an RGB image"):
        nst.stylize(torch.zeros(32, 24), images["style"], **SHALLOW)
    with pytest.raises(nst.NSTError, match=r"the style 1 tensor has values outside \[0, 1\]"):
        nst.stylize(images["content"], torch.full((3, 8, 8), 2.0), **SHALLOW)


def test_fit_is_the_cli_run_with_its_directory_events_and_resume(tiny_config, workdir):
    config = tiny_config()
    main(["fit", "--config", str(config), "--trainer.max_steps", "6"])
    result = nst.fit(config, {"trainer.max_steps": 3})
    run_dir = workdir / "logs" / "tiny" / "version_1"
    assert result.run_dir == run_dir and result.steps == 3 and result.stopped is None
    assert result.checkpoint == run_dir / "checkpoints" / "last.ckpt"
    assert set(result.losses) == {"total", "content", "style", "tv"} and result.losses["total"] > 0
    assert np.array_equal(pixels(result.image), pixels(Image.open(run_dir / "final.png")))

    resumed = nst.fit(config, {"trainer.max_steps": 6}, ckpt_path="last")
    assert resumed.run_dir == run_dir and resumed.steps == 6
    whole = Image.open(workdir / "logs" / "tiny" / "version_0" / "final.png")
    assert np.array_equal(pixels(resumed.image), pixels(whole))  # as if never interrupted
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    assert sorted(e.step for e in events.Scalars("loss/total")) == list(range(6))


def test_fit_raises_the_cli_error_line(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tiny_config()), "--data.size", "3"])
    line = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(nst.NSTError) as error:
        nst.fit(tiny_config(), {"data.size": 3})
    assert str(error.value) == line
    assert not (workdir / "logs").exists()


def test_a_run_stopped_by_its_caller_keeps_a_checkpoint_that_resumes(tiny_config, workdir):
    config = tiny_config()
    stopper = threading.Event()
    result = nst.fit(config, {"trainer.max_steps": 6}, progress=lambda p: stopper.set(), progress_every=2,
                     stop=stopper)  # fmt: skip
    # Asked for during step 2 (by the progress callback): the run ends at that step's boundary.
    assert result.stopped is not None and "stopped on request after step 2" in str(result.stopped)
    assert result.steps == 2 and result.checkpoint.is_file()
    assert not (result.run_dir / "final.png").exists()
    resumed = nst.fit(config, {"trainer.max_steps": 6}, ckpt_path="last")
    whole = nst.Run([["--config", str(config), "--trainer.max_steps", "6"]]).fit()
    assert resumed.run_dir == result.run_dir != whole.run_dir
    assert np.array_equal(pixels(resumed.image), pixels(whole.image))


def test_a_stop_in_an_early_phase_with_the_photos_colours_returns_that_phases_picture(workdir, images):
    stop = threading.Event()
    phases = [{"size": 16, "steps": 3}, {"size": 32, "steps": 3}]
    picture = nst.stylize(
        images["content"], images["style"], size=32, phases=phases, original_colours="yiq", progress_bar=False,
        progress=lambda p: stop.set(), progress_every=1, stop=stop, **SHALLOW,
    )  # fmt: skip
    assert picture.size == (16, 12)  # stopped after step 1, inside the 16 px phase


def test_progress_images_are_snapshots(workdir, images):
    kept = []
    nst.stylize(images["content"], images["style"], size=32, steps=4, optimizer="adam", lr=0.3, progress=kept.append,
                progress_every=2, progress_bar=False, **SHALLOW)  # fmt: skip
    first, last = (pixels(p.image()) for p in kept)
    assert not np.array_equal(first, last)  # step 2's picture, not the final one


def test_a_progress_bar_of_ones_own_is_taken(workdir, images):
    from lightning.pytorch.callbacks import TQDMProgressBar

    picture = nst.stylize(images["content"], images["style"], size=32, steps=1, callbacks=[TQDMProgressBar()],
                          **SHALLOW)  # fmt: skip
    assert picture.size == (32, 24)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"style_weight": None}, 'Parser key "model.style_weight"'),
        ({"content_layers": None}, 'Parser key "model.content_layers"'),
        ({"device": "cuda:x"}, "device 'cuda:x' is not a device such as cpu, cuda, cuda:1 or mps"),
    ],
)
def test_values_a_python_caller_may_pass_get_one_line(workdir, images, options, message):
    with pytest.raises(nst.NSTError) as error:
        nst.stylize(images["content"], images["style"], **{**SHALLOW, "size": 32, "steps": 1, **options})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_numpy_numbers_and_device_names_are_taken(workdir, images):
    picture = nst.stylize(images["content"], images["style"], size=np.int64(32), steps=1, lr=np.float64(0.05),
                          optimizer="adam", device="cpu:0", progress_bar=False, **SHALLOW)  # fmt: skip
    assert picture.size == (32, 24)


def test_a_run_is_built_from_layers(workdir, tiny_config):
    with pytest.raises(nst.NSTError, match="a run's settings are a list of layers"):
        nst.Run(["--config", str(tiny_config())])


def test_ctrl_c_during_stylize_raises_rather_than_returning_half_a_picture(workdir, images):
    import os
    import signal

    from steps import AtStep

    ctrl_c = AtStep(1, lambda trainer, module: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(nst.RunInterrupted, match="stopped by SIGINT after step 2"):
        nst.stylize(images["content"], images["style"], size=32, steps=6, callbacks=[ctrl_c], progress_bar=False,
                    **SHALLOW)  # fmt: skip
    assert not (workdir / "logs").exists()
