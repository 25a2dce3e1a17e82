import pytest
import torch

from nst.numerics.losses import content_loss, gram, style_loss, tv_loss


def test_gram_matches_hand_computation():
    # C=2, H=1, W=2: rows a=(1, 2), b=(3, 4); F·Fᵀ = [[5, 11], [11, 25]], divided by C·H·W = 4
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.allclose(gram(features), expected)


def test_gram_is_fp32_under_bf16_input():
    features = torch.randn(1, 4, 3, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = gram(features)
    assert result.dtype == torch.float32
    assert torch.allclose(result, gram(features.float()))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("height,width", [(3, 4), (1, 2)])  # more positions than channels, and fewer
def test_gram_backward_is_the_exact_gradient(height, width, layout):  # nst's own backward, (G + Gᵀ)·F
    plain = torch.randn(2, 5, height, width)
    features = plain.contiguous(memory_format=layout).requires_grad_(True)  # gram computes in fp32
    weights = torch.randn(2, 5, 5)
    reaching = []  # the gradient as the layer before the loss gets it
    maps = features * 1
    maps.register_hook(reaching.append)
    (gram(maps) * weights).sum().backward()
    positions = height * width
    flat = plain.reshape(2, 5, positions)
    expected = (weights + weights.transpose(1, 2)) @ flat / (5 * positions)  # d/dF of <W, F·Fᵀ>/(C·H·W)
    assert torch.allclose(features.grad.reshape(2, 5, positions), expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(gram(features), flat @ flat.transpose(1, 2) / (5 * positions), rtol=1e-5, atol=1e-6)
    # In the maps' own layout (channels-last: nst's on CPUs with oneDNN and on GPUs), so that the
    # convolution before needs no copy of it.
    assert reaching[0].is_contiguous(memory_format=layout)


def test_content_loss_is_mean_squared_error():
    a = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    b = torch.tensor([[[[1.0, 1.0], [2.0, 1.0]]]])
    assert content_loss(a, b).item() == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_style_loss_compares_gram_matrices():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    target = torch.zeros(1, 2, 2)
    # mean of squares of [[1.25, 2.75], [2.75, 6.25]]
    expected = (1.25**2 + 2 * 2.75**2 + 6.25**2) / 4
    assert style_loss(features, target).item() == pytest.approx(expected)
    assert style_loss(features, gram(features)).item() == 0


def test_tv_loss_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    # vertical differences 1, 2 -> mean of squares 2.5; horizontal 1, 2 -> 2.5
    assert tv_loss(image).item() == pytest.approx(5.0)
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0
