"""The studio's instant styles: trained networks (network.pt) found in logs/ and in the folders
``nst serve --networks`` names, listed by ids the server made, and painting an uploaded photo
through the API; and in a real headless Chromium, picking a network and a photo."""

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_content
from fastapi.testclient import TestClient
from PIL import Image

from nst.images import resize_long_side
from nst.studio import serve
from nst.studio.app import create_app
from nst.train.architecture import TransformNet
from nst.train.network import Network

CLI = Path(__file__).resolve().parents[1] / "cli.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


def make_network(path: Path, style: str = "starry.jpg", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Network(TransformNet(width=8, blocks=1), {"style": [style], "steps": 10}).save(path)
    return path


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PHOTO = png(draw_content().resize((640, 480)))


def paint(client: TestClient, network: str, data: bytes = PHOTO, name: str = "photo.png", **fields: str):
    return client.post(
        "/api/paint", files={"file": (name, data, "image/png")}, data={"network": network, **fields}
    )


def one_line(response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in error and len(error) < 300, error
    return error


@pytest.fixture
def networks(workdir: Path) -> dict[str, Path]:
    found = {
        "logs": make_network(workdir / "logs" / "train" / "version_0" / "network.pt"),
        "folder": make_network(workdir / "mine" / "waves.pt", style="the_great_wave.png", seed=1),
        "damaged": make_network(workdir / "logs" / "train" / "version_1" / "network.pt", seed=2),
    }
    whole = found["damaged"].read_bytes()
    found["damaged"].write_bytes(whole[: len(whole) // 2])  # as a copy cut short would be
    return found


@pytest.fixture
def studio(workdir: Path, networks: dict[str, Path]):
    with TestClient(create_app(workdir / "logs", networks=[workdir / "mine"])) as client:
        yield client


def listed(client: TestClient) -> dict[str, dict]:
    response = client.get("/api/networks")
    assert response.status_code == 200, response.text
    return {n["name"]: n for n in response.json()["networks"]}


def test_networks_in_logs_and_in_the_networks_folder_are_listed_with_previews(studio, workdir):
    found = listed(studio)
    starry, wave = found["starry · train/version_0"], found["the_great_wave · mine/waves.pt"]
    assert starry["id"] == "train~0" and starry["usable"] and starry["steps"] == 10
    assert wave["usable"] and str(workdir) not in wave["id"]  # an id made here, not its path
    preview = studio.get(f"/api/networks/{wave['id']}/preview.jpg")
    picture = Image.open(io.BytesIO(preview.content))
    assert preview.status_code == 200 and picture.format == "JPEG" and picture.size == (128, 128)

    with TestClient(create_app(workdir / "logs")) as plain:  # no --networks: the runs' own only
        assert not any("mine" in name for name in listed(plain))


def test_training_runs_are_instant_styles_not_pictures_in_the_gallery(studio, workdir):
    # One with its network written, one stopped before its first checkpoint (config.yaml only).
    starting = workdir / "logs" / "train" / "version_2"
    starting.mkdir(parents=True)
    (starting / "config.yaml").write_text("data:\n  photos: photos\n  style: starry.jpg\n")
    (workdir / "logs" / "train" / "version_0" / "config.yaml").write_text("data:\n  photos: photos\n")
    assert studio.get("/api/runs").json() == []
    assert "train~0" in {n["id"] for n in listed(studio).values()}


def test_a_damaged_network_is_listed_as_unusable_and_refused_in_one_line(studio, workdir):
    damaged = next(n for n in listed(studio).values() if n["id"] == "train~1")
    assert damaged["usable"] is False
    assert "train/version_1/network.pt" in damaged["error"] and "\n" not in damaged["error"]
    assert str(workdir) not in damaged["error"]  # the server's folders stay off the page
    error = one_line(paint(studio, "train~1"), 400)
    assert "cannot paint" in error and "train/version_1/network.pt" in error
    one_line(studio.get("/api/networks/train~1/preview.jpg"), 400)
    assert paint(studio, "train~0").status_code == 200  # the others still paint


def test_painting_returns_the_networks_painting_at_the_requested_size(studio, networks):
    response = paint(studio, "train~0", size="200")
    assert response.status_code == 200, response.text
    painted = Image.open(io.BytesIO(response.content))
    assert painted.format == "PNG" and painted.size == (200, 150) and response.headers["x-size"] == "200x150"
    assert 0 < float(response.headers["x-paint-ms"]) <= float(response.headers["x-total-ms"])
    photo = resize_long_side(Image.open(io.BytesIO(PHOTO)).convert("RGB"), 200)
    expected = Network.load(networks["logs"])(photo)  # this network, not another
    difference = np.abs(np.asarray(painted, dtype=int) - np.asarray(expected, dtype=int))
    assert difference.max() <= 1

    assert Image.open(io.BytesIO(paint(studio, "train~0").content)).size == (512, 384)  # 512 unless asked
    small = paint(studio, "train~0", png(draw_content()), size="512")  # 64×48: never enlarged
    assert Image.open(io.BytesIO(small.content)).size == (64, 48)
    assert "from 16 to 2048" in one_line(paint(studio, "train~0", size="4096"), 400)
    assert "from 16 to 2048" in one_line(paint(studio, "train~0", size="big"), 400)
    narrow = png(Image.new("RGB", (2000, 30), "white"))
    assert "16 px on each side" in one_line(paint(studio, "train~0", narrow, size="512"), 400)


def test_a_network_written_again_is_read_again(studio, networks):
    before = paint(studio, "train~0", size="64").content
    make_network(networks["logs"], seed=5)  # as a training run's next checkpoint writes it
    later = os.stat(networks["logs"]).st_mtime + 2
    os.utime(networks["logs"], (later, later))
    assert paint(studio, "train~0", size="64").content != before


def test_the_list_reads_no_network_and_a_painting_loads_only_its_own(studio, workdir, monkeypatch):
    for i in range(6):  # many runs: the list stays quick, whatever their size
        make_network(workdir / "logs" / "many" / f"version_{i}" / "network.pt", seed=i)
    loaded = []
    real_load = Network.load.__func__
    monkeypatch.setattr(
        Network,
        "load",
        classmethod(lambda cls, path, *a: loaded.append(Path(path)) or real_load(cls, path, *a)),
    )
    found = {n["id"]: n for n in listed(studio).values()}
    assert loaded == []  # names, steps and whether each can paint, without loading one
    assert all(found[f"many~{i}"]["usable"] and found[f"many~{i}"]["steps"] == 10 for i in range(6))
    assert found["train~1"]["usable"] is False  # the damaged one is still known to be
    assert paint(studio, "many~3", size="32").status_code == 200
    assert paint(studio, "many~3", size="64").status_code == 200
    assert loaded == [workdir / "logs" / "many" / "version_3" / "network.pt"]  # once, and only it
    listed(studio)
    assert len(loaded) == 1


def test_weights_that_do_not_fit_their_settings_are_listed_as_unusable(studio, workdir):
    path = workdir / "logs" / "odd" / "version_0" / "network.pt"
    make_network(path)
    held = torch.load(path, weights_only=True)
    held["architecture"] = {"width": 16, "blocks": 1}  # the weights are width 8's
    torch.save(held, path)
    odd = {n["id"]: n for n in listed(studio).values()}["odd~0"]
    assert odd["usable"] is False and "do not fit" in odd["error"]
    assert "cannot paint" in one_line(paint(studio, "odd~0"), 400)


def test_torchscript_exports_in_a_networks_folder_are_passed_over(studio, workdir, networks):
    from nst.train.export import export_network

    export_network(networks["folder"], workdir / "mine" / "waves_exported.pt")  # TorchScript
    names = listed(studio)
    assert "the_great_wave · mine/waves.pt" in names
    assert not any("exported" in name for name in names)  # not listed, not even as unusable
    assert all(n["usable"] or n["id"] == "train~1" for n in names.values())


def test_an_unknown_network_is_404(studio):
    for unknown in ("train~7", "nosuch~0", "n0123456789abcdef"):
        assert "no such network" in one_line(paint(studio, unknown), 404)
    one_line(studio.get("/api/networks/train~7/preview.jpg"), 404)
    assert "pick a network" in one_line(studio.post("/api/paint", files={"file": ("p.png", PHOTO)}), 400)


def test_a_path_given_as_a_network_id_is_refused_without_reading_it(studio, workdir, monkeypatch):
    elsewhere = make_network(workdir / "elsewhere" / "network.pt")
    loaded = []
    real_load = Network.load.__func__
    monkeypatch.setattr(
        Network, "load", classmethod(lambda cls, path, *a: loaded.append(path) or real_load(cls, path, *a))
    )
    for path in (str(elsewhere), "../elsewhere/network.pt", "elsewhere/network.pt", "logs/train/version_0/network.pt", "train/version_0"):  # fmt: skip
        assert "no such network" in one_line(paint(studio, path), 404)
    assert not any("elsewhere" in str(p) for p in loaded)


def test_a_bad_upload_is_refused_in_one_line_and_nothing_is_kept(studio, workdir, monkeypatch):
    assert "notes.png is not an image" in one_line(paint(studio, "train~0", b"just words", "notes.png"), 400)
    assert "empty.png is empty" in one_line(paint(studio, "train~0", b"", "empty.png"), 400)
    assert "a video" in one_line(paint(studio, "train~0", b"\x00\x00\x00\x18ftypmp42", "clip.mp4"), 400)
    monkeypatch.setattr("nst.images.MAX_PIXELS", 100_000)
    assert "megapixels" in one_line(paint(studio, "train~0"), 400)  # 640×480 is 0.3
    assert "give a photo" in one_line(studio.post("/api/paint", data={"network": "train~0"}), 400)
    uploads = workdir / "logs" / "studio" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_painting_leaves_the_server_free_to_answer(studio, monkeypatch):
    real_paint = Network.paint

    def slow(self, photos):
        time.sleep(1.5)
        return real_paint(self, photos)

    monkeypatch.setattr(Network, "paint", slow)
    painting = threading.Thread(target=paint, args=(studio, "train~0"), kwargs={"size": "32"})
    painting.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert studio.get("/api/settings").status_code == 200
    answered = time.monotonic() - started
    painting.join()
    assert answered < 1.0, f"the server waited {answered:.1f} s for the painting"


def test_serve_offers_the_networks_folders_it_is_given(workdir, networks, monkeypatch, capsys):
    from nst.studio import server

    served = []
    monkeypatch.setattr(server, "run", lambda app, host, port: served.append(app))
    serve.main(["--logs", str(workdir / "logs"), "--networks", str(workdir / "mine")])
    with TestClient(served[0]) as client:
        assert "the_great_wave · mine/waves.pt" in listed(client)
    with pytest.raises(SystemExit) as stopped:
        serve.main(["--networks", str(workdir / "missing")])
    assert stopped.value.code == 2 and "is not a folder" in capsys.readouterr().err


# -- in a browser ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium and chromedriver here (apt-get install chromium chromium-driver; .ci/run does)",
)
def test_pick_a_network_and_a_photo_and_see_the_painting_in_a_browser(workdir, networks):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, str(CLI), "serve", "--port", str(port), "--networks", "mine"]
    server = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    browser = None
    try:
        address = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(address, timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the studio did not start: {server.stdout.read()}") from None
                time.sleep(0.2)
        browser = webdriver.Chrome(service=Service(DRIVER), options=options)
        browser.set_window_size(390, 844)  # a phone's (a window this narrow only once started)
        browser.get(address)

        def until(condition, what: str, seconds: float = 30):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if value := condition():
                    return value
                time.sleep(0.05)
            raise AssertionError(f"timed out waiting for {what}")

        card = until(
            lambda: browser.find_elements(By.CSS_SELECTOR, "[data-network='train~0']"), "the network"
        )
        assert browser.find_element(By.CSS_SELECTOR, "[data-network='train~1']").get_attribute("disabled")
        card[0].click()
        draw_content().resize((320, 240)).save(workdir / "holiday.png")
        browser.find_element(By.ID, "instant-file").send_keys(str(workdir / "holiday.png"))
        result = browser.find_element(By.ID, "instant-result")
        until(lambda: browser.execute_script("return arguments[0].naturalWidth", result), "the painting")
        assert browser.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result
        ) == [320, 240]
        assert "ms" in browser.find_element(By.ID, "instant-timing").text
        assert (
            browser.find_element(By.ID, "instant-download").get_attribute("download") == "holiday_starry.png"
        )
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=60)
