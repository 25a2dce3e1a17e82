"""The animation of a run: frames every N steps, bounded in number, continued across a resume."""

import shutil

import pytest
from PIL import Image

from nst.cli import main
from nst.run import animation


def run(*args: str) -> None:
    main(["fit", *args])


def gif_frames(path) -> int:
    with Image.open(path) as gif:
        return gif.n_frames


def test_a_run_writes_a_gif_with_a_frame_every_n_steps(tiny_config, workdir):
    run("--config", str(tiny_config()), "--trainer.max_steps", "6", "--animation.every_n_steps", "2")
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert [step for step, _ in animation.frames_of(run_dir)] == [0, 2, 4, 6]
    with Image.open(run_dir / "animation.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)
        gif.seek(3)
        last = gif.convert("RGB")
    # The frame's top rows (above the step label) are the result's.
    final = Image.open(run_dir / "final.png").convert("RGB")
    top = (0, 0, 32, 8)
    pairs = list(zip(last.crop(top).tobytes(), final.crop(top).tobytes(), strict=True))
    assert sum(abs(a - b) for a, b in pairs) / len(pairs) < 12  # GIF's dithered 256-colour palette


def test_a_long_run_is_thinned_to_max_frames(tiny_config, workdir):
    run("--config", str(tiny_config()), "--trainer.max_steps", "6", "--animation.every_n_steps", "1",
        "--animation.max_frames", "3")  # fmt: skip
    assert gif_frames(workdir / "logs" / "tiny" / "version_0" / "animation.gif") == 3


def test_a_resumed_run_continues_the_same_animation(tiny_config, workdir):
    config = str(tiny_config())
    run("--config", config, "--trainer.max_steps", "4", "--animation.every_n_steps", "2")
    run(
        "--config",
        config,
        "--trainer.max_steps",
        "6",
        "--animation.every_n_steps",
        "2",
        "--ckpt_path",
        "last",
    )
    run_dir = workdir / "logs" / "tiny" / "version_0"
    assert [step for step, _ in animation.frames_of(run_dir)] == [0, 2, 4, 6]
    assert gif_frames(run_dir / "animation.gif") == 4


def test_thinning_keeps_the_first_and_last():
    assert animation.thin(list(range(10)), 4) == [0, 3, 6, 9]
    assert animation.thin(list(range(3)), 5) == [0, 1, 2]
    assert animation.thin(list(range(3)), 1) == [2]


def test_mp4_without_ffmpeg_says_so(tiny_config, workdir, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exit_info:
        run("--config", str(tiny_config()), "--animation.every_n_steps", "2", "--animation.format", "mp4")
    assert exit_info.value.code == 2
    assert "animation.format mp4 needs ffmpeg on the PATH" in capsys.readouterr().err
    assert not (workdir / "logs").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed here")
def test_mp4_where_ffmpeg_is_installed(tiny_config, workdir):
    run("--config", str(tiny_config()), "--animation.every_n_steps", "2", "--animation.format", "mp4")
    assert (workdir / "logs" / "tiny" / "version_0" / "animation.mp4").stat().st_size > 0
