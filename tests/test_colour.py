"""Colour control: the content's colours kept after the run, or given to the style before it."""

import pytest
import torch

from nst.numerics.colour import match_colours, original_colours, to_space


@pytest.mark.parametrize("space", ["yiq", "ycbcr"])
def test_original_colours_keep_the_results_luminance_and_the_contents_chroma(space):
    torch.manual_seed(0)
    result = torch.rand(1, 3, 8, 10) * 0.5 + 0.25  # mid-range, so nothing is clipped
    content = torch.rand(1, 3, 8, 10) * 0.2 + 0.4
    mixed = to_space(original_colours(result, content, space), space)
    assert torch.allclose(mixed[:, 0], to_space(result, space)[:, 0], atol=1e-5)  # luminance: the result's
    assert torch.allclose(mixed[:, 1:], to_space(content, space)[:, 1:], atol=1e-5)  # chroma: the content's


def test_matched_style_has_the_contents_colour_statistics():
    torch.manual_seed(0)
    style = torch.rand(1, 3, 20, 20) * torch.tensor([0.3, 0.1, 0.2]).view(1, 3, 1, 1) + 0.4
    content = torch.rand(1, 3, 16, 24) * torch.tensor([0.1, 0.25, 0.15]).view(1, 3, 1, 1) + 0.3
    matched = match_colours(style, content)
    assert matched.shape == style.shape
    flat, target = matched[0].flatten(1), content[0].flatten(1)
    assert torch.allclose(flat.mean(1), target.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(flat), torch.cov(target), atol=1e-4)
    # The structure is the style's: the transfer is linear, so correlations between pixels stay.
    assert torch.corrcoef(torch.stack([matched[0, 0].flatten(), style[0, 0].flatten()]))[0, 1].abs() > 0.5


def test_luminance_only_runs_on_grey_images_and_gives_back_the_contents_colours(tmp_path, images):
    from lightning.pytorch import Trainer

    from nst import StyleTransfer, StyleTransferData
    from nst.images import load_image

    data = StyleTransferData(str(images["content"]), str(images["style"]), size=32, luminance_only=True)
    module = StyleTransfer(weights="random", content_layers=["conv2_2"], style_layers=["conv1_1", "conv2_1"])
    from nst.run.outputs import FinalImage

    out = tmp_path / "result.png"
    Trainer(max_steps=3, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            callbacks=[FinalImage(str(out))]).fit(module, data)  # fmt: skip
    for grey in (data.content, *data.styles, module.image.detach()):
        assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    colour = load_image(str(images["content"]), 32)
    assert torch.equal(data.colour_content, colour)
    written = load_image(str(out), 32)
    chroma = (to_space(written, "yiq")[:, 1:] - to_space(colour, "yiq")[:, 1:]).abs().mean()
    assert chroma < 0.02  # the photo's colours on the grey result's luminance


@pytest.mark.parametrize("init", ["content", "noise"])
def test_luminance_only_lbfgs_descends_steadily(tmp_path, images, init):
    # L-BFGS steps in all three channels; had the image been forced back to grey after each
    # step, its curvature pairs would describe steps never taken, and the run blew up
    # (the loss rose a thousandfold within 20 steps at 192 px).
    from lightning.pytorch import Callback, Trainer

    from nst import StyleTransfer, StyleTransferData

    class Totals(Callback):
        def __init__(self):
            self.values = []

        def on_train_batch_end(self, trainer, pl_module, outputs, *args):
            self.values.append(float(outputs["loss"] / pl_module.painting.loss_scale))

    totals = Totals()
    data = StyleTransferData(str(images["content"]), str(images["style"]), size=96, luminance_only=True)
    module = StyleTransfer(weights="random", init=init, content_layers=["conv4_2"])
    Trainer(max_steps=60, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[totals]).fit(module, data)  # fmt: skip
    assert max(totals.values[1:]) <= 1.5 * totals.values[1]  # never climbing far above its start
    assert totals.values[-1] < 0.5 * totals.values[1]
    image = module.image.detach()
    assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])  # grey
