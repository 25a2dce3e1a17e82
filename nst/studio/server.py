"""The studio's web server: uvicorn's, ending the pages' event streams when told to stop.

On Ctrl-C or SIGTERM uvicorn waits for open responses to end, and a page's event stream never
would (a page held the server for 50 s, then until it was closed). Here the stop signal also
sets the app's ``closing`` event, which ends every stream at once; the running job then stops
at its next step with a checkpoint (the app's shutdown)."""

import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

GRACE_S = 5  # how long open requests get to end once told to stop


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, closing: threading.Event) -> None:
        super().__init__(config)
        self.closing = closing

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.closing.set()
        super().handle_exit(sig, frame)


def run(app: FastAPI, host: str, port: int) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACE_S)
    Server(config, app.state.jobs.closing).run()
