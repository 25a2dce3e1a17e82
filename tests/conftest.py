"""Shared fixtures: a private TORCH_HOME, images the tests draw, and tiny run configs."""

import io
import signal
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from drawing import draw_content, draw_style
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_as_in_a_terminal():
    """A shell starts background jobs with Ctrl-C ignored (SIGINT set to SIG_IGN), which the
    stop tests' processes would inherit; they run as from a terminal instead."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty torch cache, and torch.hub cannot reach the network."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


@pytest.fixture(autouse=True)
def fresh_process_cache():
    """Each test starts as a new process would: no network or targets kept from another test."""
    from nst.numerics import reuse

    reuse.clear()
    yield
    reuse.clear()


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png"}
    draw_content().save(paths["content"])
    draw_style().save(paths["style"])
    return paths


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a temporary directory, so runs land in its logs/."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_config(workdir: Path, images: dict[str, Path]):
    """Write a tiny run config (random VGG, 32 px, shallow layers) and return its path."""

    def make(name: str = "tiny", **model: object) -> Path:
        config = {
            "data": {"content": str(images["content"]), "style": str(images["style"]), "size": 32},
            "model": {
                "weights": "random",
                "content_layers": ["conv2_2"],
                "style_layers": ["conv1_1", "conv2_1", "conv3_1"],
                **model,
            },
            "trainer": {
                "max_steps": 4,
                "log_every_n_steps": 1,
                "enable_progress_bar": False,
                "enable_model_summary": False,
            },
            # Every due write happens, whatever the machine's speed: tests count them by step.
            "checkpoint": {"every_n_steps": 2, "max_time_share": 0},
            "image_log": {"max_time_share": 0},
        }
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return make


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 128, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server():
    """A local HTTP server with a good image, a web page, huge files and answers that stall."""
    huge = png_bytes() + bytes(3 * 2**20)
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = {"/painting.png": png_bytes(), "/page.png": b"<html>not an image</html>"}.get(self.path)
            if self.path.startswith("/huge"):
                body = huge
            if self.path in ("/slow.png", "/mute.png"):
                body = png_bytes()
            if self.path == "/mute.png":  # answers nothing at all for longer than the timeout
                time.sleep(2)
            self.send_response(404 if body is None else 200)
            body = b"missing" if body is None else body
            if self.path != "/huge-unannounced.png":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                if self.path == "/slow.png":  # half the file, then nothing for longer than the timeout
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(2)
                self.wfile.write(body)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_port}", requests)
    httpd.shutdown()
    httpd.server_close()
