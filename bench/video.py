"""Video: how steady nst's video is, and what it costs, against the same frames painted one by one.

    python bench/video.py [--size 256] [--frames 10] [--weights random|imagenet|FILE] [--clip drawn|pan|both]

Two clips: ``drawn`` (the tests' scene: a texture moving by a known shift, a square standing in
front of it that uncovers what was behind) and ``pan`` (a slow pan and zoom over a photo from
../shared/images, painted like a painting from there; made in a temporary folder, never kept).
Each is painted twice in this process: by nst's video (the defaults: warped start, temporal term,
consistency [1, 2, 4], plateau stop) and frame by frame (``model.temporal_weight 0
--video.init content``, each frame as long as the first). Prints, per clip:

- the warping error of each (nst.video.measure) and their ratio (goal: at most 0.25);
- the mean style loss of each and their ratio (goal: at most 1.10);
- steps per later frame against the first frame's (goal: at most a third);
- flow's share of the wall time (goal: under 10 %), and seconds per frame.

Then a JSON line. Random VGG19 weights (the default here, as ImageNet's cannot be downloaded on
the machines this was written on) make the figures about the method, not about pretty pictures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from drawing import draw_clip, draw_style, write_clip  # noqa: E402

from nst.video import measure  # noqa: E402
from nst.video.run import VideoRun  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def pan_clip(frames: int, width: int = 480, height: int = 270) -> list[np.ndarray]:
    """A slow pan and zoom over a photo: the window moves right and closes in a little each frame."""
    photo = Image.open(IMAGES / "content" / "tubingen.jpg").convert("RGB")
    out = []
    for t in range(frames):
        zoom = 1 + 0.012 * t
        w, h = photo.width * 0.7 / zoom, photo.width * 0.7 / zoom * height / width
        left = photo.width * 0.1 + 4.0 * t
        top = (photo.height - h) / 2
        out.append(
            np.asarray(
                photo.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, left + w, top + h))
            )
        )
    return out


def paint(clip: Path, style: Path, out: Path, args: argparse.Namespace, tied: float | None) -> dict:
    """The clip painted by nst's video with temporal weight ``tied``, or frame by frame (None)."""
    layers = {
        "data.content": str(clip),
        "data.style": str(style),
        "data.size": args.size,
        "model.weights": args.weights,
        "trainer.enable_model_summary": False,
        "checkpoint.every_n_steps": 1000,
        "image_log.every_n_steps": 0,
        "video.frames": args.frames,
        "video.steps_first": args.steps_first,
        "video.steps": args.steps if tied is not None else args.steps_first,
        "video.patience": args.patience,
        "video.min_delta": args.min_delta,
    }
    if tied is None:  # each frame a whole run, as the first: no plateau stop
        layers |= {"model.temporal_weight": 0.0, "video.init": "content", "video.patience": args.steps_first}
    else:
        layers["model.temporal_weight"] = tied
    started = time.perf_counter()
    run = VideoRun([layers], save_dir=out, name="alone" if tied is None else f"tied_{tied:g}")
    result = run.fit()
    wall = time.perf_counter() - started
    state = json.loads((result.run_dir / "video.json").read_text())
    inputs = [np.asarray(Image.open(p)) for p in sorted((result.run_dir / "input").glob("*.png"))]
    outputs = [np.asarray(Image.open(p)) for p in result.frames]
    return {
        "warping_error": measure.warping_error(inputs, outputs),
        "style_loss": float(np.mean([losses["style"] for losses in state["losses"]])),
        "steps_first": state["steps"][0],
        "steps_later": float(np.mean(state["steps"][1:])),
        "flow_share": state.get("flow_seconds", 0.0) / wall,
        "seconds_per_frame": wall / len(outputs),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--steps-first", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--patience", type=int, default=10, help="video.patience")
    parser.add_argument("--min-delta", type=float, default=5e-3, help="video.min_delta")
    parser.add_argument("--clip", choices=["drawn", "pan", "both"], default="both")
    parser.add_argument(
        "--temporal-weights", type=float, nargs="+", default=[200.0],
        help="model.temporal_weight values to try (random weights' losses are ~1000x smaller than ImageNet's)",
    )  # fmt: skip
    args = parser.parse_args()
    figures: dict = {}
    summaries: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        if args.clip in ("drawn", "both"):
            frames, _ = draw_clip(
                args.frames, 2 * args.size, args.size * 4 // 3 // 2 * 2, (3, 1), args.size // 3
            )
            write_clip(tmp / "drawn.mp4", frames, fps=12)
            draw_style(256).save(tmp / "drawn_style.png")
            clips["drawn"] = (tmp / "drawn.mp4", tmp / "drawn_style.png")
        if args.clip in ("pan", "both"):
            write_clip(tmp / "pan.mp4", pan_clip(args.frames), fps=12)
            clips["pan"] = (tmp / "pan.mp4", IMAGES / "style" / "starry_night.jpg")
        for name, (clip, style) in clips.items():
            alone = paint(clip, style, tmp / name, args, tied=None)
            figures[name] = {"frame_by_frame": alone}
            lines = [f"\n{name} clip, {args.frames} frames at {args.size} px, {args.weights} weights"]
            lines.append(
                f"  frame by frame: warping error {alone['warping_error']:.3e}, style loss {alone['style_loss']:.4g}, "
                f"{alone['seconds_per_frame']:.1f} s a frame"
            )
            for weight in args.temporal_weights:
                tied = paint(clip, style, tmp / name, args, tied=weight)
                figures[name][f"video_{weight:g}"] = tied
                lines.append(
                    f"  temporal_weight {weight:g}: warping error {tied['warping_error']:.3e} "
                    f"(ratio {tied['warping_error'] / alone['warping_error']:.3f}, goal <= 0.25), "
                    f"style loss ratio {tied['style_loss'] / alone['style_loss']:.3f} (goal <= 1.10), "
                    f"later/first frame steps {tied['steps_later']:.1f}/{tied['steps_first']} "
                    f"= {tied['steps_later'] / tied['steps_first']:.2f} (goal <= 0.33), "
                    f"flow {100 * tied['flow_share']:.1f} % of wall time (goal < 10 %), "
                    f"{tied['seconds_per_frame']:.1f} s a frame"
                )
            summaries.extend(lines)
            print("\n".join(lines), flush=True)
    print("\n".join(summaries))
    print(json.dumps({"size": args.size, "frames": args.frames, "weights": args.weights, **figures}))


if __name__ == "__main__":
    main()
