"""The command line: ``nst <command>`` or ``python cli.py <command>``.

Each command is a front door to the run core (nst.run.engine); this module only turns its outcome
into what a terminal expects: exit code 0, one ``error:`` line and exit code 2 for bad
input, or the stop message and exit code 130/143 after Ctrl-C or SIGTERM.
"""

import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COMMANDS = {
    "fit": "optimise one picture from a config: python cli.py fit --config configs/starry.yaml",
    "video": "paint a video frame by frame, each frame tied to the ones before (Ruder et al. 2016)",
    "sweep": "run variants of a config as a grid of runs, laid out in one figure",
    "train": "train a style network on folders of photos (Johnson et al. 2016), on one GPU or many",
    "apply": "paint photos, folders or a video with a trained network, in one pass each",
    "export": "a checkpoint's image as PNG, JPEG, WebP or TIFF; or a network as ONNX or TorchScript",
    "serve": "the studio: a web page to upload, tune, watch, stop and download runs",
}

HELP = f"""usage: nst <command> [options]      (or: python cli.py <command> [options])

nst: neural style transfer (Gatys, Ecker & Bethge 2016) as a PyTorch Lightning project.
A picture is optimised until a frozen VGG19 sees the content of a photo and the style of a
painting in it, with checkpoints, exact resume and TensorBoard logs in logs/<config>/version_N.

commands:
{chr(10).join(f"  {name:<8}{text}" for name, text in COMMANDS.items())}

python cli.py <command> --help lists a command's options. Examples:
  python cli.py fit --config configs/starry.yaml
  python cli.py fit --config configs/starry.yaml --ckpt_path last    # continue after Ctrl-C
  python cli.py video --config configs/video.yaml --data.content clip.mp4 --data.style starry.jpg
  python cli.py sweep --sweep configs/sweeps/4_style_weight_x_init.yaml
  python cli.py train --config configs/train.yaml --data.photos photos/ --data.style starry.jpg
  python cli.py apply --network logs/train/version_0/network.pt --input photo.jpg --output painted.jpg
  python cli.py export logs/starry/version_0/checkpoints/last.ckpt step250.png
  python cli.py export --network logs/train/version_0/network.pt --format onnx --output net.onnx
  python cli.py serve                                               # then open http://127.0.0.1:8000
  tensorboard --logdir logs
In Python: import nst; nst.stylize("photo.jpg", "painting.jpg", size=512, steps=500)"""


def main(args: Sequence[str] | None = None, callbacks: Sequence[Any] = ()) -> None:
    """Entry point; ``args`` as on the command line (tests call it in-process, with
    ``callbacks``, Lightning callbacks, added to every run's trainer)."""
    args = sys.argv[1:] if args is None else list(args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(HELP)
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        _fail(f"unknown command {command!r}; use {', '.join(COMMANDS)} (python cli.py --help)")
    if command == "serve":  # the web server handles Ctrl-C itself, and stops its job with a checkpoint
        from nst.studio.serve import main as serve

        serve(rest)
        return
    main_thread = threading.current_thread() is threading.main_thread()  # signals reach it only
    previous = {s: signal.signal(s, _stopped_while_starting) for s in _SIGNALS} if main_thread else {}
    try:
        from nst.run.stopping import RunInterrupted, Stop
        from nst.run.user_errors import as_nst_error
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stop = Stop()
    with stop.signals():
        try:
            stopped = _run(command, rest, stop, callbacks)
        except RunInterrupted as interrupted:
            stopped = interrupted
        except Exception as error:
            user = as_nst_error(error, command)
            if user is None or os.environ.get("NST_DEBUG"):
                raise
            _fail(str(user))
    if stopped is not None:
        hint = "\nContinue with the same command plus --ckpt_path last" if stopped.resumable else ""
        print(f"{stopped}{hint}", file=sys.stderr)
        sys.exit(0 if _spawned() else 128 + stopped.signum)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stopped_while_starting(signum: int, frame: object) -> None:
    # Importing torch and Lightning takes seconds; a Ctrl-C then should not print a traceback.
    # Nothing is on disk yet, so the process ends at once: an exception raised here could be
    # caught by the module being imported (some catch everything) and the run would go on.
    print(f"stopped by {signal.Signals(signum).name} before the run started", file=sys.stderr, flush=True)
    os._exit(0 if _spawned() else 128 + signum)


def _spawned() -> bool:
    # A process Lightning's launcher started for a batch: its exit code goes to the launcher's
    # watcher, which kills the whole batch at any code but 0, while the process that started
    # it is still writing its own stop checkpoint and says what happened. (nst.run.stopping's
    # is_spawned says the same; this module imports nothing heavy before its handler is in.)
    return os.environ.get("LOCAL_RANK", "0") != "0"


def _run(command: str, args: list[str], stop: Any, callbacks: Sequence[Any]) -> Any:
    if command == "fit":
        from nst.run.engine import Run

        run = Run([args], callbacks=callbacks, stop=stop)
        result = run.fit()
        if result.stopped is None:
            _say_finished(run, result)
        return result.stopped
    if command == "video":
        from nst.video.run import VideoRun

        return VideoRun([args], callbacks=callbacks, stop=stop).fit().stopped
    if command == "train":
        from nst.train.run import TrainRun
        from nst.train.settings import first_process

        result = TrainRun([args], callbacks=callbacks, stop=stop).fit()
        if result.stopped is None and result.network is not None and first_process():
            print(
                f"Wrote {result.network}\nPaint with it: nst apply --network {result.network} --input PHOTO --output OUT"
            )
        return result.stopped if first_process() else None  # said once, by the process that wrote
    if command == "apply":
        from nst.train.apply import main as apply

        apply(args, stop)
    elif command == "sweep":
        from nst.many.sweep import run_sweep

        run_sweep(args, stop, callbacks)
    elif command == "export" and any(a == "--network" or a.startswith("--network=") for a in args):
        from nst.train.export import main as export_network

        export_network(args)
    else:
        from nst.run.export import main as export

        export(args)
    return None


def _say_finished(run: Any, result: Any) -> None:
    """Where a finished run's picture went, and how to take it further (as a stopped run says
    how to continue)."""
    config = run.settings[0].config
    written = [result.run_dir / "final.png"] if result.run_dir is not None else []
    written += [Path(config.output.path)] if config.output.path else []
    written = [_shown(path) for path in written if path.is_file()]
    if not written:
        return
    print(f"Wrote {' and '.join(written)}")
    # Only a run that reached trainer.max_steps: one stopped early (or by trainer.max_time) would
    # stop again at once, and a multi-scale run's length is its phases'.
    reached = result.steps == run.trainer.max_steps and result.stopped_early is None
    if result.checkpoint is not None and reached and not config.model.phases:
        more = 2 * result.steps
        overwrite = " --output.overwrite true" if config.output.path and not config.output.overwrite else ""
        print(
            f"Go on to {more} steps with the same command plus --ckpt_path last --trainer.max_steps {more}{overwrite}"
        )


def _shown(path: Path) -> str:
    """``path`` as typed from here: relative to the working directory when it is inside it."""
    path = path.absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
