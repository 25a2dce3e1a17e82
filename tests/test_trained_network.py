"""A trained style network in use: nst.Network, nst apply (photos, folders, a video) and nst
export --network (ONNX, TorchScript). The network file is made here from seeded random weights
(no training): what is tested is that every path paints as the network itself does."""

import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from drawing import draw_clip, draw_content, write_clip
from PIL import Image

from nst.cli import main
from nst.errors import NSTError
from nst.images import read_image
from nst.run.stopping import RunInterrupted, Stop
from nst.train.apply import apply_network
from nst.train.apply import main as apply_main
from nst.train.architecture import TransformNet
from nst.train.network import Network

# Measured on this network (width 8, one block) at 37×53 and 61×29, batch 2: onnxruntime and
# torch differ by at most 2e-6 (float32 summation order); 1e-4 leaves room for other CPUs'
# kernels while still catching a wrong graph, which is off by 1e-2 or more.
ONNX_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransformNet]:
    """A network file and the network it holds. Every weight is drawn, the instance norms' too
    (left at their 1 and 0 they would not show a scale or shift lost on the way; drawn larger,
    the network's output would be noise that H.264 cannot keep)."""
    torch.manual_seed(0)
    net = TransformNet(width=8, blocks=1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("network") / "network.pt"
    Network(net, {"style": ["drawn"]}).save(path)
    return path, net.eval()


@pytest.fixture
def network_file(trained: tuple[Path, TransformNet]) -> Path:
    return trained[0]


def _photo(width: int, height: int, turn: int = 0) -> Image.Image:
    """A drawn photo; ``turn`` varies its colours, so that photos of one size differ."""
    image = draw_content(width, height)
    return Image.merge("RGB", [image.getchannel(i) for i in np.roll([0, 1, 2], turn)])


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _alone(network: Network, photo: Path) -> np.ndarray:
    """``photo`` painted on its own, as an 8-bit image."""
    return np.asarray(network.paint(read_image(str(photo))), dtype=np.int16)


def _refused(capsys: pytest.CaptureFixture, args: list[str], painting: bool = False) -> str:
    """The one error line of a command line that must fail with exit code 2 (after its progress
    bar's redraws if it failed while ``painting``; alone otherwise)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and (painting or len(lines) == 1), lines
    assert not any(line.startswith(("error", "Traceback")) for line in lines[:-1]), lines
    return lines[-1]


# -- nst.Network ------------------------------------------------------------------------------


def test_network_file_round_trip(trained: tuple[Path, TransformNet], tmp_path: Path) -> None:
    path, net = trained
    network = Network.load(path)
    assert network.architecture == {"width": 8, "blocks": 1} and network.about == {"style": ["drawn"]}
    photos = torch.rand(2, 3, 37, 53)
    painted = network.paint(photos)
    assert torch.equal(painted, net(photos))  # every weight came back, the norms' included
    network.save(tmp_path / "again.pt")
    assert torch.equal(Network.load(tmp_path / "again.pt").paint(photos), painted)
    assert painted.shape == photos.shape and painted.dtype == torch.float32
    assert painted.min() >= 0 and painted.max() <= 1


def test_paint_keeps_size_and_kind(network_file: Path) -> None:
    network = Network.load(network_file)
    picture = network.paint(_photo(37, 53))
    assert isinstance(picture, Image.Image) and picture.size == (37, 53) and picture.mode == "RGB"
    assert network(torch.rand(3, 53, 37)).shape == (3, 53, 37)  # calling it is painting
    with pytest.raises(NSTError, match="at least 16 px"):
        network.paint(torch.rand(1, 3, 15, 40))
    with pytest.raises(NSTError, match="float RGB tensor"):
        network.paint(torch.zeros(3, 20, 20, dtype=torch.uint8))  # 0-255 would be painted as white


def test_a_picture_is_painted_as_alone_in_any_batch(network_file: Path) -> None:
    network = Network.load(network_file)
    photo = torch.rand(1, 3, 37, 53)
    alone = network.paint(photo)
    for others in (torch.zeros(2, 3, 37, 53), torch.ones(2, 3, 37, 53), torch.rand(5, 3, 37, 53)):
        batch = torch.cat([others[:1], photo, others[1:]])
        assert (network.paint(batch)[1:2] - alone).abs().max() < 1e-5


def test_a_pil_photo_is_painted_upright_and_in_srgb_as_apply_reads_it(
    network_file: Path, tmp_path: Path
) -> None:
    # A camera's photo: pixels stored on their side, and the EXIF orientation to turn them.
    stored = _photo(53, 37)
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90° clockwise to be seen upright
    stored.save(tmp_path / "camera.jpg", exif=exif.tobytes(), quality=95)
    network = Network.load(network_file)
    with Image.open(tmp_path / "camera.jpg") as opened:
        painted = network.paint(opened)
    assert painted.size == (37, 53)  # upright, as nst apply and read_image take it
    assert np.array_equal(
        np.asarray(painted), np.asarray(network.paint(read_image(str(tmp_path / "camera.jpg"))))
    )


def test_nst_network_is_public() -> None:
    import nst

    assert nst.Network is Network and "Network" in nst.__all__


# -- nst apply --------------------------------------------------------------------------------


def test_apply_one_photo(network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "photo.png"
    _photo(37, 53).save(photo)
    output = tmp_path / "out" / "painted.png"
    main(["apply", "--network", str(network_file), "--input", str(photo), "--output", str(output)])
    assert f"Wrote {output}" in capsys.readouterr().out
    assert Image.open(output).size == (37, 53)
    assert np.abs(_pixels(output) - _alone(Network.load(network_file), photo)).max() == 0


def test_apply_folder_batches_photos_of_one_size(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        _photo(37, 53, i).save(photos / name)
    _photo(41, 29).save(photos / "sub" / "d.bmp")  # a format nst does not write: painted as .png
    (photos / "notes.txt").write_text("not a photo")
    batches = []
    paint = Network.paint

    def counted(self: Network, pictures: torch.Tensor) -> torch.Tensor:
        batches.append(tuple(pictures.shape))
        return paint(self, pictures)

    monkeypatch.setattr(Network, "paint", counted)
    output = tmp_path / "painted"
    args = ["apply", "--network", str(network_file), "--input", str(photos), "--output"]
    main([*args, str(output)])
    main([*args, str(tmp_path / "by2"), "--batch", "2"])
    assert batches == [(3, 3, 53, 37), (1, 3, 29, 41), (2, 3, 53, 37), (1, 3, 53, 37), (1, 3, 29, 41)]
    monkeypatch.undo()
    written = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    assert written == ["a.png", "b.png", "c.png", "sub/d.png"]
    network = Network.load(network_file)
    for name, source in [("a.png", "a.png"), ("c.png", "c.png"), ("sub/d.png", "sub/d.bmp")]:
        alone = _alone(network, photos / source)
        # Painted in a batch, as alone: equal but for a rare rounding to the other 8-bit level.
        assert np.abs(_pixels(output / name) - alone).max() <= 1
        assert np.abs(_pixels(tmp_path / "by2" / name) - alone).max() <= 1


def test_apply_video_keeps_frames_size_and_sound(network_file: Path, tmp_path: Path) -> None:
    frames, _ = draw_clip(frames=5, width=66, height=48)
    write_clip(tmp_path / "clip.mp4", frames, audio=True)
    output = tmp_path / "painted.mp4"
    args = ["--network", str(network_file), "--input", str(tmp_path / "clip.mp4"), "--output", str(output)]
    main(["apply", *args, "--batch", "2"])
    with av.open(str(output)) as video:
        assert len(video.streams.audio) == 1
        stream = video.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (66, 48)
        painted = [frame.to_ndarray(format="rgb24").astype(np.float64) for frame in video.decode(video=0)]
    assert len(painted) == 5
    # Each frame is the painting of its own frame, in order and in RGB: H.264 keeps little of
    # a random network's fine texture (15 levels off on average), but a frame is twice as far
    # from the painting of any other frame, and from its own with red and blue swapped.
    network = Network.load(network_file)
    with av.open(str(tmp_path / "clip.mp4")) as video:
        expected = [
            np.asarray(network.paint(frame.to_image()), np.float64) for frame in video.decode(video=0)
        ]
    for index, frame in enumerate(painted):
        distances = [np.abs(frame - other).mean() for other in expected]
        own = distances.pop(index)
        assert own < 0.7 * min(distances) and own < 0.7 * np.abs(frame[..., ::-1] - expected[index]).mean()


def test_apply_sizes_a_video_to_even_sides(network_file: Path, tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.mp4", draw_clip(frames=2, width=66, height=48)[0])
    output = tmp_path / "painted.mp4"
    args = ["--network", str(network_file), "--input", str(tmp_path / "clip.mp4"), "--output", str(output)]
    main(["apply", *args, "--size", "33"])
    with av.open(str(output)) as video:
        stream = video.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (32, 24)  # 33×24 made even
        assert len(video.streams.audio) == 0


def test_stop_ends_between_batches_keeping_what_is_finished(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _photo(37, 53, i).save(photos / f"{i}.png")
    write_clip(tmp_path / "clip.mp4", draw_clip(frames=5, width=66, height=48)[0], audio=True)
    stop = Stop()
    paint = Network.paint

    def then_ctrl_c(self: Network, pictures: torch.Tensor) -> torch.Tensor:
        stop.request()  # as Ctrl-C does, while the first batch is painted
        return paint(self, pictures)

    monkeypatch.setattr(Network, "paint", then_ctrl_c)
    args = ["--network", str(network_file), "--input", str(photos), "--output", str(tmp_path / "out")]
    with pytest.raises(RunInterrupted, match=r"saved 1 of 3 photos painted") as stopped:
        apply_main([*args, "--batch", "1"], stop)
    assert not stopped.value.resumable  # no --ckpt_path to suggest
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0.png"]  # whole, and alone

    stop = Stop()
    result = apply_network(network_file, tmp_path / "clip.mp4", tmp_path / "cut.mp4", batch=2, stop=stop)
    assert (result.done, result.total, result.stopped) == (2, 5, 0)
    with av.open(str(tmp_path / "cut.mp4")) as video:  # the video as far as it was painted
        assert len(list(video.decode(video=0))) == 2 and len(video.streams.audio) == 1


def _gatys_checkpoint(path: Path) -> Path:
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {"image": torch.rand(1, 3, 8, 8)}}, path)
    return path


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("gatys", "is the checkpoint of a picture's run, not a style network"),
        ("text", "is not a style network (not a file torch.save wrote)"),
        ("missing", "does not exist"),
        ("small", "photo.png: a picture of 40×15 px is too small for a style network; give one at least 16"),
        ("no photo", "--input"),
    ],
    ids=["gatys", "text", "missing", "small", "no-photo"],
)
def test_apply_refuses_in_one_line_leaving_nothing(
    case: str, says: str, network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photo = tmp_path / "photo.png"
    _photo(40 if case == "small" else 37, 15 if case == "small" else 53).save(photo)
    network = {"gatys": tmp_path / "last.ckpt", "text": tmp_path / "notes.txt", "missing": tmp_path / "no.pt"}
    _gatys_checkpoint(network["gatys"])
    network["text"].write_text("hello")
    network = network.get(case, network_file)
    given = tmp_path / "nowhere.png" if case == "no photo" else photo
    output = tmp_path / "out" / "deeper" / "painted.png"
    line = _refused(
        capsys, ["apply", "--network", str(network), "--input", str(given), "--output", str(output)]
    )
    assert says in line
    assert not (tmp_path / "out").exists()


def test_a_size_beyond_any_memory_is_refused_before_a_photo_is_scaled(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photo = tmp_path / "photo.png"
    _photo(40, 30).save(photo)
    output = tmp_path / "out" / "painted.png"
    args = ["apply", "--network", str(network_file), "--input", str(photo), "--output", str(output)]
    line = _refused(capsys, [*args, "--size", "1000000"])
    assert "--size 1000000 paints" in line and "1000000×750000 px, over the 100 megapixels nst paints" in line
    assert not (tmp_path / "out").exists()


def test_apply_refuses_to_overwrite(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(37, 53).save(photos / "a.png")
    _photo(37, 53, 1).save(photos / "b.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"mine")
    args = [
        "apply",
        "--network",
        str(network_file),
        "--input",
        str(photos),
        "--output",
        str(tmp_path / "out"),
    ]
    line = _refused(capsys, args)
    assert "b.png exists" in line and "--overwrite" in line
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.png"]  # a.png not painted either
    assert (tmp_path / "out" / "b.png").read_bytes() == b"mine"
    main([*args, "--overwrite"])
    assert Image.open(tmp_path / "out" / "b.png").size == (37, 53)


def test_apply_never_paints_over_its_photos(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(37, 53).save(photos / "a.png")
    original = (photos / "a.png").read_bytes()
    (tmp_path / "link").symlink_to(photos, target_is_directory=True)
    network = ["apply", "--network", str(network_file)]
    for given, output in [
        (photos, tmp_path / "photos" / ".." / "photos"),
        (photos, tmp_path / "link"),
        (photos / "a.png", tmp_path / "photos" / ".." / "photos" / "a.png"),
        (photos / "a.png", tmp_path / "link"),  # a folder: the painting would be link/a.png
        (photos / "a.png", tmp_path / "link" / "a.png"),
    ]:
        line = _refused(capsys, [*network, "--input", str(given), "--output", str(output), "--overwrite"])
        assert "give another" in line, line
        assert (photos / "a.png").read_bytes() == original


def test_several_photos_are_not_painted_into_an_image_file_name(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for name in ("a.png", "b.png"):
        _photo(37, 53).save(tmp_path / name)
    network = ["apply", "--network", str(network_file)]
    for given in ([str(tmp_path / "a.png"), str(tmp_path / "b.png")], [str(tmp_path / "*.png")]):
        line = _refused(capsys, [*network, "--input", *given, "--output", str(tmp_path / "out.jpg")])
        assert "out.jpg names an image file" in line and "give a folder" in line
        assert not (tmp_path / "out.jpg").exists()


def test_devices_are_cpu_cuda_cuda_n_mps_or_auto(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from nst.train.apply import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    for wrong in ("gpu", "cuda:x", "cuda:-1", "cuda1", "tpu:0"):
        with pytest.raises(
            NSTError, match="is not a device nst knows; use one of auto, cpu, cuda, cuda:N, mps"
        ):
            pick_device(wrong)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine with two GPUs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1) and pick_device("cuda") == torch.device("cuda")
    with pytest.raises(
        NSTError, match=r"--device cuda:2: this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"
    ):
        pick_device("cuda:2")
    monkeypatch.undo()
    if not torch.cuda.is_available():
        _photo(37, 53).save(tmp_path / "a.png")
        args = ["apply", "--network", str(network_file), "--input", str(tmp_path / "a.png")]
        line = _refused(capsys, [*args, "--output", str(tmp_path / "out.png"), "--device", "cuda:1"])
        assert "--device cuda:1: no such device is available here" in line  # past argparse, in one line
        assert not (tmp_path / "out.png").exists()


def test_a_batch_is_capped_by_pixels_too(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import nst.train.apply as apply_module

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        _photo(37, 53, i).save(photos / f"{i}.png")
    _photo(80, 70).save(photos / "large.png")  # over the cap alone: painted alone
    write_clip(tmp_path / "clip.mp4", draw_clip(frames=5, width=66, height=48)[0])
    batches = []
    paint = Network.paint

    def counted(self: Network, pictures: torch.Tensor) -> torch.Tensor:
        batches.append(tuple(pictures.shape))
        return paint(self, pictures)

    monkeypatch.setattr(Network, "paint", counted)
    monkeypatch.setattr(apply_module, "MAX_BATCH_PIXELS", 2 * 37 * 53 + 100)  # two small photos
    apply_network(network_file, photos, tmp_path / "out", batch=8, bar=False)
    assert batches == [(2, 3, 53, 37), (2, 3, 53, 37), (1, 3, 53, 37), (1, 3, 70, 80)]
    batches.clear()
    monkeypatch.setattr(apply_module, "MAX_BATCH_PIXELS", 3 * 66 * 48)
    apply_network(network_file, tmp_path / "clip.mp4", tmp_path / "out.mp4", batch=8, bar=False)
    assert batches == [(3, 3, 48, 66), (2, 3, 48, 66)]
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        apply_main(["--help"])
    assert "at most 8 megapixels" in " ".join(capsys.readouterr().out.split())


def test_a_video_refused_is_refused_in_apply_terms(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import types

    import nst.video.source as source_module

    write_clip(tmp_path / "clip.mp4", draw_clip(frames=2, width=66, height=48)[0])
    real_open = source_module._open

    def without_rate(path: Path):  # a stream that says no frame rate, as some files' do
        container = real_open(path)
        stream = container.streams.video[0]
        fake = types.SimpleNamespace(
            average_rate=None, guessed_rate=None, base_rate=None, frames=0, codec_context=stream.codec_context
        )
        return types.SimpleNamespace(
            streams=types.SimpleNamespace(video=[fake], audio=[]), close=container.close
        )

    monkeypatch.setattr(source_module, "_open", without_rate)
    args = ["apply", "--network", str(network_file), "--input", str(tmp_path / "clip.mp4")]
    line = _refused(capsys, [*args, "--output", str(tmp_path / "out.mp4")])
    assert "gives no usable frame rate" in line and "ffmpeg -i IN -r 25 OUT.mp4" in line
    assert "video.fps" not in line and "data.content" not in line


# -- nst export --network ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_export(trained: tuple[Path, TransformNet], tmp_path_factory: pytest.TempPathFactory):
    """The network exported once (the exporter takes seconds), with what the command printed."""
    import contextlib
    import io

    path = tmp_path_factory.mktemp("onnx") / "network.onnx"
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        main(["export", "--network", str(trained[0]), "--output", str(path)])  # the format from .onnx
    return path, out.getvalue(), err.getvalue(), caught


def test_onnx_paints_as_the_network(trained: tuple[Path, TransformNet], onnx_export) -> None:
    import onnxruntime

    path, out, err, caught = onnx_export
    assert out == f"Wrote {path} (onnx)\n" and err == "" and not caught  # the exporter's chatter kept in
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["photo"]
    assert [o.name for o in session.get_outputs()] == ["painting"]
    torch.manual_seed(1)
    worst = 0.0
    for shape in [(2, 3, 37, 53), (2, 3, 61, 29), (1, 3, 16, 16)]:
        photos = torch.rand(shape)
        (painted,) = session.run(None, {"photo": photos.numpy()})
        assert painted.shape == shape and painted.dtype == np.float32
        worst = max(worst, float(np.abs(painted - trained[1](photos).numpy()).max()))
    assert worst < ONNX_TOLERANCE


def test_torchscript_paints_as_the_network(
    trained: tuple[Path, TransformNet], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "network.ts"
    main(["export", "--network", str(trained[0]), "--format", "torchscript", "--output", str(path)])
    captured = capsys.readouterr()
    assert captured.out == f"Wrote {path} (torchscript)\n" and captured.err == ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecated in newer torch
        scripted = torch.jit.load(str(path))
    for shape in [(2, 3, 37, 53), (1, 3, 61, 29)]:
        photos = torch.rand(shape)
        assert (scripted(photos) - trained[1](photos)).abs().max() < 1e-6


def test_a_torchscript_export_given_as_a_network_is_refused_in_one_line(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nst.train.export import export_network

    exported = export_network(network_file, tmp_path / "starry.pt")  # TorchScript, from .pt
    _photo(37, 53).save(tmp_path / "a.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _refused(
            capsys,
            [
                "apply",
                "--network",
                str(exported),
                "--input",
                str(tmp_path / "a.png"),
                "--output",
                str(tmp_path / "o.png"),
            ],
        )
        with pytest.raises(NSTError) as refused:
            Network.load(exported)
        again = _refused(capsys, ["export", "--network", str(exported), "--output", str(tmp_path / "x.onnx")])
    assert line == (
        f"error: {exported} is a TorchScript export of a network; give the network.pt it was exported "
        "from (or load it with torch.jit.load)"
    )
    assert str(refused.value) == line.removeprefix("error: ") == again.removeprefix("error: ")
    assert not caught, [str(w.message) for w in caught]  # torch's warning never reaches the terminal


def test_export_refuses_to_overwrite(
    network_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "network.pt"
    path.write_bytes(b"mine")
    line = _refused(capsys, ["export", "--network", str(network_file), "--output", str(path)])
    assert "network.pt exists" in line and "--overwrite" in line
    assert path.read_bytes() == b"mine"
    main(["export", "--network", str(network_file), "--output", str(path), "--overwrite"])
    assert path.read_bytes() != b"mine" and not list(tmp_path.glob(".*.part"))
    line = _refused(capsys, ["export", "--network", str(network_file), "--output", str(tmp_path / "n.bin")])
    assert "--format onnx or torchscript" in line
    line = _refused(
        capsys, ["export", "--network", str(tmp_path / "x.ckpt"), "--output", str(tmp_path / "n.ts")]
    )
    assert "does not exist" in line and not (tmp_path / "n.ts").exists()
    mine = tmp_path / "mine.pt"
    mine.write_bytes(network_file.read_bytes())
    line = _refused(capsys, ["export", "--network", str(mine), "--output", str(mine), "--overwrite"])
    assert "is the network file itself" in line and mine.read_bytes() == network_file.read_bytes()


def test_a_failed_run_leaves_what_it_finished_and_no_folder_it_made_empty(
    network_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _photo(37, 53, i).save(photos / f"{i}.png")
    write_clip(tmp_path / "clip.mp4", draw_clip(frames=4, width=66, height=48)[0])
    calls = []
    paint = Network.paint

    def fails_second(self: Network, pictures: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise NSTError("the device went away")
        return paint(self, pictures)

    monkeypatch.setattr(Network, "paint", fails_second)
    output = tmp_path / "out" / "deeper"
    args = ["apply", "--network", str(network_file), "--input", str(photos), "--output", str(output)]
    line = _refused(capsys, [*args, "--batch", "1"], painting=True)
    assert line == "error: the device went away"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["0.png", "deeper"]  # no .part
    calls.clear()
    # The video's folder is made before its first frame is written, and goes with the video.
    video = tmp_path / "videos" / "painted.mp4"
    args = [
        "apply",
        "--network",
        str(network_file),
        "--input",
        str(tmp_path / "clip.mp4"),
        "--output",
        str(video),
    ]
    line = _refused(capsys, [*args, "--batch", "2"], painting=True)
    assert line == "error: the device went away" and not (tmp_path / "videos").exists()
