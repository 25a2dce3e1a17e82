"""Video: flow, warping and the mask on a drawn clip with a known shift; the temporal term's
effect; stop and continue; the written mp4; bad input."""

import os
import signal
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from drawing import draw_clip, draw_style, write_clip
from PIL import Image
from steps import AtStep

from nst.cli import main
from nst.video import measure
from nst.video.flow import closest_trusted, flow_between, grey, reliable, sample

SHIFT = (2, 1)


def regions(shape, square, margin=8):
    """Pixels far from the frame's edges and the square, and those the square uncovered."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width]
    left, top, right, bottom = square

    def inside(x, y, grow=0):
        return (x >= left - grow) & (x < right + grow) & (y >= top - grow) & (y < bottom + grow)

    edges = (xs < margin) | (xs >= width - margin) | (ys < margin) | (ys >= height - margin)
    far = ~edges & ~inside(xs, ys, margin)
    uncovered = inside(xs - SHIFT[0], ys - SHIFT[1]) & ~inside(xs, ys)
    return far, uncovered


@pytest.fixture(scope="module")
def drawn():
    frames, square = draw_clip(3, 128, 96, SHIFT, 24)
    earlier, later = grey(frames[0]), grey(frames[1])
    backward, forward = flow_between(later, earlier), flow_between(earlier, later)
    return frames, square, backward, forward


def test_flow_recovers_the_known_shift_within_half_a_pixel(drawn):
    _, square, backward, _ = drawn
    far, _ = regions(backward.shape[:2], square)
    error = np.abs(backward - np.array([-SHIFT[0], -SHIFT[1]]))[far]
    assert error.max() < 0.5, error.max()


def test_the_warped_frame_equals_the_shifted_one_inside_the_frame(drawn):
    frames, square, backward, _ = drawn
    far, _ = regions(backward.shape[:2], square)
    warped = sample(frames[0].astype(np.float32), backward)
    difference = np.abs(warped - frames[1].astype(np.float32))[far]
    # The texture changes by up to ~12 levels a pixel: a quarter-pixel error would show as several.
    assert difference.mean() < 1.0 and np.percentile(difference, 99) < 4, (
        difference.mean(),
        difference.max(),
    )


def test_the_mask_is_zero_over_the_uncovered_region_and_one_where_flow_holds(drawn):
    _, square, backward, forward = drawn
    far, uncovered = regions(backward.shape[:2], square)
    mask = reliable(forward, backward)
    assert uncovered.sum() > 50
    assert (mask[uncovered] == 0).all()
    assert (mask[far] == 1).mean() > 0.99
    # The strip the scene moves in from was outside the frame before: nothing there to tie to.
    assert (mask[:, :2] == 0).all() and (mask[0] == 0).all()


def test_each_pixel_is_tied_to_the_nearest_frame_it_can_trust():
    near, middle, far = (
        np.array([1.0, 0.0, 0.0, 1.0]),
        np.array([0.0, 1.0, 0.0, 1.0]),
        np.array([1.0, 1.0, 1.0, 0.0]),
    )
    weights = closest_trusted([near, middle, far])
    assert [w.tolist() for w in weights] == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]]


# -- whole runs ------------------------------------------------------------------------------


@pytest.fixture
def clip(workdir: Path) -> dict[str, Path]:
    frames, _ = draw_clip(5, 96, 64, SHIFT, 20)
    write_clip(workdir / "clip.mp4", frames, fps=12, audio=True)
    draw_style().save(workdir / "style.png")
    config = {
        "data": {"content": "clip.mp4", "style": "style.png", "size": 48},
        "model": {
            "weights": "random",
            "content_layers": ["conv2_2"],
            "style_layers": ["conv1_1", "conv2_1", "conv3_1"],
        },
        "trainer": {"enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1},
        "checkpoint": {"every_n_steps": 2, "max_time_share": 0},
        "video": {"steps_first": 16, "steps": 10, "patience": 3},
    }
    (workdir / "video.yaml").write_text(yaml.safe_dump(config))
    return {"clip": workdir / "clip.mp4", "config": workdir / "video.yaml", "dir": workdir}


def frames_of(run_dir: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((run_dir / "frames").glob("*.png"))]


def test_the_written_video_has_the_source_frame_count_size_rate_and_sound(clip):
    main(["video", "--config", str(clip["config"])])
    run_dir = clip["dir"] / "logs" / "video" / "version_0"
    with av.open(str(run_dir / "video.mp4")) as written, av.open(str(clip["clip"])) as source:
        stream, original = written.streams.video[0], source.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == original.average_rate == 12
        decoded = [frame.to_ndarray(format="rgb24") for frame in written.decode(video=0)]
        assert len(decoded) == 5 == len(frames_of(run_dir))
        assert decoded[0].shape == (32, 48, 3)  # 96 x 64 px at a long side of 48
        assert len(written.streams.audio) == 1
    # Each frame after the first stopped when its loss stopped improving, or at video.steps.
    import json

    steps = json.loads((run_dir / "video.json").read_text())["steps"]
    assert steps[0] == 16 and all(1 <= s <= 10 for s in steps[1:])
    # TensorBoard has each frame's steps and losses, and the frames themselves.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    assert [e.value for e in events.Scalars("video/steps")] == steps
    assert {"video/total", "video/content", "video/style", "video/temporal"} <= set(events.Tags()["scalars"])
    assert len(events.Images("video/frame")) == 5
    frame_run = EventAccumulator(str(run_dir / "runs" / "frame_000002"), size_guidance={"scalars": 0})
    frame_run.Reload()
    assert "loss/temporal" in frame_run.Tags()["scalars"]


def warping_error(run_dir: Path) -> float:
    inputs = [np.asarray(Image.open(p)) for p in sorted((run_dir / "input").glob("*.png"))]
    return measure.warping_error(inputs, frames_of(run_dir))


def test_the_temporal_term_makes_frames_follow_each_other(clip):
    main(["video", "--config", str(clip["config"])])
    main(
        ["video", "--config", str(clip["config"]), "--model.temporal_weight", "0", "--video.init", "content"]
    )
    tied, alone = (clip["dir"] / "logs" / "video" / f"version_{v}" for v in (0, 1))
    assert warping_error(tied) < 0.5 * warping_error(alone), (warping_error(tied), warping_error(alone))


def test_a_stopped_video_continues_at_its_frame_and_step_and_equals_an_uninterrupted_one(clip, monkeypatch):
    main(["video", "--config", str(clip["config"])])
    ctrl_c = AtStep(
        4,
        lambda trainer, module: os.kill(os.getpid(), signal.SIGINT),
        when=lambda trainer: trainer.datamodule.hparams.content == "frame 2",
    )
    with pytest.raises(SystemExit) as stopped:
        main(["video", "--config", str(clip["config"])], callbacks=[ctrl_c])
    assert stopped.value.code == 130
    run_dir = clip["dir"] / "logs" / "video" / "version_1"
    assert len(frames_of(run_dir)) == 2 and not (run_dir / "video.mp4").exists()
    assert (run_dir / "runs" / "frame_000002" / "checkpoints" / "last.ckpt").is_file()
    # The flows of the frames left were made before the stop (ahead of the painting): the
    # continued run reads them from the run directory instead of computing them again.
    from nst.video import prepare

    computed = []
    monkeypatch.setattr(prepare, "flow_between", lambda *args: computed.append(args) or 1 / 0)
    main(["video", "--config", str(clip["config"]), "--ckpt_path", "last"])
    assert computed == []
    uninterrupted = frames_of(clip["dir"] / "logs" / "video" / "version_0")
    continued = frames_of(run_dir)
    assert len(continued) == 5
    for a, b in zip(uninterrupted, continued, strict=True):
        assert np.array_equal(a, b)


def test_a_folder_of_frames_is_a_video(clip, workdir):
    frames, _ = draw_clip(3, 64, 48, SHIFT, 12)
    folder = workdir / "frames_in"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{i + 1}.png")
    main(["video", "--config", str(clip["config"]), "--data.content", str(folder), "--video.fps", "8"])
    with av.open(str(workdir / "logs" / "video" / "version_0" / "video.mp4")) as written:
        assert written.streams.video[0].average_rate == 8
        assert sum(1 for _ in written.decode(video=0)) == 3


def _not_a_video(workdir):
    (workdir / "notes.mp4").write_text("not a video")
    return ["--data.content", "notes.mp4"], "not a video nst can read"


def _empty_folder(workdir):
    (workdir / "empty").mkdir()
    return ["--data.content", "empty"], "holds no frames"


def _mixed_sizes(workdir):
    (workdir / "mixed").mkdir()
    Image.new("RGB", (32, 24)).save(workdir / "mixed" / "1.png")
    Image.new("RGB", (30, 24)).save(workdir / "mixed" / "2.png")
    return ["--data.content", "mixed"], "all frames of a video must have one size"


def _no_frames(workdir):
    # A video stream without a single frame, beside a sound that has some.
    with av.open(str(workdir / "none.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        sound = container.add_stream("aac", rate=44100)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        silence.sample_rate, silence.pts = 44100, 0
        for packet in [*sound.encode(silence), *sound.encode()]:
            container.mux(packet)
    return ["--data.content", "none.mp4"], "has no frames"


CASES = {
    "not a video": _not_a_video,
    "an empty folder": _empty_folder,
    "frames of mixed sizes": _mixed_sizes,
    "a video without frames": _no_frames,
    "no frames asked for": lambda w: (["--video.frames", "0"], "video.frames must be at least 1"),
    "more frames than there are": lambda w: (["--video.frames", "9"], "has 5 frames"),
    "a frame rate below 0": lambda w: (["--video.fps", "-3"], "video.fps must be a frame rate"),
    "consistency without the frame before": lambda w: (["--video.consistency", "[2]"], "1 among them"),
    "a size that is not one": lambda w: (["--data.size", "[40, 30, 20]"], "data.size must be"),
    "a temporal weight below 0": lambda w: (
        ["--model.temporal_weight", "-1"],
        "temporal_weight must be 0 or more",
    ),
    "a size far beyond any memory": lambda w: (
        ["--data.size", "1000000"],
        "data.size 1000000 makes the frames",
    ),
    "a frame too large for memory": lambda w: (
        ["--data.size", "4000", "--model.memory_limit", "0.1"],
        "GB",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_leaves_nothing(clip, capsys, case):
    args, message = CASES[case](clip["dir"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as failed:
        main(["video", "--config", str(clip["config"]), *args])
    assert failed.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("error: "), err
    assert message in err, err
    assert not (clip["dir"] / "logs").exists() or not any((clip["dir"] / "logs").rglob("*.*"))


def test_stylize_video_paints_a_clip_in_python_and_returns_the_video(clip, workdir):
    import nst

    options = {"weights": "random", "content_layers": ["conv2_2"], "style_layers": ["conv1_1", "conv2_1"]}
    path = nst.stylize_video(
        clip["clip"], draw_style(), size=40, log_dir=workdir / "runs", frames=3, steps_first=6, steps=4,
        temporal_weight=50, init="warped", progress_bar=False, **options,
    )  # fmt: skip
    assert path == workdir / "runs" / "video" / "version_0" / "video.mp4"
    with av.open(str(path)) as written:
        assert sum(1 for _ in written.decode(video=0)) == 3
    with pytest.raises(nst.NSTError, match="did you mean temporal_weight"):
        nst.stylize_video(clip["clip"], draw_style(), temporal_wieght=1, **options)


# -- many videos -----------------------------------------------------------------------------


@pytest.fixture
def clips(clip, workdir):
    folder = workdir / "clips"
    folder.mkdir()
    for name, shift in (("left", (2, 1)), ("right", (-2, 0))):
        frames, _ = draw_clip(3, 64, 48, shift, 12)
        write_clip(folder / f"{name}.mp4", frames, fps=10)
    (folder / "notes.txt").write_text("not a video: left out")
    return folder


def test_a_folder_of_videos_is_a_sweep_axis_with_a_figure(clip, clips, workdir):
    main(["sweep", "--config", str(clip["config"]), "--videos", "clips/", "--styles", "style.png"])
    sweep_dir = workdir / "logs" / "video-videos" / "version_0"
    for cell in ("r0c0", "r1c0"):
        with av.open(str(sweep_dir / "cells" / cell / "video.mp4")) as written:
            assert sum(1 for _ in written.decode(video=0)) == 3
    assert sorted(p.name for p in (sweep_dir / "results").iterdir()) == [
        "left__style.png",
        "right__style.png",
    ]
    assert (sweep_dir / "figure.png").is_file() and (sweep_dir / "losses.png").is_file()


@pytest.mark.slow
def test_videos_are_spread_over_processes_and_equal_one_process(clip, clips, workdir):
    import subprocess
    import sys

    command = [sys.executable, str(Path(__file__).parents[1] / "cli.py"), "sweep", "--config", str(clip["config"]),
               "--videos", "clips/", "--styles", "style.png", "--trainer.accelerator", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for extra in ([], ["--trainer.devices", "2"]):
        done = subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "[rank 1]" in done.stdout
    one, two = (workdir / "logs" / "video-videos" / f"version_{v}" / "cells" for v in (0, 1))
    for cell in ("r0c0", "r1c0"):
        assert [
            np.asarray(Image.open(p)).tolist() for p in sorted((one / cell / "frames").glob("*.png"))
        ] == [np.asarray(Image.open(p)).tolist() for p in sorted((two / cell / "frames").glob("*.png"))]


@pytest.mark.parametrize(("suffix", "codec", "pixels"), [(".mov", "libx264", "yuv420p"), (".mkv", "libx264", "yuv420p"), (".webm", "libvpx-vp9", "yuv420p"), (".gif", "gif", "rgb8")])  # fmt: skip
def test_common_containers_are_read_frame_by_frame(tmp_path, suffix, codec, pixels):
    from nst.video.source import VideoSource

    frames, _ = draw_clip(4, 48, 32, SHIFT, 8)
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, pixels
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = VideoSource(path)
    read = list(source.frames())
    assert (source.size, source.fps, len(read)) == ((48, 32), 10, 4)
    # Lossy codecs, so near the drawn frames, not equal to them.
    assert np.abs(read[2].astype(float) - frames[2]).mean() < 24


def test_a_stop_between_two_frames_keeps_the_finished_ones_and_continues(clip, capsys):
    from lightning.pytorch import Callback

    class AtFrameEnd(Callback):
        def on_train_end(self, trainer, pl_module):
            if trainer.datamodule.hparams.content == "frame 1":
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as stopped:
        main(["video", "--config", str(clip["config"])], callbacks=[AtFrameEnd()])
    assert stopped.value.code == 143
    err = capsys.readouterr().err
    assert "saved" in err and "version_0/frames" in err and "--ckpt_path last" in err, err
    run_dir = clip["dir"] / "logs" / "video" / "version_0"
    assert len(frames_of(run_dir)) == 2
    main(["video", "--config", str(clip["config"]), "--ckpt_path", "last"])
    assert len(frames_of(run_dir)) == 5 and (run_dir / "video.mp4").is_file()
