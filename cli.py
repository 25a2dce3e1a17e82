"""Neural style transfer: ``python cli.py fit --config configs/starry.yaml`` (see README.md)."""

import os
import signal
import sys


def _stopped_while_starting(signum: int, frame: object) -> None:
    # Importing torch and Lightning takes seconds; a Ctrl-C then should not print a traceback.
    # Nothing is on disk yet, so the process ends at once: an exception raised here could be
    # caught by the module being imported (some catch everything) and the run would go on.
    print(f"stopped by {signal.Signals(signum).name} before the run started", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if __name__ == "__main__":
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped_while_starting)
    from nst.cli import main

    main()
