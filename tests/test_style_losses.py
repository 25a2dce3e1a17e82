"""The style statistics of model.style_loss: values computed by hand on tiny tensors, each loss
lowering itself in a run, blends, multi-scale and exact resume with each."""

import pytest
import torch
from steps import AtStep
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nst.numerics.style_stats import KINDS, blend, distance, statistic
from nst.run.engine import Run

# Two channels over four positions (a 2x2 map).
A = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]], [[2.0, 2.0], [2.0, 2.0]]]])
B = torch.tensor([[[[0.0, 2.0], [0.0, 2.0]], [[1.0, 5.0], [1.0, 5.0]]]])


def target(kind: str, features: torch.Tensor) -> dict:
    return blend(kind, [statistic(kind, features)], [1.0])


def test_gram_by_hand():
    # Gram / (C·H·W = 8): [[1+9+1+9, 2+6+2+6], [.., 16]] / 8
    assert torch.allclose(statistic("gram", A)["gram"], torch.tensor([[[2.5, 2.0], [2.0, 2.0]]]))
    # B's Gram: [[8, 20], [20, 52]] / 8; the loss is the mean of the squared differences.
    expected = ((2.5 - 1) ** 2 + 2 * (2 - 2.5) ** 2 + (2 - 6.5) ** 2) / 4
    assert distance("gram", A, target("gram", B)).item() == pytest.approx(expected)


def test_mean_std_by_hand():
    # A: means (2, 2), standard deviations (1, 0); B: means (1, 3), deviations (1, 2).
    stat = statistic("mean_std", A)
    assert torch.allclose(stat["mean"], torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(stat["std"], torch.tensor([[1.0, 0.0]]), atol=1e-3)
    expected = ((2 - 1) ** 2 + (2 - 3) ** 2) / 2 + ((1 - 1) ** 2 + (0 - 2) ** 2) / 2
    assert distance("mean_std", A, target("mean_std", B)).item() == pytest.approx(expected, abs=1e-3)


def test_wasserstein_by_hand():
    # Diagonal covariances commute, so W2² = |μ-μ'|² + Σ (s-s')², here over C = 2 channels:
    # A: μ (2, 2), s (1, 0); B: μ (1, 3), s (1, 2) → (1 + 1 + 0 + 4) / 2 = 3.
    assert distance("wasserstein", A, target("wasserstein", B)).item() == pytest.approx(3.0, abs=1e-3)
    assert distance("wasserstein", B, target("wasserstein", B)).item() == pytest.approx(0.0, abs=1e-3)
    # A correlated covariance against itself, and against its own scaling (s' = 2s: W2² = tr Σ).
    x = torch.randn(1, 3, 4, 4)
    x[:, 1] += x[:, 0]
    assert distance("wasserstein", x, target("wasserstein", x)).item() == pytest.approx(0.0, abs=1e-3)
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    trace = centred.pow(2).mean(dim=(2, 3)).sum().item()
    assert distance("wasserstein", centred, target("wasserstein", 2 * centred)).item() == pytest.approx(
        trace / 3, rel=1e-3
    )


def test_histogram_by_hand():
    # One channel [3, 1, 2] remapped rank for rank onto [10, 20, 30] gives [30, 10, 20]:
    # the histogram term is ((3-30)² + (1-10)² + (2-20)²) / 3 = 378, added to the Gram term.
    picture = torch.tensor([3.0, 1.0, 2.0]).reshape(1, 1, 1, 3)
    painting = torch.tensor([10.0, 30.0, 20.0]).reshape(1, 1, 1, 3)
    gram_term = distance("gram", picture, target("gram", painting)).item()
    assert distance("histogram", picture, target("histogram", painting)).item() == pytest.approx(
        gram_term + 378, rel=1e-3
    )


def test_a_blend_averages_the_statistics():
    for kind in KINDS:
        half = blend(kind, [statistic(kind, A), statistic(kind, B)], [0.5, 0.5])
        for key, value in statistic(kind, A).items():
            assert torch.allclose(half[key], (value + statistic(kind, B)[key]) / 2), (kind, key)


def losses(run_dir) -> list[float]:
    return [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("loss/style")]


@pytest.mark.parametrize("kind", KINDS)
def test_each_style_loss_lowers_itself(tiny_config, workdir, kind):
    config = tiny_config(style_loss=kind, optimizer="adam", lr=0.05)
    result = Run([["--config", str(config), "--trainer.max_steps", "12"]]).fit()
    curve = losses(result.run_dir)
    assert curve[-1] < 0.8 * curve[0], curve


@pytest.mark.parametrize("kind", ["mean_std", "wasserstein", "histogram"])
def test_each_style_loss_blends_styles_and_runs_multi_scale(tiny_config, workdir, images, kind):
    phases = [{"size": 16, "steps": 3}, {"size": 32, "steps": 3}]
    config = tiny_config(style_loss=kind, optimizer="adam", phases=phases)
    args = [
        "--config",
        str(config),
        "--trainer.max_steps",
        "6",
        "--data.style",
        f"[{images['style']}, {images['content']}]",
    ]
    result = Run([args, {"data.style_blend": [0.7, 0.3]}]).fit()
    assert result.steps == 6 and result.tensor.shape[-1] == 32


@pytest.mark.parametrize("kind", ["mean_std", "wasserstein", "histogram"])
def test_resume_is_exact_with_each_style_loss(tiny_config, workdir, kind):
    config = tiny_config(style_loss=kind, optimizer="lbfgs")
    whole = Run([["--config", str(config), "--trainer.max_steps", "8"]]).fit()
    holder = {}
    first = Run(
        [["--config", str(config), "--trainer.max_steps", "8"]],
        callbacks=[AtStep(4, lambda t, m: holder["run"].stop())],
    )
    holder["run"] = first
    assert first.fit().stopped is not None
    resumed = Run([["--config", str(config), "--trainer.max_steps", "8", "--ckpt_path", "last"]]).fit()
    assert torch.equal(whole.tensor, resumed.tensor)


@pytest.mark.parametrize("kind", KINDS)
def test_each_style_loss_runs_in_64_bits(tiny_config, workdir, kind):
    # The histogram's quantile positions were made in the default dtype (float64 in a 64-true
    # run) against float32 features, and the run ended in a traceback.
    config = tiny_config(style_loss=kind, optimizer="adam", lr=0.05)
    result = Run(
        [["--config", str(config), "--trainer.max_steps", "6", "--trainer.precision", "64-true"]]
    ).fit()
    curve = losses(result.run_dir)
    assert curve[-1] < curve[0], curve
