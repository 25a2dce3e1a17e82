"""Every bad input, one case each: exit code 2, one line on stderr naming the problem and the fix,
no traceback, and not a file created or changed anywhere (no run directory, no output, no cache entry)."""

import argparse
import io
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from drawing import draw_content
from PIL import Image

from nst import download
from nst.cli import main
from nst.numerics.vgg import build_features
from nst.numerics.weights import load_weights

Setup = Callable[[Path, Path, str], list[str]]  # (workdir, config, server url) -> arguments after "fit"


def options(*extra: str) -> Setup:
    return lambda workdir, config, url: ["--config", str(config), *extra]


def with_file(name: str, content: bytes | Callable[[Path], None], *option: str) -> Setup:
    """Write ``name`` into the working directory and give it to ``option`` (default: the content image)."""

    def setup(workdir: Path, config: Path, url: str) -> list[str]:
        if callable(content):
            content(workdir / name)
        else:
            (workdir / name).write_bytes(content)
        return ["--config", str(config), *(option or ("--data.content",)), name]

    return setup


def url_of(path: str) -> Setup:
    return lambda workdir, config, url: ["--config", str(config), "--data.style", url + path]


def config_file(name: str, content: str | None) -> Setup:
    def setup(workdir: Path, config: Path, url: str) -> list[str]:
        if content is not None:
            (workdir / name).write_text(content)
        return ["--config", name]

    return setup


def checkpoint_then(*extra: str) -> Setup:
    """A finished 2-step run at 32 px, then ``extra`` with --ckpt_path pointing at its checkpoint."""

    def setup(workdir: Path, config: Path, url: str) -> list[str]:
        main(["fit", "--config", str(config), "--trainer.max_steps", "2"])
        ckpt = "logs/tiny/version_0/checkpoints/last.ckpt"
        return ["--config", str(config), *extra, "--ckpt_path", ckpt]

    return setup


def last_run_then(*extra: str) -> Setup:
    """A finished 2-step run, then ``extra`` with --ckpt_path last: its directory must stay untouched."""

    def setup(workdir: Path, config: Path, url: str) -> list[str]:
        main(["fit", "--config", str(config), "--trainer.max_steps", "2"])
        return ["--config", str(config), *extra, "--trainer.max_steps", "3", "--ckpt_path", "last"]

    return setup


def early_stopping(**settings: object) -> Setup:
    """The tiny config and a second one that adds an EarlyStopping with ``settings``."""

    def setup(workdir: Path, config: Path, url: str) -> list[str]:
        init = {"monitor": "loss/total", **settings}
        (workdir / "stop.yaml").write_text(
            yaml.safe_dump(
                {
                    "trainer": {
                        "callbacks": [
                            {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": init}
                        ]
                    }
                }
            )
        )
        return ["--config", str(config), "--config", "stop.yaml"]

    return setup


def jpeg_cut_in_half(path: Path) -> None:
    buffer = io.BytesIO()
    draw_content().save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def png_cut_short(path: Path) -> None:
    buffer = io.BytesIO()
    draw_content().save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[:200])  # the header promises more pixel data than there is


def bomb(path: Path) -> None:
    # 10001 x 10000 one-bit pixels: a 12 KB file that would decode to 100 megapixels, 300 MB as RGB.
    Image.new("1", (10_001, 10_000)).save(path)


def torch_file(content: object) -> Callable[[Path], None]:
    return lambda path: torch.save(content, path)


def vgg_with_a_wrong_shape(path: Path) -> None:
    state = load_weights(build_features(37), "random").state_dict()
    state["0.weight"] = torch.zeros(8, 3, 3, 3)  # VGG19's first convolution has 64 filters
    torch.save({f"features.{k}": v for k, v in state.items()}, path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = [
    # images
    pytest.param(options("--data.content", "missing.jpg"), "content image missing.jpg does not exist; check the path", id="image-missing"),
    pytest.param(options("--data.style", "."), "style image . is not a file", id="image-directory"),
    pytest.param(with_file("empty.png", b""), "content image empty.png is an empty file", id="image-empty"),
    pytest.param(with_file("notes.jpg", b"shopping list\n"), "content image notes.jpg is not an image", id="image-not-an-image"),
    pytest.param(with_file("cut.jpg", jpeg_cut_in_half), "content image cut.jpg cannot be decoded", id="image-truncated-jpeg"),
    pytest.param(with_file("cut.png", png_cut_short), "content image cut.png cannot be decoded", id="image-truncated-png"),
    pytest.param(options("--data.size", "3"), "too small for conv3_1, which needs at least 4 px on each side; raise data.size", id="image-too-small"),
    pytest.param(with_file("bomb.png", bomb, "--data.style"), "style image bomb.png is 10001×10000 px, over the 100 megapixels", id="image-decompression-bomb"),
    pytest.param(with_file("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "in a format nst cannot read (.svg); convert it to PNG", id="image-unsupported-format"),
    pytest.param(options("--model.init", "missing.png"), "model.init 'missing.png' is not content, noise, style or an existing image file", id="init-image-missing"),
    # URLs
    pytest.param(lambda w, c, u: ["--config", str(c), "--data.style", f"http://127.0.0.1:{closed_port()}/a.jpg"], "cannot download http://127.0.0.1:", id="url-unreachable"),
    pytest.param(url_of("/nothing.png"), "cannot download http://127.0.0.1", id="url-http-error"),
    pytest.param(url_of("/page.png"), "did not return an image", id="url-not-an-image"),
    pytest.param(url_of("/huge.png"), "is larger than 1 MiB; download and shrink it yourself", id="url-too-large"),
    pytest.param(url_of("/slow.png"), "the server sent nothing for 0.3 s", id="url-slow-server"),
    # options
    pytest.param(options("--model.style_layers", "[conv1_1,conv9_9]"), "unknown VGG19 layer 'conv9_9'", id="layer-unknown"),
    pytest.param(options("--model.style_layers", "[]"), "model.style_layers is empty but data.style is given; name at least one VGG19 layer, or leave data.style out", id="layer-list-empty"),
    pytest.param(options("--model.content_weight", "-1"), "model.content_weight must be a finite number ≥ 0, got -1.0", id="weight-negative"),
    pytest.param(options("--model.style_weight", ".nan"), "model.style_weight must be a finite number ≥ 0, got nan", id="weight-nan"),
    pytest.param(options("--model.style_weight", ".inf"), "model.style_weight must be a finite number ≥ 0, got inf", id="weight-infinite"),
    pytest.param(options("--model.content_weight", "0", "--model.style_weight", "0"), "every loss weight is zero", id="weights-all-zero"),
    pytest.param(options("--model.optimizer", "sgd"), "Expected a typing.Literal['lbfgs', 'adam']. Got value: sgd", id="optimizer-unknown"),
    pytest.param(options("--model.init", "nosie"), "model.init 'nosie' is not content, noise, style or an existing image file", id="init-unknown"),
    pytest.param(options("--data.size", "0"), "data.size must be a positive number", id="size-zero"),
    pytest.param(options("--data.size", "-5"), "data.size must be a positive number", id="size-negative"),
    pytest.param(options("--data.style_scale", "-1"), "data.style_scale must be a positive number, got -1.0", id="style-scale-negative"),
    pytest.param(options("--model.padding", "reflect"), "Expected a typing.Literal['zeros', 'replicate']. Got value: reflect", id="padding-unknown"),
    pytest.param(options("--data.style_blend", "[1, 2]"), "data.style_blend has 2 weights for 1 style images", id="style-blend-mismatch"),
    pytest.param(options("--data.style", "[]"), "data.style is an empty list", id="style-list-empty"),
    pytest.param(options("--data.size", "big"), "Parser key \"data.size\": expected int or list. Got value: big", id="size-not-a-number"),
    pytest.param(options("--data.size", "1000000"), "data.size 1000000 makes the result 1000000×750000 px, over the 100 megapixels nst paints; lower data.size", id="size-beyond-any-memory"),
    pytest.param(options("--data.size", "[32]"), "data.size is a long side or [width, height], got [32]", id="size-list-of-one"),
    pytest.param(options("--model.lr", "0"), "model.lr must be a positive number", id="lr-zero"),
    pytest.param(options("--model.lbfgs_history", "0"), "model.lbfgs_history must be at least 1", id="lbfgs-history-zero"),
    pytest.param(options("--checkpoint.every_n_steps", "-1"), "checkpoint.every_n_steps must be ≥ 0", id="checkpoint-interval-negative"),
    pytest.param(options("--trainer.min_epochs", "3"), "trainer.min_epochs does not apply: a run is one epoch of steps; use trainer.min_steps", id="min-epochs"),
    pytest.param(options("--trainer.gradient_clip_val", "1"), "trainer.gradient_clip_val does not apply: nst does not clip the image's gradient; leave it out", id="gradient-clipping"),
    pytest.param(options("--checkpoint.max_time_share", "1"), "checkpoint.max_time_share must be at least 0 and below 1, got 1.0", id="checkpoint-share-whole"),
    pytest.param(options("--image_log.max_time_share", "-0.1"), "image_log.max_time_share must be at least 0 and below 1, got -0.1", id="image-share-negative"),
    pytest.param(options("--trainer.precision", "bf16-mixed"), "L-BFGS needs full precision", id="lbfgs-reduced-precision"),
    pytest.param(config_file("missing.yaml", None), "config missing.yaml does not exist", id="config-missing"),
    pytest.param(config_file("broken.yaml", "model: [conv1_1\n  - : :\n"), "config broken.yaml is not valid YAML (expected ',' or ']', but got ':' at line 2, column 5)", id="config-not-yaml"),
    pytest.param(config_file("list.yaml", "- model\n"), "config list.yaml is not a YAML mapping", id="config-not-a-mapping"),
    pytest.param(options("--model.colour", "red"), "unrecognized arguments: --model.colour red", id="unknown-key"),
    pytest.param(with_file("logs", b"a file where the log folder should be", "--trainer.logger.init_args.save_dir"), "cannot create a run directory in logs/tiny", id="log-dir-unwritable"),
    pytest.param(options("--output.path", "content.png/out.png"), "is not a writable folder", id="output-folder-is-a-file"),
    pytest.param(options("--output.path", "result.bmp"), "output.path result.bmp must end in .png, .jpg, .webp or .tif", id="output-format-unsupported"),
    pytest.param(options("--output.quality", "0"), "output.quality must be between 1 and 100, got 0", id="output-quality-out-of-range"),
    pytest.param(options("--trainer.accelerator", "gpu"), "use --trainer.accelerator auto or cpu", id="accelerator-missing", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
    # multi-scale phases (the tiny config is 32 px, 4 steps)
    pytest.param(options("--model.phases", "[{size: 16, steps: 4}]"), "the last of model.phases has size 16 but data.size's long side is 32", id="phases-last-size"),
    pytest.param(options("--model.phases", "[{size: 3, steps: 2}, {size: 32, steps: 2}]"), "too small for conv3_1, which needs at least 4 px on each side; raise model.phases[0].size", id="phases-too-small"),
    pytest.param(options("--model.phases", "[{size: 16, steps: 0}, {size: 32, steps: 4}]"), "model.phases[0].steps must be a whole number ≥ 1, got 0", id="phases-no-steps"),
    pytest.param(options("--model.phases", "[{size: 32}]"), "Parser key \"model.phases\": Missing required keys: {'steps'}", id="phases-missing-key"),
    pytest.param(options("--model.phases", "[{size: 32, steps: 4, colour: red}]"), "Parser key \"model.phases\": Unexpected keys: {'colour'}", id="phases-unknown-key"),
    pytest.param(options("--model.phases", "[]"), "model.phases is an empty list", id="phases-empty"),
    pytest.param(options("--model.phases", "[{size: 32, steps: 4, lr: -1}]"), "model.phases[0].lr must be a positive number", id="phases-lr-negative"),
    pytest.param(options("--model.phases", "[{size: 32, steps: 6}]"), "trainer.max_steps is 4 but model.phases add up to 6 steps", id="phases-other-length"),
    pytest.param(options("--model.optimizer", "adam", "--trainer.precision", "bf16-mixed", "--model.phases", "[{size: 16, steps: 2, optimizer: lbfgs}, {size: 32, steps: 2}]"), "L-BFGS needs full precision", id="phases-lbfgs-reduced-precision"),
    pytest.param(last_run_then("--model.phases", "[{size: 16, steps: 1}, {size: 32, steps: 2}]"), "the run being resumed was made with a different model.phases", id="resume-with-phases-added"),
    # weights
    pytest.param(options("--model.weights", "imagnet"), "unknown model.weights 'imagnet'", id="weights-unknown"),
    pytest.param(options("--model.weights", "nowhere/vgg.pth"), "weights file not found", id="weights-file-missing"),
    pytest.param(options("--model.weights", "imagenet"), "cannot download the ImageNet VGG19 weights", id="weights-imagenet-offline"),
    pytest.param(with_file("vgg.pth", b"hello", "--model.weights"), "not a PyTorch state dict", id="weights-not-a-torch-file"),
    pytest.param(with_file("vgg.pth", torch_file([1, 2, 3]), "--model.weights"), "does not hold a state dict", id="weights-not-a-state-dict"),
    pytest.param(with_file("vgg.pth", torch_file({"fc.weight": torch.zeros(3, 3)}), "--model.weights"), "not a VGG19 state dict", id="weights-another-network"),
    pytest.param(with_file("vgg.pth", torch_file(argparse.Namespace(layers=3)), "--model.weights"), "vgg.pth is not a PyTorch state dict that can be loaded safely (Weights only load failed", id="weights-unsafe-pickle"),
    pytest.param(with_file("vgg.pth", vgg_with_a_wrong_shape, "--model.weights"), "vgg.pth does not match VGG19: 0.weight has shape (8, 3, 3, 3), expected (64, 3, 3, 3)", id="weights-mismatched-shapes"),
    # checkpoints
    pytest.param(options("--ckpt_path", "nowhere.ckpt"), "checkpoint nowhere.ckpt does not exist", id="checkpoint-missing"),
    pytest.param(with_file("bad.ckpt", b"not a checkpoint", "--ckpt_path"), "checkpoint bad.ckpt cannot be read", id="checkpoint-corrupt"),
    pytest.param(with_file("dict.ckpt", torch_file({"a": 1}), "--ckpt_path"), "checkpoint dict.ckpt is a torch file but not a checkpoint Lightning wrote; give --ckpt_path the checkpoints/last.ckpt of an nst run, or last", id="checkpoint-not-lightnings"),
    pytest.param(with_file("vgg.pth", torch_file({"0.weight": torch.zeros(64, 3, 3, 3)}), "--ckpt_path"), "checkpoint vgg.pth is a torch file but not a checkpoint Lightning wrote", id="checkpoint-a-state-dict"),
    pytest.param(options("--ckpt_path", "."), "checkpoint . is a folder; give --ckpt_path the checkpoints/last.ckpt of an nst run, or last", id="checkpoint-a-folder"),
    pytest.param(checkpoint_then("--data.size", "48"), "the run being resumed was made with a different data.size", id="checkpoint-other-size"),
    pytest.param(lambda w, c, u: ["--config", str(c), "--ckpt_path", "last"], "no run of 'tiny' to resume", id="resume-without-a-run"),
    pytest.param(last_run_then("--data.size", "48"), "the run being resumed was made with a different data.size", id="resume-last-with-other-size"),
    pytest.param(options("--ckpt_path", "best"), "nst keeps one checkpoint per run; use --ckpt_path last", id="checkpoint-best"),
    pytest.param(early_stopping(patience=-1), "EarlyStopping's patience must be 0 or more (the checks without improvement it waits before stopping the run), got -1", id="early-stopping-patience-negative"),
    pytest.param(early_stopping(min_delta=float("inf")), "EarlyStopping's min_delta must be a finite number (the change that counts as an improvement), got inf", id="early-stopping-min-delta-infinite"),
    pytest.param(early_stopping(min_delta=float("nan")), "EarlyStopping's min_delta must be a finite number", id="early-stopping-min-delta-nan"),
    pytest.param(early_stopping(mode="mx"), "error: EarlyStopping: `mode` can be min, max, got mx", id="early-stopping-mode-unknown"),
    pytest.param(options("--trainer.strategy", "foo"), "trainer options: You selected an invalid strategy name", id="trainer-strategy-unknown"),
]  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file, and every folder outside the download cache (which may be created empty)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
        for p in root.rglob("*")
        if p.is_file() or not p.is_relative_to(root / "torch_home")
    }


@pytest.mark.parametrize(("setup", "message"), CASES)
def test_bad_input_gets_one_line_and_leaves_nothing(
    tiny_config, workdir, server, monkeypatch, capsys, setup, message
):
    monkeypatch.setattr(download, "MAX_BYTES", 2**20)
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    config = tiny_config()
    args = setup(workdir, config, server.url)
    if "--config" in args and args[args.index("--config") + 1] == str(config):
        args += ["--output.path", "result.png"] if "--output.path" not in args else []
    capsys.readouterr()
    before = snapshot(workdir)

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("error: "), err
    assert message in err, err
    assert snapshot(workdir) == before
