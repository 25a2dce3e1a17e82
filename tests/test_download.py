"""URL images, served by a local HTTP server on 127.0.0.1."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from nst import download
from nst.errors import NSTError
from nst.images import load_image


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 128, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def server():
    requests: list[str] = []
    routes = {"/painting.png": (200, png_bytes()), "/page.png": (200, b"<html>not an image</html>")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            status, body = routes.get(self.path, (404, b"missing"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", requests
    httpd.shutdown()
    httpd.server_close()


def test_downloaded_once_into_the_cache(server, offline_torch_home):
    base, requests = server
    url = f"{base}/painting.png"
    first = load_image(url, 20)
    second = load_image(url, 20)
    assert first.shape == second.shape == (1, 3, 10, 20)
    assert requests == ["/painting.png"]
    cached = download.cached_path(url)
    assert cached.is_file()
    assert cached.parent == offline_torch_home / "nst" / "images"
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no partial files


def test_http_error(server):
    base, _ = server
    with pytest.raises(NSTError, match="HTTP 404"):
        load_image(f"{base}/nothing.png", 20)


def test_not_an_image_is_not_cached(server):
    base, _ = server
    url = f"{base}/page.png"
    with pytest.raises(NSTError, match="did not return an image"):
        load_image(url, 20)
    assert not download.cached_path(url).exists()
    assert list(download.cached_path(url).parent.iterdir()) == []


def test_unreachable_host():
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NSTError, match=r"cannot download http://127\.0\.0\.1.*pass a local file"):
        load_image(f"http://127.0.0.1:{port}/x.png", 20)
