import urllib.error

import pytest
import torch
from torchvision.models import vgg19

from nst.errors import NSTError
from nst.numerics.vgg import build_features
from nst.numerics.weights import imagenet_cache_file, load_weights


def torchvision_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's vgg19 file, with generated values."""
    torch.manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg19().state_dict().items()}
    return {k: torch.randn(shape) if "features" in k else torch.zeros(1) for k, shape in shapes.items()}


def features_of(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    return {
        k.removeprefix("features."): v
        for k, v in state.items()
        if k.startswith("features.") and int(k.split(".")[1]) < depth
    }


def assert_loaded(features, expected):
    got = features.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_local_torchvision_file(tmp_path):
    state = torchvision_state_dict()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    assert_loaded(load_weights(build_features(22), str(path)), features_of(state, 22))


def test_local_features_only_file(tmp_path):
    state = features_of(torchvision_state_dict(), 37)
    path = tmp_path / "features.pth"
    torch.save(state, path)
    assert_loaded(load_weights(build_features(10), str(path)), features_of(torchvision_state_dict(), 10))


def test_imagenet_comes_from_the_torch_home_cache_without_network(offline_torch_home):
    state = torchvision_state_dict(seed=2)
    cached = imagenet_cache_file()
    assert cached.parent == offline_torch_home / "hub" / "checkpoints"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    assert_loaded(load_weights(build_features(29), "imagenet"), features_of(state, 29))


def test_imagenet_offline_without_cache_says_which_file_goes_where(offline_torch_home):
    with pytest.raises(NSTError) as error:
        load_weights(build_features(2), "imagenet")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(offline_torch_home / "hub" / "checkpoints") in message
    assert "--model.weights /path/to/vgg19-dcbb9e9d.pth" in message and "--model.weights random" in message


def test_a_failed_imagenet_download_is_tried_once(offline_torch_home, monkeypatch, capsys):
    from nst.numerics import reuse

    tries = []

    def unplugged(url, *args, **kwargs):
        tries.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unplugged)
    with pytest.raises(NSTError, match="cannot download the ImageNet VGG19 weights"):
        reuse.features(10, "max", "imagenet")
    assert len(tries) == 1
    assert capsys.readouterr().out.count("Downloading:") == 1


def test_random_weights_are_seeded_and_independent_of_depth():
    deep = load_weights(build_features(37), "random").state_dict()
    shallow = load_weights(build_features(12), "random").state_dict()
    assert all(torch.equal(shallow[k], deep[k]) for k in shallow)
    assert deep["0.weight"].std() > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"fc.weight": torch.zeros(3, 3)}, "not a VGG19 state dict"),
        ({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, "shape"),
        ([1, 2, 3], "does not hold a state dict"),
    ],
)
def test_bad_weight_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    torch.save(content, path)
    with pytest.raises(NSTError, match=message):
        load_weights(build_features(2), str(path))


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(NSTError, match="not a PyTorch state dict"):
        load_weights(build_features(2), str(path))


def test_unknown_weights_value():
    with pytest.raises(NSTError, match=r"unknown model\.weights 'imagnet'"):
        load_weights(build_features(2), "imagnet")


def test_missing_weights_file(tmp_path):
    with pytest.raises(NSTError, match="weights file not found"):
        load_weights(build_features(2), str(tmp_path / "missing.pth"))
