"""The objective is a plain object any painter can call, and takes further terms unedited; a
painting is a plain object a plain PyTorch loop can paint with."""

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from nst.numerics.losses import content_loss, gram, tv_loss
from nst.numerics.objective import Objective, Term
from nst.numerics.targets import Targets
from nst.numerics.vgg import VGGFeatures, build_features
from nst.numerics.weights import load_weights
from nst.run.data import StyleTransferData
from nst.run.module import StyleTransfer
from nst.run.painting import Painting
from nst.run.schedule import Schedule

CONTENT, STYLE = ["conv2_2"], ["conv1_1", "conv2_1"]


@pytest.fixture
def vgg() -> VGGFeatures:
    return VGGFeatures([*CONTENT, *STYLE], load_weights(build_features(9), "random"))


def pictures(seed: int, count: int = 1) -> torch.Tensor:
    return torch.rand(count, 3, 24, 32, generator=torch.Generator().manual_seed(seed))


def targets_of(vgg: VGGFeatures, content: torch.Tensor, style: torch.Tensor) -> Targets:
    with torch.no_grad():
        features, styled = vgg(content), vgg(style)
    return Targets(
        content={n: features[n] for n in CONTENT}, style={n: {"gram": gram(styled[n])} for n in STYLE}
    )


def test_the_weighted_terms_are_the_papers_losses_by_name(vgg):
    content, style, picture = pictures(0), pictures(1), pictures(2)
    objective = Objective(
        targets_of(vgg, content, style), content_layers=CONTENT, style_layers=STYLE,
        content_weight=2.0, style_weight=1e3, style_layer_weights=[1.0, 0.5], tv_weight=0.1,
    )  # fmt: skip
    assert objective.names == ["content/conv2_2", "style/conv1_1", "style/conv2_1", "tv"]
    losses = objective.losses(objective.evaluate(vgg, picture))
    with torch.no_grad():
        seen, target, painted = vgg(picture), vgg(content), vgg(style)
    expected_style = {
        name: weight * 1e3 * torch.nn.functional.mse_loss(gram(seen[name]), gram(painted[name]))
        for name, weight in zip(STYLE, [1.0, 0.5], strict=True)
    }
    assert losses["content"] == pytest.approx(
        2.0 * content_loss(seen["conv2_2"], target["conv2_2"]).item(), rel=1e-5
    )
    for name in STYLE:
        assert losses[f"style/{name}"] == pytest.approx(expected_style[name].item(), rel=1e-5)
    assert losses["tv"] == pytest.approx(0.1 * tv_loss(picture).item(), rel=1e-6)
    parts = losses["content"] + losses["style"] + losses["tv"]
    assert losses["total"] == pytest.approx(parts.item(), rel=1e-6)
    # The content image itself has no content loss; its style loss is what the style says.
    assert objective.losses(objective.evaluate(vgg, content))["content"] == 0


def test_one_vgg_pass_for_several_pictures_gives_each_its_own_terms(vgg):
    batch = pictures(3, count=3)
    objectives = [
        Objective(
            targets_of(vgg, pictures(10 + i), pictures(20 + i)), content_layers=CONTENT, style_layers=STYLE
        )
        for i in range(3)
    ]
    with torch.no_grad():
        features = vgg(batch)
        together = [
            o({n: f[i : i + 1] for n, f in features.items()}, batch[i : i + 1])
            for i, o in enumerate(objectives)
        ]
        alone = [o.evaluate(vgg, batch[i : i + 1]) for i, o in enumerate(objectives)]
    for one, other in zip(together, alone, strict=True):
        assert torch.allclose(one, other, rtol=1e-5, atol=0)


def test_a_further_term_takes_its_place_without_changing_the_objective(vgg):
    reference = pictures(4)
    temporal = Term("temporal", 5.0, lambda picture: (picture - reference).pow(2).mean())
    objective = Objective(
        targets_of(vgg, pictures(0), pictures(1)), content_layers=CONTENT, style_layers=STYLE,
        tv_weight=0.1, terms=[temporal],
    )  # fmt: skip
    assert objective.names[-2:] == ["tv", "temporal"] and objective.summary[-1] == "temporal"
    picture = pictures(2)
    losses = objective.losses(objective.evaluate(vgg, picture))
    assert losses["temporal"] == pytest.approx(5.0 * (picture - reference).pow(2).mean().item(), rel=1e-6)
    assert losses["total"] == pytest.approx((losses["content"] + losses["style"] + losses["tv"] + losses["temporal"]).item(), rel=1e-6)  # fmt: skip
    assert objective.losses(objective.evaluate(vgg, reference))["temporal"] == 0


class Held(StyleTransfer):
    """A run whose picture is also held to a reference image by a further term, as a video's
    frame is to the frame before: the module's only change is the term it hands its objective."""

    reference: torch.Tensor

    def extra_terms(self, index: int) -> list[Term]:
        return [Term("held", 1e3, lambda picture: (picture - self.reference.to(picture)).pow(2).mean())]


class Curves(Callback):
    def __init__(self) -> None:
        self.held: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.held.append(pl_module.painting.losses.get("loss/held", math.nan))


def test_a_run_takes_a_further_term_into_its_loss_its_curves_and_its_result(images, tmp_path):
    Held.reference = torch.full((1, 3, 24, 32), 0.5)
    module = Held(weights="random", content_layers=CONTENT, style_layers=STYLE, init="noise")
    curves = Curves()
    trainer = Trainer(
        max_steps=10, callbacks=[curves], default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(module, StyleTransferData(str(images["content"]), str(images["style"]), size=32))
    assert "loss/held" in module.loss_names()
    assert curves.held[-1] < 0.2 * curves.held[0]  # the term pulls the picture to the reference
    module.result()
    assert module.painting.result_losses["held"] <= curves.held[-1] * 1.01  # and the result reports it


def test_a_plain_pytorch_loop_paints_with_a_painting_and_an_objective(vgg):
    start = pictures(5)
    schedule = Schedule.of({"phases": None, "optimizer": "lbfgs", "lr": None, "lbfgs_history": 10,
                            "content_weight": 1.0, "style_weight": 1e3, "tv_weight": 0.0}, 32, 10)  # fmt: skip
    painting = Painting(start, schedule)
    painting.objective = Objective(
        targets_of(vgg, pictures(0), pictures(1)),
        content_layers=CONTENT,
        style_layers=STYLE,
        style_weight=1e3,
    )
    optimizer = painting.make_optimizer()
    totals = []
    for step in range(10):
        before = painting.before_step()

        def closure(step: int = step) -> torch.Tensor:
            optimizer.zero_grad()
            loss = painting.minimised(painting.objective.evaluate(vgg, painting.image), keep_losses_at=step)
            loss.backward()
            painting.after_backward()
            return loss

        optimizer.step(closure)
        painting.after_step(before)
        totals.append(painting.losses["loss/total"])
    assert totals[-1] < 0.5 * totals[0]
    assert painting.image.min() >= 0 and painting.image.max() <= 1
    best = painting.result(lambda image: painting.objective.evaluate(vgg, image))
    assert painting.result_losses["total"] <= min(totals) + 1e-6 and best.shape == start.shape
