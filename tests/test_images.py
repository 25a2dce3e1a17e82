import numpy as np
import pytest
import torch
from PIL import Image

from nst import images
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
        (lambda p: p.write_bytes(b""), "is an empty file"),
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


def test_16_bit_grey_keeps_its_tones(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)
    assert read_image(str(path)).getpixel((0, 0)) == (128, 128, 128)  # not clipped to white


def test_cmyk_and_palette_images_become_rgb(tmp_path):
    cmyk = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(cmyk)
    red = read_image(str(cmyk)).getpixel((0, 0))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    palette = tmp_path / "palette.gif"
    Image.new("RGB", (8, 6), (0, 0, 255)).convert("P").save(palette)
    assert read_image(str(palette)).getpixel((0, 0)) == (0, 0, 255)


def test_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = tmp_path / "huge.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(NSTError, match=r"is 20×20 px, over the 0 megapixels"):
        read_image(str(path), "style image")
