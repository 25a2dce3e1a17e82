"""Memory: the frozen network's lean backward, activation checkpointing, the estimate made
before a run, and what a run does when it would not fit."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from nst.cli import main
from nst.errors import NSTError
from nst.numerics.losses import content_loss
from nst.numerics.memory import GB, Estimate, choose, estimate
from nst.numerics.style_stats import distance, statistic
from nst.numerics.vgg import VGGFeatures, build_features
from nst.numerics.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
GATYS = ["conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def _gradient(vgg: VGGFeatures, image: torch.Tensor, pytorch_autograd: bool) -> torch.Tensor:
    x = image.clone().requires_grad_(True)
    if pytorch_autograd:  # layer by layer, as nn.Sequential would, with PyTorch's own backward
        features, h = {}, (x - vgg.mean.to(x)) / vgg.std.to(x)
        for i, layer in enumerate(vgg.features):
            h = layer(h)
            if i in vgg._wanted:
                features[vgg._wanted[i]] = h
    else:
        features = vgg(x)
    target = {n: statistic("gram", f.detach() * 0.5) for n, f in features.items()}
    loss = content_loss(features["conv4_2"], features["conv4_2"].detach() * 0.9)
    loss = loss + sum(distance("gram", features[n], target[n]) for n in GATYS[1:])
    loss.backward()
    return x.grad


@pytest.fixture
def lean_always(monkeypatch):
    """The lean backward at every size (by default it starts at about 360 x 360 px)."""
    monkeypatch.setattr("nst.numerics.vgg.LEAN_FROM_BYTES", 0)


@pytest.mark.parametrize("pooling,padding", [("max", "zeros"), ("avg", "replicate")])
def test_the_lean_backward_gives_pytorchs_gradient(pooling, padding, lean_always):
    stack = load_weights(build_features(29, pooling, padding), "random").double()
    image = torch.rand(1, 3, 37, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for checkpointing in (False, True):
        vgg = VGGFeatures(GATYS, stack, checkpointing=checkpointing).double()
        lean, reference = _gradient(vgg, image, False), _gradient(vgg, image, True)
        # float64: the transposed convolution and PyTorch's convolution backward agree to rounding
        assert torch.allclose(lean, reference, rtol=1e-10, atol=1e-14)
        assert lean.abs().sum() > 0


def test_the_lean_backward_keeps_less_than_pytorchs():
    plain = estimate(768, 1024, ["conv4_2"], GATYS[1:], optimizer="adam")
    # Without nst.numerics.frozen a 1024 px step kept about 2.3 GB of activations (measured); now under 1.
    assert plain.parts["activations"] < 1.0 * GB


def _run(workdir, images, *args, callbacks=()):
    base = ["fit", "--data.content", str(images["content"]), "--data.style", str(images["style"])]
    base += ["--model.weights", "random", "--trainer.enable_progress_bar", "false"]
    base += [
        "--trainer.enable_model_summary",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(workdir / "logs"),
    ]
    main([*base, *args], callbacks=list(callbacks))


def _final(workdir, version):
    ckpt = workdir / "logs" / "nst" / f"version_{version}" / "checkpoints" / "last.ckpt"
    return torch.load(ckpt, weights_only=True)["state_dict"]["image"]


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_activation_checkpointing_gives_the_same_picture(workdir, images, optimizer, lean_always):
    for version, checkpointing in enumerate(["false", "true"]):
        _run(
            workdir, images, "--data.size", "64", "--trainer.max_steps", "6", "--model.optimizer", optimizer,
            "--model.activation_checkpointing", checkpointing, "--trainer.logger.init_args.version", str(version),
        )  # fmt: skip
    without, with_ = _final(workdir, 0), _final(workdir, 1)
    # The same kernels on the same numbers, computed twice: equal here, asserted to float tolerance.
    assert (without - with_).abs().max() < 1e-5
    assert not torch.equal(without, torch.zeros_like(without))


def _needs(table):
    return lambda checkpointing, history: Estimate({"all": table[(checkpointing, history)]})


def test_a_run_that_would_not_fit_switches_checkpointing_on_and_says_so():
    table = {(False, 100): 10 * GB, (True, 100): 6 * GB}
    plan = choose(_needs(table), 8 * GB, None, "adam", 100)
    assert plan.checkpointing and plan.lbfgs_history == 100
    assert "activation checkpointing on" in plan.note and "10.0 GB" in plan.note and "8.0 GB" in plan.note


def test_then_a_shorter_lbfgs_history():
    table = {
        (c, h): (8 if c else 9) * GB + h * 0.05 * GB for c in (False, True) for h in (100, 50, 20, 10, 5, 1)
    }
    plan = choose(_needs(table), 10 * GB, None, "lbfgs", 100)  # 8 + 2.5 with 50; 8 + 1 with 20
    assert plan.checkpointing and plan.lbfgs_history == 20
    assert "L-BFGS history 100 → 20" in plan.note


def test_checkpointing_left_off_when_the_settings_say_so():
    table = {
        (c, h): (9 if c else 10) * GB + h * 0.01 * GB for c in (False, True) for h in (100, 50, 20, 10, 5, 1)
    }
    plan = choose(_needs(table), 10.6 * GB, False, "lbfgs", 100)
    assert not plan.checkpointing and plan.lbfgs_history == 50


def test_nothing_fits_refuses_with_what_to_change():
    table = {(c, h): 20 * GB for c in (False, True) for h in (100, 50, 20, 10, 5)}
    with pytest.raises(
        NSTError, match=r"needs 20.0 GB .* 4.0 GB is free; lower data.size \(to about 44% of it\)"
    ):
        choose(_needs(table), 4 * GB, None, "lbfgs", 100)


def test_a_run_fits_itself_into_a_small_memory_limit(workdir, images, capsys):
    layers = (["conv4_2"], GATYS[1:])
    roomy = estimate(48, 64, *layers, optimizer="lbfgs", lbfgs_history=100).total
    short = estimate(48, 64, *layers, optimizer="lbfgs", lbfgs_history=20).total
    limit = (roomy + short) / 2 / GB
    _run(
        workdir, images, "--data.size", "64", "--trainer.max_steps", "3", "--model.memory_limit", str(limit),
        "--model.activation_checkpointing", "false",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "memory: the run needs" in out and "L-BFGS history 100 → " in out
    assert (workdir / "logs" / "nst" / "version_0" / "final.png").is_file()


def test_a_run_that_cannot_fit_is_refused_before_it_starts(workdir, images, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(workdir, images, "--data.size", "64", "--model.memory_limit", "0.01")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the run needs") and "lower data.size" in err[-1]
    assert not list(workdir.glob("logs/nst/version_*/checkpoints/*"))


@pytest.mark.slow
@pytest.mark.parametrize("size", [512, 768])
def test_the_estimate_is_within_a_quarter_of_the_measured_peak(size):
    command = [sys.executable, str(ROOT / "bench" / "memory.py"), "--once", str(size), "false"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert 0.75 <= row["estimate"] / row["measured"] <= 1.25, row


def test_a_callback_monitoring_a_loss_no_run_logs_is_refused(workdir, images, tmp_path, capsys):
    config = tmp_path / "stop.yaml"
    config.write_text(
        "trainer:\n  callbacks:\n  - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
        "    init_args: {monitor: loss/nonsense}\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        _run(workdir, images, "--config", str(config), "--data.size", "32", "--trainer.max_steps", "2")
    assert exit_info.value.code == 2
    assert "EarlyStopping monitors 'loss/nonsense', which this run does not log" in capsys.readouterr().err


def test_a_cpu_run_uses_the_channels_last_layout_where_onednn_is_there(workdir, images):
    seen = {}

    class Look(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["nhwc"] = pl_module.vgg.features[0].weight.is_contiguous(memory_format=torch.channels_last)

    _run(workdir, images, "--data.size", "32", "--trainer.max_steps", "1", callbacks=[Look()])
    # oneDNN's convolutions work in it (nst.run.speed.prepare); without oneDNN, NCHW.
    assert seen["nhwc"] == torch.backends.mkldnn.is_available()


def test_the_channels_last_layout_gives_the_same_gradient(lean_always):
    # What a CUDA run and a CPU run with oneDNN use (nst.run.speed.prepare).
    # In float64, where summing in another order changes nothing visible (in float32 the
    # Gram loss's squares make that order show at the third digit of small gradients).
    stack = load_weights(build_features(29), "random").double()
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    plain = _gradient(VGGFeatures(GATYS, stack).double(), image, False)
    vgg = VGGFeatures(GATYS, copy.deepcopy(stack)).double()
    vgg.use_channels_last()
    assert vgg.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    nhwc = _gradient(vgg, image, False)
    assert (plain - nhwc).norm() / plain.norm() < 1e-10
