"""The LightningModule driven by a plain Trainer on tiny images with a random VGG."""

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from nst import StyleTransfer, StyleTransferData
from nst.errors import NSTError
from nst.run.painting import initial_image
from nst.run.paintings import Paintings

SHALLOW = {
    "weights": "random",
    "content_layers": ["conv2_2"],
    "style_layers": ["conv1_1", "conv2_1", "conv3_1"],
}


class LossHistory(Callback):
    def __init__(self):
        self.totals: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.totals.append(trainer.callback_metrics["loss/total"].item())


def fit(tmp_path, images, steps=8, size=64, precision="32-true", content=True, style=True, **model):
    module = StyleTransfer(**{**SHALLOW, **model})
    data = StyleTransferData(
        str(images["content"]) if content else None, str(images["style"]) if style else None, size=size
    )
    history = LossHistory()
    trainer = Trainer(
        max_steps=steps,
        precision=precision,
        callbacks=[history],
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    return module, history.totals


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_64px_run_lowers_the_loss_and_keeps_the_image_in_range(tmp_path, images, optimizer):
    module, totals = fit(tmp_path, images, steps=10, optimizer=optimizer, init="noise")
    assert module.image.shape == (1, 3, 48, 64)
    assert totals[-1] < 0.5 * totals[0]
    assert module.image.min() >= 0 and module.image.max() <= 1


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_optimizers_keep_stepping_when_the_loss_is_tiny(tmp_path, images, optimizer):
    # Weights this small give a loss of 1e-7 and gradients far under the thresholds inside
    # torch's optimizers (L-BFGS: tolerance_grad 1e-7, curvature pairs with s·y < 1e-10
    # dropped; Adam: eps 1e-8), at which neither would move the image.
    weights = {"content_weight": 1e-6, "style_weight": 1e-3}
    _, totals = fit(tmp_path, images, steps=10, init="noise", optimizer=optimizer, **weights)
    assert totals[-1] < 0.5 * totals[0]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_one_vgg_evaluation_per_step_and_targets_once(tmp_path, images, monkeypatch, optimizer):
    calls, passes = [], []
    original_loss, original_terms = StyleTransfer._loss, Paintings.weighted_terms

    def loss(self):
        calls.append(self.global_step)
        return original_loss(self)

    def terms(self, vgg):
        passes.append(1)
        return original_terms(self, vgg)

    monkeypatch.setattr(StyleTransfer, "_loss", loss)
    monkeypatch.setattr(Paintings, "weighted_terms", terms)
    forwards = []
    target_calls = []
    original_fit_start = StyleTransfer.on_fit_start

    def fit_start(self):
        self.vgg.register_forward_hook(lambda *a: forwards.append(1))
        original_fit_start(self)
        target_calls.append(len(forwards))

    monkeypatch.setattr(StyleTransfer, "on_fit_start", fit_start)
    fit(tmp_path, images, steps=5, size=32, optimizer=optimizer)
    assert calls == [0, 1, 2, 3, 4] and len(passes) == 5
    assert target_calls == [2]  # the content and the style image, once
    assert len(forwards) == 2 + 5


def test_init_options(tmp_path, images):
    data = StyleTransferData(str(images["content"]), str(images["style"]), size=32)
    data.setup("fit")
    images32 = data.at(32)
    for init, expected in (("content", data.content), ("style", None), (str(images["style"]), None)):
        image = initial_image(init, images32)
        assert image.shape == data.content.shape
        if expected is not None:
            assert torch.equal(image, expected)
    torch.manual_seed(0)
    first = initial_image("noise", images32)
    torch.manual_seed(0)
    again = initial_image("noise", images32)
    assert torch.equal(first, again) and 0.4 < first.mean() < 0.6
    with pytest.raises(NSTError, match=r"model\.init 'nois'"):
        StyleTransfer(**SHALLOW, init="nois").check_data(data)


def test_bf16_mixed_with_adam(tmp_path, images):
    module, totals = fit(
        tmp_path, images, steps=6, size=32, precision="bf16-mixed", optimizer="adam", lr=0.05
    )
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[-1] < totals[0]
    assert module.image.dtype == torch.float32


def test_lbfgs_refuses_reduced_precision(tmp_path, images):
    with pytest.raises(NSTError, match=r"L-BFGS needs full precision.*model\.optimizer=adam"):
        fit(tmp_path, images, steps=1, size=32, precision="bf16-mixed", optimizer="lbfgs")


def test_checkpoint_holds_the_image_only_and_loads_outside_fit(tmp_path, images):
    module, _ = fit(tmp_path, images, steps=3, size=32, optimizer="adam")
    path = tmp_path / "x.ckpt"
    module.trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert list(checkpoint["state_dict"]) == ["image"]
    loaded = StyleTransfer.load_from_checkpoint(path, map_location="cpu")
    assert torch.equal(loaded.image, module.image)
    assert loaded.vgg is None  # exporting an image needs no network


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style_layers": ["conv9_1"]}, "unknown VGG19 layer 'conv9_1'"),
        ({"content_layers": [], "style_layers": []}, "both empty"),
        ({"content_weight": 0.0, "style_weight": 0.0}, "every loss weight is zero"),
        ({"content_weight": 0.0, "style_layer_weights": [0.0, 0.0, 0.0]}, "every loss weight is zero"),
        ({"style_layers": ["conv1_1", "conv1_1"]}, "lists a layer twice"),
        ({"style_layer_weights": [1.0]}, "1 entries for 3 style layers"),
        ({"style_weight": -1.0}, "model.style_weight must be a finite number"),
        ({"content_weight": float("nan")}, "model.content_weight must be a finite number"),
        ({"weights": "imagnet"}, "unknown model.weights"),
        ({"lr": 0.0}, "model.lr must be a positive number"),
    ],
)
def test_bad_model_options(kwargs, message):
    with pytest.raises(NSTError, match=message):
        StyleTransfer(**{**SHALLOW, **kwargs})


@pytest.mark.parametrize("layer", ["conv1_1", "conv3_1", "conv4_2"])
def test_content_reconstruction_from_noise_lowers_its_loss(tmp_path, images, layer):
    module, totals = fit(tmp_path, images, steps=10, style=False, content_layers=[layer], init="noise")
    assert module.painting.objective.targets.style == {} and module.layers == [
        layer
    ]  # no style loss, VGG cut at the layer
    assert totals[-1] < 0.5 * totals[0]


@pytest.mark.parametrize("size", [48, [56, 40]])
def test_texture_synthesis_has_the_size_asked_for_and_lowers_its_loss(tmp_path, images, size):
    module, totals = fit(tmp_path, images, steps=10, size=size, content=False)
    assert module.painting.objective.targets.content == {} and module.hparams.init is None  # noise by default
    assert tuple(module.image.shape[-2:]) == ((size, size) if isinstance(size, int) else (size[1], size[0]))
    assert totals[-1] < 0.5 * totals[0]


def test_a_mode_without_content_cannot_start_from_it(tmp_path, images):
    with pytest.raises(NSTError, match=r"model\.init is content but there is no data\.content"):
        fit(tmp_path, images, content=False, init="content")


def test_data_needs_an_image():
    with pytest.raises(NSTError, match=r"give data\.content, data\.style or both"):
        StyleTransferData()


def test_style_scale_sets_the_style_size_relative_to_the_result(images):
    data = StyleTransferData(str(images["content"]), str(images["style"]), size=48, style_scale=0.5)
    data.setup("fit")
    assert max(data.content.shape[-2:]) == 48 and max(data.style.shape[-2:]) == 24
    larger = StyleTransferData(str(images["content"]), str(images["style"]), size=48, style_scale=1.5)
    larger.setup("fit")
    assert max(larger.style.shape[-2:]) == 72
    with pytest.raises(NSTError, match="not both"):
        StyleTransferData(str(images["content"]), str(images["style"]), style_size=64, style_scale=0.5)


def fit_styles(tmp_path, images, style, **data):
    module = StyleTransfer(**SHALLOW)
    datamodule = StyleTransferData(str(images["content"]), style, size=32, **data)
    trainer = Trainer(max_steps=3, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule)
    return module


def test_a_list_of_one_style_is_the_single_style(tmp_path, images):
    torch.manual_seed(0)
    single = fit_styles(tmp_path, images, str(images["style"]))
    torch.manual_seed(0)
    listed = fit_styles(tmp_path, images, [str(images["style"])])
    assert torch.equal(single.image, listed.image)


def test_several_styles_blend_their_gram_matrices(tmp_path, images):
    from nst.numerics.losses import gram

    module = fit_styles(
        tmp_path, images, [str(images["style"]), str(images["content"])], style_blend=[3.0, 1.0]
    )
    data = module.trainer.datamodule
    with torch.no_grad():
        first, second = module.vgg(data.styles[0]), module.vgg(data.styles[1])
    for name in SHALLOW["style_layers"]:
        expected = 0.75 * gram(first[name]) + 0.25 * gram(second[name])
        assert torch.allclose(
            module.painting.objective.targets.style[name]["gram"], expected, rtol=1e-5, atol=1e-8
        )
