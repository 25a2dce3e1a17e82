"""Write the image a checkpoint holds, without running anything (no VGG weights needed).

python cli.py export logs/starry/version_0/checkpoints/last.ckpt starry_step250.png   (or python -m nst.run.export ...)
"""

import sys
from pathlib import Path

from nst.errors import NSTError, OneLineParser, brief
from nst.images import save_image
from nst.run.module import StyleTransfer


def export_image(checkpoint: str | Path, output: str | Path, overwrite: bool = False) -> None:
    """Save the image of ``checkpoint`` to ``output`` (format from the extension)."""
    checkpoint, output = Path(checkpoint), Path(output)
    if not checkpoint.is_file():
        raise NSTError(f"checkpoint {checkpoint} does not exist")
    if output.exists() and not overwrite:
        raise NSTError(f"{output} exists; choose another path or pass --overwrite")
    try:
        module = StyleTransfer.load_from_checkpoint(checkpoint, map_location="cpu")
    except NSTError:
        raise
    except Exception as error:
        raise NSTError(f"cannot read checkpoint {checkpoint} ({brief(error)})") from error
    save_image(module.image, output)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="nst export",
        description=__doc__.splitlines()[0],
        epilog="A trained style network as ONNX or TorchScript: python cli.py export --network N --help",
    )
    parser.add_argument("checkpoint")
    parser.add_argument("output", help="image path; .png, .jpg, .webp, .tif, …")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        export_image(args.checkpoint, args.output, args.overwrite)
    except NSTError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
