"""What a newcomer meets first: --help, the layer names they bring, TensorBoard's first cards."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst.cli import main

REPO = Path(__file__).parents[1]


def test_help_describes_nst_and_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert "neural style transfer" in out and "Gatys" in out
    for command in ("fit", "video", "sweep", "train", "apply", "export", "serve"):
        assert f"\n  {command} " in out
    with pytest.raises(SystemExit) as exit_info:
        main(["paint"])
    assert exit_info.value.code == 2
    assert (
        "unknown command 'paint'; use fit, video, sweep, train, apply, export, serve"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("fit", ["--model.style_weight", "--data.size", "--ckpt_path", "Optimise one picture"]),
        ("sweep", ["--sweep", "--ckpt_path", "any option of fit"]),
        ("export", ["checkpoint", "--overwrite", "export --network"]),
        ("train", ["--data.photos", "--data.style", "--model.width", "--ckpt_path", "Train a style network"]),
        ("apply", ["--network", "--input", "--output", "video"]),
    ],
)
def test_each_command_has_its_help(capsys, command, expected):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split()).lower()
    assert all(" ".join(word.split()).lower() in out for word in expected), out[:2000]


@pytest.mark.slow
@pytest.mark.parametrize("command", [[sys.executable, str(REPO / "cli.py")], ["nst"]], ids=["cli.py", "nst"])
def test_help_in_a_real_process(command):
    if command == ["nst"]:  # the console script pip installs beside this Python
        command = [str(Path(sys.executable).parent / "nst")]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "\n  fit " in done.stdout and "\n  sweep " in done.stdout


def test_the_tutorials_flat_layer_names_mean_what_they_mean_there(tiny_config, workdir, capsys):
    # In the PyTorch tutorial conv_4 is the fourth convolution: conv2_2, not conv5_4.
    main(["fit", "--config", str(tiny_config()), "--model.content_layers", "[conv_4]",
          "--model.style_layers", "[conv_1, conv_3, conv_5]", "--trainer.max_steps", "2"])  # fmt: skip
    assert "model.content_layers: conv_4 is conv2_2" in capsys.readouterr().out
    run_dir = workdir / "logs" / "tiny" / "version_0"
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert saved["content_layers"] == ["conv2_2"]
    assert saved["style_layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    # ... and a run in canonical names may resume one started in flat names.
    main(["fit", "--config", str(tiny_config()), "--trainer.max_steps", "3", "--ckpt_path", "last"])
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("conv_17", "VGG19 has 16 convolutions, conv_1 … conv_16"),
        ("pool_3", "the pooling layers are pool_2, pool_4, pool_8, pool_12, pool_16"),
    ],
)
def test_a_flat_name_that_does_not_exist_is_explained(tiny_config, workdir, capsys, layer, message):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tiny_config()), "--model.style_layers", f"[{layer}]"])
    assert message in capsys.readouterr().err


def test_tensorboard_shows_losses_and_settings_not_epochs(tiny_config, workdir):
    main(["fit", "--config", str(tiny_config()), "--model.style_weight", "1000"])
    run_dir = workdir / "logs" / "tiny" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "epoch" not in scalars
    assert {"final/total", "final/content", "final/style"} <= set(scalars)
    final = events.Scalars("final/total")[-1].value  # the handed-back picture's: the best seen
    assert final <= events.Scalars("loss/best")[-1].value + 1e-9
    assert final <= events.Scalars("loss/total")[-1].value + 1e-9
    # The HPARAMS tab: the run's settings, with the final losses as its metrics.
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugin = events.summary_metadata
    session = [
        plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
        for tag, meta in plugin.items()
        if meta.plugin_data.plugin_name == "hparams" and tag.endswith("session_start_info")
    ]
    assert session, "no hparams session was written"
    hparams = session[0].session_start_info.hparams
    assert hparams["model.style_weight"].number_value == 1000
    assert hparams["data.size"].number_value == 32


def offline(monkeypatch) -> None:
    """No network: every image download fails as an unplugged machine's does (torch.hub's weights
    download already does, see conftest)."""
    import urllib.error

    from nst import download

    def unplugged(*args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(download.urllib.request, "urlopen", unplugged)


def test_offline_one_line_names_every_download_the_run_needs(tiny_config, workdir, monkeypatch, capsys):
    offline(monkeypatch)
    content, style = "https://example.org/photo.jpg", "https://example.org/painting.jpg"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tiny_config()), "--data.content", content, "--data.style", style,
              "--model.weights", "imagenet"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot download "), err
    for named in (content, style, "the ImageNet VGG19 weights", "vgg19-dcbb9e9d.pth"):
        assert named in err, err
    assert "--data.content and --data.style" in err and "--model.weights random" in err
    assert "model.weights=" not in err  # what is typed is --model.weights
    assert not (workdir / "logs").exists()


def test_offline_the_weights_alone_are_named_with_the_way_round_them(tiny_config, workdir, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tiny_config()), "--model.weights", "imagenet"])
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: cannot download the ImageNet VGG19 weights"), err
    assert "--model.weights /path/to/vgg19-dcbb9e9d.pth" in err and "--model.weights random" in err
    assert out.count("Downloading:") == 1, out  # tried once, not again for fewer layers


def test_a_finished_run_says_where_its_picture_went_and_how_to_go_on(tiny_config, workdir, capsys):
    config = str(tiny_config())
    main(["fit", "--config", config])
    out = capsys.readouterr().out.splitlines()
    assert "Wrote logs/tiny/version_0/final.png" in out, out
    (hint,) = [line for line in out if "--ckpt_path" in line]
    assert hint.endswith("the same command plus --ckpt_path last --trainer.max_steps 8"), hint
    # The hint works: the same command plus what it says goes on to 8 steps, in the same run.
    main(["fit", "--config", config, *hint.split(" plus ")[1].split()])
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    assert "Wrote logs/tiny/version_0/final.png" in capsys.readouterr().out
    assert not (workdir / "logs" / "tiny" / "version_1").exists()


@pytest.mark.parametrize("command", ["fit", "video", "train"])
def test_help_lists_nsts_own_options_before_lightnings_trainer(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # In the text as a whole (the usage first) and among the options as listed one per line.
    own, trainer = re.search(r"--(model|data)\.", out), re.search(r"--trainer\.", out)
    assert own and trainer and own.start() < trainer.start(), out[:1500]
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  --")]
    first_own = next(i for i, option in enumerate(listed) if option.startswith(("--model.", "--data.")))
    first_trainer = next(i for i, option in enumerate(listed) if option.startswith("--trainer."))
    assert first_own < first_trainer
    assert "--trainer.max_steps" in listed and "--trainer.precision" in listed  # still there, after them


@pytest.mark.parametrize(("columns", "least"), [(120, 60), (80, 25)])
def test_a_runs_terminal_shows_the_step_time_left_and_losses_and_no_noise(
    tiny_config, workdir, capsys, monkeypatch, columns, least
):
    # A run as the starry config makes it (bar and Lightning's defaults on), in a terminal
    # `columns` wide, with losses written with an exponent, as a real run's are.
    config = yaml.safe_load(tiny_config().read_text())
    for key in ("enable_progress_bar", "enable_model_summary"):
        del config["trainer"][key]
    (workdir / "plain.yaml").write_text(yaml.safe_dump(config))
    import tqdm.std

    # What tqdm measures in a terminal `columns` wide (it leaves the last column free).
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda fp: (columns - 1, 39))
    main(["fit", "--config", "plain.yaml", "--model.style_weight", "1e11"])
    out = capsys.readouterr().out
    drawn = [line for line in re.split(r"[\r\n]", out) if line.startswith("step")]
    last = drawn[-1]
    assert re.fullmatch(r"step 4/4 \|█+\| 00:00 left, loss [\d.]+e\+\d+ \([<>]?\d+% style\)", last), last
    assert len(last) < columns and len(last.split("|")[1]) >= least, last
    assert "v_num" not in out and "Total params" not in out and "Total Flops" not in out, out
    assert "Trainer.fit` stopped" not in out, out  # never written onto the bar's line
