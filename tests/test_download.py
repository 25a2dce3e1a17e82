"""URL images, served by a local HTTP server on 127.0.0.1."""

import pytest

from nst import download
from nst.errors import NSTError
from nst.images import load_image


def test_downloaded_once_into_the_cache(server, offline_torch_home):
    base, requests = server.url, server.requests
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
    base = server.url
    with pytest.raises(NSTError, match="HTTP 404"):
        load_image(f"{base}/nothing.png", 20)


def test_not_an_image_is_not_cached(server):
    base = server.url
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


def test_a_response_over_the_cap_is_cut_off_and_not_cached(server, monkeypatch):
    monkeypatch.setattr(download, "MAX_BYTES", 2**20)
    for path in ("/huge.png", "/huge-unannounced.png"):  # with and without Content-Length
        with pytest.raises(NSTError, match="is larger than 1 MiB"):
            load_image(f"{server.url}{path}", 20)
    assert list(download.cache_dir().iterdir()) == []  # no partial file either


def test_a_stalled_server_times_out_and_leaves_no_partial_file(server, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    for path in ("/mute.png", "/slow.png"):  # no answer at all; half the file, then nothing
        with pytest.raises(NSTError, match=r"sent nothing for 0\.3 s"):
            load_image(f"{server.url}{path}", 20)
    assert list(download.cache_dir().iterdir()) == []
