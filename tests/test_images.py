import pytest
import torch
from PIL import Image

from nst.errors import NSTError
from nst.files import default_file_mode
from nst.images import load_image, read_image, save_image


def test_long_side_and_aspect_ratio(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 150), (10, 20, 30)).save(path)
    image = load_image(str(path), 64)
    assert image.shape == (1, 3, 32, 64)
    assert torch.allclose(image[0, :, 0, 0], torch.tensor([10, 20, 30]) / 255)
    tall = tmp_path / "tall.png"
    Image.new("RGB", (100, 400)).save(tall)
    assert load_image(str(tall), 100).shape == (1, 3, 100, 25)


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert read_image(str(path)).size == (20, 40)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(path)
    assert read_image(str(path)).getpixel((0, 0)) == (255, 255, 255)


def test_grayscale_becomes_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (8, 8), 100).save(path)
    assert load_image(str(path), 8).shape == (1, 3, 8, 8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is not a file"),
        (lambda p: p.write_text("not an image"), "is not an image"),
        (lambda p: p.write_bytes(b""), "is not an image"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, make, message):
    path = tmp_path / "content.png"
    make(path)
    with pytest.raises(NSTError, match=message) as error:
        read_image(str(path), "content image")
    assert str(error.value).startswith(f"content image {path}")
    assert "\n" not in str(error.value)


def test_save_round_trips_and_leaves_no_temporary_files(tmp_path):
    image = torch.rand(1, 3, 10, 12)
    path = tmp_path / "out" / "final.png"
    save_image(image, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["final.png"]
    assert path.stat().st_mode & 0o777 == default_file_mode()  # readable like any other file
    back = load_image(str(path), 12)
    assert (back - image).abs().max() <= 0.5 / 255 + 1e-6
