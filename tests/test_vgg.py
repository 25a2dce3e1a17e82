import pytest
import torch
from torch import nn
from torchvision.models import vgg19

from nst.errors import NSTError
from nst.numerics.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYER_NAMES,
    VGGFeatures,
    build_features,
    depth_for,
    layer_index,
)
from nst.numerics.weights import load_weights


@pytest.mark.parametrize(
    ("name", "index"),
    [("conv1_1", 0), ("relu1_1", 1), ("pool1", 4), ("conv2_1", 5), ("conv3_1", 10), ("conv3_4", 16),
     ("conv4_1", 19), ("conv4_2", 21), ("relu4_2", 22), ("conv5_1", 28), ("conv5_4", 34), ("pool5", 36)],
)  # fmt: skip
def test_layer_names_map_to_torchvision_indices(name, index):
    assert layer_index(name) == index


def test_names_follow_torchvision_layer_types():
    with torch.device("meta"):
        reference = vgg19().features
    assert len(LAYER_NAMES) == len(reference)
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, layer in zip(LAYER_NAMES, reference, strict=True):
        assert isinstance(layer, kinds[name[:4]]), name


def test_stack_matches_torchvision_shapes_and_is_cut_after_deepest_layer():
    features = build_features(depth_for(["conv1_1", "conv4_2"]))
    assert len(features) == 22
    with torch.device("meta"):
        reference = vgg19().features[:22]
    ours = {k: v.shape for k, v in features.state_dict().items()}
    assert ours == {k: v.shape for k, v in reference.state_dict().items()}


def test_relus_do_not_overwrite_kept_conv_outputs():
    assert not any(getattr(layer, "inplace", False) for layer in build_features(37))


def test_avg_pooling_replaces_max_pooling():
    features = build_features(37, "avg")
    assert sum(isinstance(layer, nn.AvgPool2d) for layer in features) == 5
    assert not any(isinstance(layer, nn.MaxPool2d) for layer in features)


def test_unknown_layer_is_named_with_a_suggestion():
    with pytest.raises(NSTError, match=r"unknown VGG19 layer 'conv4_9'.*did you mean conv4_"):
        layer_index("conv4_9")


def test_extractor_normalises_and_returns_requested_layers():
    extractor = VGGFeatures(["conv2_1", "relu1_2"], load_weights(build_features(6), "random"))
    image = torch.rand(2, 3, 16, 16)
    out = extractor(image)
    assert set(out) == {"conv2_1", "relu1_2"}
    # By hand: normalise, then run torchvision-numbered layers 0..5.
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (image - mean) / std
    for i, layer in enumerate(extractor.features):
        x = layer(x)
        if i == 3:
            assert torch.allclose(out["relu1_2"], x)
    assert torch.allclose(out["conv2_1"], x)
    assert out["conv2_1"].shape == (2, 128, 8, 8)


def test_extractor_is_frozen():
    extractor = VGGFeatures(["conv1_1"], load_weights(build_features(1), "random"))
    assert not any(p.requires_grad for p in extractor.parameters())


def test_replicate_padding_changes_only_the_border_of_the_first_layer():
    from nst.numerics.weights import load_weights

    zeros = load_weights(build_features(1), "random")
    replicate = load_weights(build_features(1, padding="replicate"), "random")
    image = torch.rand(1, 3, 12, 10)
    a, b = zeros(image), replicate(image)
    assert torch.equal(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1])  # the same network inside
    assert not torch.equal(a[..., 0, :], b[..., 0, :])  # the edge sees copies of the edge, not zeros
    assert build_features(5, padding="replicate")[2].padding_mode == "zeros"  # only the first layer
