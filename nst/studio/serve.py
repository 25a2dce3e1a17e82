"""``nst serve``: the studio on http://127.0.0.1:8000 (this machine only, unless --host says
otherwise, and then every request must carry a token)."""

import argparse
import ipaddress
import secrets
import sys
from pathlib import Path
from typing import NoReturn

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (python cli.py serve --help)", file=sys.stderr)
        sys.exit(2)


def main(args: list[str]) -> None:
    parser = _ArgumentParser(prog="nst serve", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", help="the token a non-local studio asks for (default: a new random one)")
    parser.add_argument("--logs", type=Path, default=Path("logs"), help="where runs are kept (default: logs)")
    parser.add_argument(
        "--networks",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of trained style networks (network.pt files) to offer as instant styles, "
        "besides those of the runs in --logs; may be given more than once",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of VGG19 weight files (.pth) the page may choose besides ImageNet's and random "
        "(default: torchvision's cache, $TORCH_HOME/hub/checkpoints); nothing typed on the page is a path",
    )
    parser.add_argument(
        "--tensorboard", default="http://127.0.0.1:6006", help="where TensorBoard runs, for the runs' links"
    )
    options = parser.parse_args(args)
    if not 0 < options.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {options.port}")
    for folder in options.networks:
        if not folder.is_dir():
            parser.error(f"--networks {folder} is not a folder")
    if options.weights_dir is not None and not options.weights_dir.is_dir():
        parser.error(f"--weights-dir {options.weights_dir} is not a folder")
    if options.logs.exists() and not options.logs.is_dir():
        parser.error(
            f"--logs {options.logs} is a file, not a folder of runs; give a folder (it is made if missing)"
        )
    local = options.host in LOOPBACK or _is_loopback(options.host)
    token = options.token or (None if local else secrets.token_urlsafe(18))

    from nst.studio import server
    from nst.studio.app import create_app

    app = create_app(
        options.logs,
        token=token,
        tensorboard=options.tensorboard,
        networks=options.networks,
        weights_dir=options.weights_dir,
    )
    shown = f"[{options.host}]" if ":" in options.host else options.host
    address = f"http://{shown}:{options.port}/" + (f"?token={token}" if token else "")
    print(f"nst studio: {address}   (Ctrl-C stops it; a running job stops with a checkpoint)", flush=True)
    server.run(app, options.host, options.port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
