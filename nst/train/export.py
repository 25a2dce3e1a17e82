"""Write a trained style network (the network.pt of nst train) as ONNX or TorchScript, to paint
without nst: onnxruntime, a browser, C++ (libtorch), a phone::

    nst export --network logs/train/version_0/network.pt --format onnx --output starry.onnx
    nst export --network logs/train/version_0/network.pt --output starry.pt      (TorchScript)

Both take and give float32 [N, 3, H, W], RGB in [0, 1], any N, H and W of at least 16 px. The
ONNX graph's input is named ``photo`` and its output ``painting``; the opset is the one torch's
exporter writes.
"""

import contextlib
import inspect
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from nst.errors import NSTError, OneLineParser, brief
from nst.files import atomic_write
from nst.train.architecture import TransformNet
from nst.train.network import MIN_SIDE, Network

FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}  # from the output's suffix
INPUT, OUTPUT = "photo", "painting"
# Traced at sides that are neither multiples of 4 nor equal (the network pads to a multiple of 4,
# and the exporter would take a size it saw in the example as fixed).
_EXAMPLE = (1, 3, 66, 63)


def export_network(
    network: str | Path | Network, output: str | Path, format: str | None = None, overwrite: bool = False
) -> Path:
    """Write ``network`` (a network.pt or a loaded Network) to ``output`` as ``format``
    (``onnx`` or ``torchscript``; None: from the suffix, .onnx or .pt / .ts). The file appears
    whole or not at all; an existing one is refused unless ``overwrite``. Returns ``output``."""
    output = Path(output)
    if format is None:
        format = FORMATS.get(output.suffix.lower())
        if format is None:
            raise NSTError(
                f"--output {output}: say --format onnx or torchscript, or end the path in .onnx, .pt or .ts"
            )
    if format not in ("onnx", "torchscript"):
        raise NSTError(f"--format {format} is not one nst writes; use onnx or torchscript")
    if output.is_dir():
        raise NSTError(f"--output {output} is a folder; give a file path such as {output / 'network.onnx'}")
    if output.exists() and not overwrite:
        raise NSTError(f"{output} exists; choose another path or pass --overwrite")
    if not isinstance(network, Network) and _same_file(output, Path(network)):
        raise NSTError(f"--output {output} is the network file itself; give another path")
    if not isinstance(network, Network):
        network = Network.load(network)
    net = TransformNet(**network.architecture)  # a CPU float32 copy: the caller's network is left as it is
    net.load_state_dict({k: v.float().cpu() for k, v in network.net.state_dict().items()})
    net.eval().requires_grad_(False)
    if format == "onnx":
        _write_onnx(net, output)
    else:
        # Newer torch calls TorchScript deprecated, in a warning at each call; it still is what
        # libtorch (C++) and PyTorch Mobile load, which is why one would ask for it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r".*torch\.jit\.\w+` is deprecated", FutureWarning)
            # Scripted, not traced: the padding to a multiple of 4 stays a computation on the size.
            scripted = torch.jit.script(net)
            with atomic_write(output) as (file, _):
                torch.jit.save(scripted, file)
    return output


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist
        return False


def _write_onnx(net: TransformNet, output: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it, and says so less plainly)
    except ImportError as error:
        raise NSTError("ONNX export needs the onnxscript package: pip install onnxscript") from error
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise NSTError(f"ONNX export needs torch 2.5 or newer (this is {torch.__version__}); update torch")
    batch, height, width = (
        torch.export.Dim(name, min=low)
        for name, low in (("batch", 1), ("height", MIN_SIDE), ("width", MIN_SIDE))
    )
    # The exporter reports each of its stages on stdout and warns about what it optimised: a
    # command that works prints one line, its result.
    chatter = io.StringIO()
    with (
        contextlib.redirect_stdout(chatter),
        warnings.catch_warnings(),
        _quiet_loggers("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"),
    ):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                net,
                (torch.rand(_EXAMPLE),),
                dynamo=True,
                dynamic_shapes={INPUT: {0: batch, 2: height, 3: width}},
                input_names=[INPUT],
                output_names=[OUTPUT],
                verbose=False,
            )
        except Exception as error:
            raise NSTError(
                f"the ONNX exporter failed ({brief(error)}); export --format torchscript instead"
            ) from error
        with atomic_write(output) as (_, partial):
            program.save(str(partial))


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def main(argv: list[str] | None = None) -> None:
    """``nst export --network ...``: ``argv`` as on the command line."""
    parser = OneLineParser(prog="nst export", description=" ".join(__doc__.split("::")[0].split()))
    parser.add_argument("--network", required=True, help="the network.pt of an nst train run")
    parser.add_argument(
        "--format",
        choices=("onnx", "torchscript"),
        help="default: from --output's suffix (.onnx; .pt or .ts)",
    )
    parser.add_argument("--output", required=True, help="the file to write, e.g. starry.onnx or starry.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        written = export_network(args.network, args.output, args.format, args.overwrite)
    except NSTError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {written} ({args.format or FORMATS[written.suffix.lower()]})")


if __name__ == "__main__":
    main()
