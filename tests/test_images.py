"""Reading images of every kind a user may have, resizing, and writing results."""

import struct
import zlib

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


def exif_rotated(path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (40, 20), (200, 0, 0)).save(path, exif=exif)


def png_48_bit(path):
    """A 16-bit-per-channel RGB PNG (as photo editors export), which Pillow cannot write itself."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + struct.pack(">3H", 65535, 32768, 0) * 6  # filter byte, then 6 pixels
    header = struct.pack(">IIBBBBB", 6, 4, 16, 2, 0, 0, 0)  # 6 x 4 px, 16 bits, RGB
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * 4))
    path.write_bytes(png + chunk(b"IEND", b""))


def lab_with_profile(path):
    """CIELAB pixels (L 50%, a = b = 0: a neutral mid grey) described by an embedded Lab profile."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.new("LAB", (8, 6), (128, 128, 128)).save(path, icc_profile=profile)


def srgb_tagged(path):
    Image.new("RGB", (8, 6), (200, 100, 50)).save(path, icc_profile=images.srgb_profile())


def saved(mode, size, colour, name="image.png"):
    return lambda path: Image.new(mode, size, colour).save(path), name


VALID = [
    # (writer, file name, size read, RGB of the top-left pixel)
    pytest.param(*saved("L", (8, 6), 100), (8, 6), (100, 100, 100), id="grayscale"),
    pytest.param(lambda p: Image.new("RGB", (8, 6), (0, 0, 255)).convert("P").save(p), "palette.gif", (8, 6), (0, 0, 255), id="palette"),
    pytest.param(*saved("RGBA", (8, 6), (255, 0, 0, 0)), (8, 6), (255, 255, 255), id="rgba-transparent-is-white"),
    pytest.param(*saved("RGBA", (8, 6), (255, 0, 0, 128)), (8, 6), (255, 127, 127), id="rgba-half-transparent-on-white"),
    pytest.param(*saved("LA", (8, 6), (0, 0)), (8, 6), (255, 255, 255), id="la-transparent-is-white"),
    pytest.param(*saved("LA", (8, 6), (0, 255)), (8, 6), (0, 0, 0), id="la-opaque"),
    pytest.param(*saved("CMYK", (8, 6), (0, 255, 255, 0), "print.jpg"), (8, 6), (254, 0, 0), id="cmyk"),
    pytest.param(lambda p: Image.fromarray(np.full((6, 8), 32768, dtype=np.uint16)).save(p), "deep.png", (8, 6), (128, 128, 128), id="16-bit-grey"),
    pytest.param(png_48_bit, "deep.png", (6, 4), (255, 128, 0), id="16-bit-rgb"),
    pytest.param(exif_rotated, "photo.jpg", (20, 40), (200, 0, 0), id="exif-rotated"),
    pytest.param(lab_with_profile, "lab.tif", (8, 6), (119, 119, 119), id="icc-profile-lab"),
    pytest.param(srgb_tagged, "tagged.png", (8, 6), (200, 100, 50), id="icc-profile-srgb"),
]  # fmt: skip


@pytest.mark.parametrize(("write", "name", "size", "pixel"), VALID)
def test_every_kind_of_valid_image_reads_as_rgb(tmp_path, write, name, size, pixel):
    path = tmp_path / name
    write(path)
    image = read_image(str(path))
    assert image.mode == "RGB" and image.size == size
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((0, 0)), pixel, strict=True)), image.getpixel(
        (0, 0)
    )


def test_a_huge_photo_is_scaled_down_to_the_size_asked_for(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (6000, 4000), (30, 60, 90)).save(path)
    image = load_image(str(path), 96)
    assert image.shape == (1, 3, 64, 96)
    assert torch.allclose(image[0, :, 32, 48], torch.tensor([30, 60, 90]) / 255, atol=2 / 255)


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


def test_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = tmp_path / "huge.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(NSTError, match=r"is 20×20 px, over the 0 megapixels"):
        read_image(str(path), "style image")


@pytest.mark.parametrize(
    ("name", "quality", "tolerance"),
    [
        ("out.png", 95, 0.5 / 255),
        ("out.jpg", 100, 6 / 255),
        ("out.webp", 100, 0.5 / 255),
        ("out.tif", 95, 0.5 / 65535),
    ],
)
def test_each_output_format_round_trips_tagged_srgb(tmp_path, name, quality, tolerance):
    import io

    import tifffile
    from PIL import ImageCms

    image = torch.rand(1, 3, 12, 16)
    image[..., :6, :] = torch.linspace(0, 1, 16)  # smooth rows, which JPEG keeps well
    path = tmp_path / name
    images.save_image(image, path, quality=quality)
    if name.endswith(".tif"):
        with tifffile.TiffFile(path) as tif:
            pixels = tif.pages[0].asarray()
            profile = tif.pages[0].tags["InterColorProfile"].value
        assert pixels.dtype == np.uint16 and pixels.shape == (12, 16, 3)  # 16 bits per channel
        back = torch.from_numpy(pixels.astype(np.float32) / 65535).permute(2, 0, 1)
    else:
        with Image.open(path) as opened:
            profile = opened.info["icc_profile"]
            assert opened.mode == "RGB"
            back = torch.from_numpy(np.asarray(opened, dtype=np.float32) / 255).permute(2, 0, 1)
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(bytes(profile))))
    top = slice(0, 6)  # the smooth part, for JPEG; lossless formats are checked everywhere
    region = (..., top, slice(None)) if name.endswith(".jpg") else (...,)
    assert (back[region] - image[0][region]).abs().max() <= tolerance + 1e-6


def test_jpeg_quality_trades_size_for_fidelity(tmp_path):
    image = torch.rand(1, 3, 64, 64)
    images.save_image(image, tmp_path / "low.jpg", quality=30)
    images.save_image(image, tmp_path / "high.jpg", quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


@pytest.mark.slow
def test_the_same_image_gives_the_same_file_in_another_process(tmp_path):
    import subprocess
    import sys

    image = torch.rand(1, 3, 6, 8)
    torch.save(image, tmp_path / "image.pt")
    script = "import sys, torch; from nst.images import save_image; save_image(torch.load(sys.argv[1]), sys.argv[2])"
    for name in ("a.png", "b.png"):  # separate processes: nothing cached between them
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "image.pt"), str(tmp_path / name)], check=True
        )
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
