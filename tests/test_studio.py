"""The studio's web API through FastAPI's test client: uploads, jobs through the run core,
the live event stream, stop and continue, the queue, downloads, the gallery, and safety."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from drawing import draw_content, draw_style
from fastapi.testclient import TestClient
from PIL import Image

from nst.cli import main
from nst.studio import uploads as uploads_module
from nst.studio.app import create_app

FAST = {"size": 32, "steps": 6, "weights": "random", "optimizer": "adam"}


@pytest.fixture
def studio(workdir: Path):
    with TestClient(create_app(workdir / "logs")) as client:
        yield client


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def upload(client: TestClient, data: bytes, name: str = "photo.png"):
    return client.post("/api/uploads", files={"file": (name, data, "application/octet-stream")})


def pair(client: TestClient) -> tuple[str, str]:
    content = upload(client, png(draw_content()), "photo.png").json()["id"]
    style = upload(client, png(draw_style()), "painting.png").json()["id"]
    return content, style


def start(client: TestClient, content: str | None, styles: list[str], **settings) -> dict:
    response = client.post(
        "/api/jobs", json={"content": content, "styles": styles, "settings": {**FAST, **settings}}
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait(
    client: TestClient, job_id: str, until=lambda job: job["status"] in ("finished", "stopped", "failed")
):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/api/jobs").json() if j["id"] == job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there: {job}")


def run_dir(workdir: Path, job: dict) -> Path:
    name, version = job["run"].split("~")
    return workdir / "logs" / name / f"version_{version}"


def test_an_upload_is_kept_and_shown_as_a_thumbnail(studio, workdir):
    response = upload(studio, png(draw_content().resize((640, 480))), "holiday.png")
    info = response.json()
    assert (
        response.status_code == 200
        and info["name"] == "holiday.png"
        and (info["width"], info["height"]) == (640, 480)
    )
    thumbnail = Image.open(io.BytesIO(studio.get(f"/api/uploads/{info['id']}/thumbnail.jpg").content))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 256
    assert [u["id"] for u in studio.get("/api/uploads").json()] == [info["id"]]
    assert upload(studio, png(draw_content().resize((640, 480))), "again.png").json()["id"] == info["id"]


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"this is not a picture", "notes.png", "notes.png is not an image"),
        (b"", "empty.png", "empty.png is empty"),
        (b"GIF89a\x00", "clip.xyz", "clip.xyz is in a format nst cannot read (.xyz)"),
    ],
)
def test_a_bad_upload_gets_one_line_and_nothing_is_stored(studio, workdir, data, name, says):
    response = upload(studio, data, name)
    assert response.status_code == 400
    error = response.json()["error"]
    assert says in error and "\n" not in error and "checking" not in error
    folder = workdir / "logs" / "studio" / "uploads"
    assert not folder.exists() or not any(folder.iterdir())


def test_uploads_are_capped_in_bytes_and_megapixels(studio, monkeypatch):
    monkeypatch.setattr(uploads_module, "MAX_BYTES", 1000)
    big = png(Image.effect_noise((64, 64), 50).convert("RGB"))
    assert "over the 0 MB an upload may be" in upload(studio, big, "big.png").json()["error"]
    monkeypatch.setattr(uploads_module, "MAX_BYTES", 40 * 2**20)
    # One limit, nst's own, checked from the header before the image is decoded.
    wide = png(draw_content())
    monkeypatch.setattr("nst.images.MAX_PIXELS", 1000)
    monkeypatch.setattr(
        "PIL.ImageFile.ImageFile.load", lambda self: pytest.fail("decoded before its size was checked")
    )
    response = upload(studio, wide, "wide.png")
    error = response.json().get("error", response.text)
    assert "over the 0 megapixels nst decodes" in error


def test_a_job_is_an_ordinary_run_whose_config_reruns_from_the_cli(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style])["id"])
    assert job["status"] == "finished" and job["step"] == 6 and job["losses"]["total"] > 0
    first = run_dir(workdir, job)
    assert (first / "final.png").is_file() and (first / "checkpoints" / "last.ckpt").is_file()
    assert any(first.glob("events.out.tfevents.*"))
    main(["fit", "--config", str(first / "config.yaml")])  # the CLI, from the studio's config
    again = first.parent / "version_1"
    assert (again / "final.png").read_bytes() == (first / "final.png").read_bytes()


def test_progress_is_pushed_as_server_sent_events(studio, workdir):
    content, style = pair(studio)
    job = start(studio, content, [style], steps=80)
    seen = []
    with studio.stream("GET", "/api/events?seconds=60") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "job" and event["job"]["id"] == job["id"]:
                    seen.append(event["job"])
                    if event["job"]["status"] == "finished":
                        break
    steps = [j["step"] for j in seen]
    assert steps == sorted(steps) and steps[-1] == 80 and len(set(steps)) > 3
    assert seen[-1]["live"] > 1 and seen[-1]["curve"] and seen[-1]["rate"] > 0
    live = Image.open(io.BytesIO(studio.get(f"/api/jobs/{job['id']}/live.jpg").content))
    assert live.size == (32, 24)


def test_stop_then_continue_ends_as_an_uninterrupted_run(studio, workdir):
    content, style = pair(studio)
    job = start(studio, content, [style], steps=60)
    wait(studio, job["id"], lambda j: j["step"] >= 2)
    assert studio.post(f"/api/jobs/{job['id']}/stop").json()["status"] in ("stopping", "stopped")
    stopped = wait(studio, job["id"])
    assert stopped["status"] == "stopped" and stopped["step"] < 60
    entry = next(e for e in studio.get("/api/runs").json() if e["id"] == stopped["run"])
    assert entry["status"] == "interrupted" and entry["continuable"]
    continued = wait(studio, studio.post(f"/api/runs/{stopped['run']}/continue").json()["id"])
    assert continued["status"] == "finished" and continued["run"] == stopped["run"]
    directory = run_dir(workdir, stopped)
    main(["fit", "--config", str(directory / "config.yaml")])  # the same settings, never stopped
    assert (directory.parent / "version_1" / "final.png").read_bytes() == (
        directory / "final.png"
    ).read_bytes()
    again = studio.post(f"/api/runs/{stopped['run']}/continue")
    assert again.status_code == 400 and "nothing to continue" in again.json()["error"]


def test_a_second_job_waits_in_the_queue(studio, workdir):
    content, style = pair(studio)
    first = start(studio, content, [style], steps=40)
    second = start(studio, None, [style])  # a texture: no photo
    wait(studio, first["id"], lambda j: j["status"] == "running")
    assert next(j for j in studio.get("/api/jobs").json() if j["id"] == second["id"])["status"] == "queued"
    done = [wait(studio, first["id"]), wait(studio, second["id"])]
    assert [j["status"] for j in done] == ["finished", "finished"]
    assert run_dir(workdir, done[1]).name == "version_1"
    config = yaml.safe_load((run_dir(workdir, done[1]) / "config.yaml").read_text())
    assert config["data"]["content"] is None and config["model"]["init"] == "noise"


def test_the_picture_downloads_as_png_jpeg_and_16_bit_tiff(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style])["id"])
    base = f"/api/runs/{job['run']}/picture"
    assert studio.get(f"{base}.png").content == (run_dir(workdir, job) / "final.png").read_bytes()
    assert Image.open(io.BytesIO(studio.get(f"{base}.jpg").content)).format == "JPEG"
    response = studio.get(f"{base}.tif")
    assert "attachment" in response.headers["content-disposition"]
    tiff = tifffile.imread(io.BytesIO(response.content))
    assert tiff.dtype == np.uint16 and tiff.shape == (24, 32, 3)


def test_the_gallery_shows_cli_runs_and_fills_the_form_again(studio, workdir, tiny_config):
    main(["fit", "--config", str(tiny_config())])
    entries = studio.get("/api/runs").json()
    assert [e["id"] for e in entries] == ["tiny~0"]
    entry = entries[0]
    assert entry["status"] == "finished" and entry["losses"]["total"] > 0 and entry["content"] == "content"
    assert entry["form"]["size"] == 32 and entry["form"]["weights"] == "random"
    thumbnail = studio.get("/api/runs/tiny~0/thumbnail.jpg")
    assert Image.open(io.BytesIO(thumbnail.content)).size == (32, 24)


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/..~0/picture.png",
        "/api/runs/tiny~0/../../../etc/passwd",
        "/api/runs/%2e%2e%2ftiny~0/picture.png",
        "/api/runs/tiny~0/picture.ckpt",
        "/api/uploads/..%2f..%2fetc%2fpasswd/thumbnail.jpg",
        "/api/uploads/0123456789abcdef0123/thumbnail.jpg",
        "/static/../nst/studio/app.py",
        "/api/jobs/1/live.jpg",
    ],
)
def test_no_path_from_the_client_reaches_the_filesystem(studio, workdir, tiny_config, path):
    main(["fit", "--config", str(tiny_config())])
    response = studio.get(path)
    assert response.status_code in (400, 404)
    assert b"import" not in response.content and b"root:" not in response.content


def test_bad_settings_and_requests_get_one_line(studio):
    content, style = pair(studio)
    cases = [
        ({"content": content, "styles": [style], "settings": {"size": "big"}}, "Size (px) must be a number"),
        (
            {"content": content, "styles": [style], "settings": {"size": 8}},
            "Size (px) must be between 16 and 4096",
        ),
        ({"content": content, "styles": [style], "settings": {"colour": "x"}}, "unknown setting 'colour'"),
        (
            {"content": content, "styles": [style], "settings": {"style_weight": ""}},
            "Style weight is empty: give a number",
        ),
        (
            {"content": content, "styles": [style], "settings": {"size": None}},
            "Size (px) is empty: give a number",
        ),
        ({"content": content, "styles": [style], "settings": {"seed": 1.5}}, "Seed must be a whole number"),
        (
            {"content": content, "styles": [style, style], "blend": [1]},
            "blend is one weight per painting",
        ),
        ({"content": None, "styles": []}, "nothing to start from"),
        ({"content": "../../etc/passwd", "styles": [style]}, "no such upload"),
    ]
    for body, says in cases:
        response = studio.post("/api/jobs", json=body)
        assert response.status_code in (400, 404) and says in response.json()["error"], (body, response.text)
    assert studio.get("/api/jobs").json() == []


def test_a_token_is_asked_for_when_one_is_set(workdir):
    with TestClient(create_app(workdir / "logs", token="s3cret")) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get("/").status_code == 401
        page = client.get("/?token=s3cret")
        assert page.status_code == 200 and "nst studio" in page.text
        assert client.get("/api/runs").status_code == 200  # the cookie the page was given
        assert client.get("/static/studio.css").status_code == 200


def test_serve_listens_on_this_machine_unless_told_and_then_makes_a_token(monkeypatch, capsys):
    from nst.studio import server

    calls = []
    monkeypatch.setattr(server, "run", lambda app, host, port: calls.append({"host": host, "port": port}))
    main(["serve", "--port", "8765"])
    assert calls[-1]["host"] == "127.0.0.1" and "http://127.0.0.1:8765/ " in capsys.readouterr().out
    main(["serve", "--host", "0.0.0.0"])
    out = capsys.readouterr().out
    assert calls[-1]["host"] == "0.0.0.0" and "?token=" in out


def test_a_photo_alone_is_reconstructed_and_run_again_picks_its_pictures(studio, workdir):
    content, _ = pair(studio)
    job = wait(studio, start(studio, content, [])["id"])
    assert job["status"] == "finished"
    config = yaml.safe_load((run_dir(workdir, job) / "config.yaml").read_text())
    assert config["data"]["style"] is None
    entry = next(e for e in studio.get("/api/runs").json() if e["id"] == job["run"])
    assert entry["content"] == "photo.png" and entry["uploads"] == {
        "content": {"id": content, "name": "photo.png"},
        "styles": [],
    }
    assert entry["form"]["steps"] == 6 and entry["form"]["optimizer"] == "adam"


def test_a_server_restart_loses_nothing(workdir):
    with TestClient(create_app(workdir / "logs")) as client:
        content, style = pair(client)
        job = start(client, content, [style], steps=5000)
        wait(client, job["id"], lambda j: j["step"] >= 2)
    # The server stopped with the job running: it stopped at a step boundary, with a checkpoint.
    with TestClient(create_app(workdir / "logs")) as client:
        entry = client.get("/api/runs").json()[0]
        assert entry["status"] == "interrupted" and entry["continuable"] and entry["picture"]
        continued = client.post(f"/api/runs/{entry['id']}/continue").json()
        twice = client.post(f"/api/runs/{entry['id']}/continue")
        assert twice.status_code == 400 and "running already" in twice.json()["error"]
        wait(client, continued["id"], lambda j: j["status"] == "running" and j["step"] > 2)
        client.post(f"/api/jobs/{continued['id']}/stop")
        assert wait(client, continued["id"])["status"] == "stopped"


def test_a_short_video_is_painted_frame_by_frame_shown_and_offered_as_mp4(studio, workdir):
    import av
    from drawing import draw_clip, write_clip

    frames, _ = draw_clip(4, 64, 48, (2, 1), 12)
    write_clip(workdir / "clip.mp4", frames, fps=8)
    info = upload(studio, (workdir / "clip.mp4").read_bytes(), "clip.mp4").json()
    assert info["kind"] == "video" and info["frames"] == 4 and info["seconds"] == 0.5
    thumbnail = Image.open(io.BytesIO(studio.get(f"/api/uploads/{info['id']}/thumbnail.jpg").content))
    assert thumbnail.format == "JPEG"
    style = upload(studio, png(draw_style()), "painting.png").json()["id"]
    job = wait(studio, start(studio, info["id"], [style])["id"])
    assert job["status"] == "finished", job
    assert (job["kind"], job["frames_done"], job["frames_total"]) == ("video", 4, 4)
    frame = studio.get(f"/api/runs/{job['run']}/frames/3.jpg")
    assert frame.status_code == 200 and Image.open(io.BytesIO(frame.content)).size == (32, 24)
    video = studio.get(f"/api/runs/{job['run']}/video.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (workdir / "got.mp4").write_bytes(video.content)
    with av.open(str(workdir / "got.mp4")) as written:
        assert sum(1 for _ in written.decode(video=0)) == 4
    entry = next(e for e in studio.get("/api/runs").json() if e["id"] == job["run"])
    assert (entry["kind"], entry["frames"], entry["status"]) == ("video", 4, "finished")
    assert entry["form"]["steps"] == FAST["steps"]  # the first frame's, as the page set them


def test_a_video_over_the_studio_caps_gets_one_line(studio, workdir, monkeypatch):
    from drawing import draw_clip, write_clip

    frames, _ = draw_clip(12, 64, 48, (2, 1), 12)
    write_clip(workdir / "long.mp4", frames, fps=4)  # 3 s
    monkeypatch.setattr(uploads_module, "MAX_VIDEO_SECONDS", 2)
    response = upload(studio, (workdir / "long.mp4").read_bytes(), "long.mp4")
    assert response.status_code == 400
    assert response.json()["error"].startswith("long.mp4 is 3.0 s (12 frames), over the 2 s")
    folder = workdir / "logs" / "studio" / "uploads"
    assert not folder.exists() or not any(folder.iterdir())  # nothing kept of it


def test_a_stopped_video_continues_from_the_gallery(studio, workdir):
    from drawing import draw_clip, write_clip

    frames, _ = draw_clip(10, 64, 48, (2, 1), 12)
    write_clip(workdir / "clip.mp4", frames, fps=8)
    video = upload(studio, (workdir / "clip.mp4").read_bytes(), "clip.mp4").json()["id"]
    style = upload(studio, png(draw_style()), "painting.png").json()["id"]
    job = start(studio, video, [style])
    wait(studio, job["id"], until=lambda j: j["frames_done"] >= 1)
    studio.post(f"/api/jobs/{job['id']}/stop")
    stopped = wait(studio, job["id"])
    assert stopped["status"] == "stopped" and stopped["frames_done"] < 10, stopped
    entry = next(e for e in studio.get("/api/runs").json() if e["id"] == stopped["run"])
    assert entry["continuable"] and entry["kind"] == "video"
    continued = studio.post(f"/api/runs/{stopped['run']}/continue").json()
    done = wait(studio, continued["id"])
    assert done["status"] == "finished" and done["frames_done"] == 10, done
    assert len(list((run_dir(workdir, stopped) / "frames").glob("*.png"))) == 10


@pytest.mark.parametrize("typed", ["/etc/passwd", "/no/such/file.pth", "../weights.pth", "file:../x.pth"])
def test_a_typed_path_never_becomes_the_weights_and_says_nothing_of_the_server(studio, typed):
    content, style = pair(studio)
    body = {"content": content, "styles": [style], "settings": {**FAST, "weights": typed}}
    error = studio.post("/api/jobs", json=body).json()["error"]
    # The same line whether the path exists or not: the page learns nothing of the server's files.
    assert error == f"Network weights must be one of imagenet, random, got {typed!r}"
    assert studio.get("/api/jobs").json() == []


def test_weight_files_in_the_weights_folder_are_offered_by_name(workdir):
    folder = workdir / "weights"
    folder.mkdir()
    from test_weights import torchvision_state_dict

    state = {k: v * 0.05 for k, v in torchvision_state_dict().items()}  # He-like scale: no overflow
    torch.save(state, folder / "vgg19-mine.pth")
    (folder / "notes.txt").write_text("not weights")
    with TestClient(create_app(workdir / "logs", weights_dir=folder)) as client:
        weights = next(f for f in client.get("/api/settings").json()["fields"] if f["name"] == "weights")
        assert [c[0] for c in weights["choices"]] == ["imagenet", "random", "file:vgg19-mine.pth"]
        content, style = pair(client)
        job = start(client, content, [style], weights="file:vgg19-mine.pth", steps=1)
        job = wait(client, job["id"])
        assert job["status"] == "finished"
        config = yaml.safe_load((run_dir(workdir, job) / "config.yaml").read_text())
        assert config["model"]["weights"] == str(folder / "vgg19-mine.pth")
        entry = client.get("/api/runs").json()[0]
        assert entry["form"]["weights"] == "file:vgg19-mine.pth"  # Run again picks it again


def test_the_seed_is_a_setting_and_kept_for_run_again(studio, workdir):
    _, style = pair(studio)
    pictures = []
    for seed in (3, 3, 4):
        job = wait(studio, start(studio, None, [style], seed=seed, init="noise")["id"])
        pictures.append((run_dir(workdir, job) / "final.png").read_bytes())
    assert pictures[0] == pictures[1] != pictures[2]
    assert studio.get("/api/runs").json()[0]["form"]["seed"] == 4


def test_a_job_with_nothing_ahead_of_it_is_not_said_to_wait(studio):
    content, style = pair(studio)
    first = start(studio, content, [style], steps=40)
    assert first["ahead"] == 0  # nothing was running: the page says it starts
    second = start(studio, content, [style])
    assert second["ahead"] == 1 and second["status"] == "queued"
    wait(studio, second["id"])


def test_a_damaged_checkpoint_shows_as_a_damaged_card_not_an_error(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style], steps=40)["id"], lambda j: j["step"] >= 26)
    studio.post(f"/api/jobs/{job['id']}/stop")
    wait(studio, job["id"])
    folder = run_dir(workdir, job)
    checkpoint = folder / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # cut off, as by a full disk
    entry = studio.get("/api/runs").json()[0]
    assert entry["status"] == "damaged" and not entry["picture"] and not entry["continuable"]
    for path in ("thumbnail.jpg", "picture.png", "picture.jpg/full"):
        response = studio.get(f"/api/runs/{job['run']}/{path}")
        assert response.status_code == 400 and "damaged checkpoint" in response.json()["error"]


def test_serve_refuses_a_logs_path_that_is_a_file(workdir, capsys):
    (workdir / "logs").write_text("not a folder")
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--logs", str(workdir / "logs")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file, not a folder of runs" in err


def test_a_removed_run_leaves_the_gallery_and_is_kept_aside(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style])["id"])
    folder = run_dir(workdir, job)
    answer = studio.post(f"/api/runs/{job['run']}/remove").json()
    assert answer["removed"] == "studio/version_0" and studio.get("/api/runs").json() == []
    kept = Path(answer["kept_in"])
    assert (
        not folder.exists()
        and (kept / "final.png").is_file()
        and kept.parent == workdir / "logs" / ".removed"
    )


def test_downloads_are_named_after_the_pictures(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style])["id"])
    disposition = studio.get(f"/api/runs/{job['run']}/picture.png").headers["content-disposition"]
    assert 'filename="photo_in_painting_studio-0.png"' in disposition
    assert job["label"] == "studio/version_0"


def test_a_result_becomes_a_photo_and_grows_to_a_larger_size(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style])["id"])
    photo = studio.post(f"/api/runs/{job['run']}/as-photo").json()
    assert photo["width"] == 32 and photo["name"] == "photo_in_painting_studio-0.png"
    larger = studio.post(f"/api/runs/{job['run']}/larger", json={"settings": {"size": 64}}).json()
    done = wait(studio, larger["id"])
    assert done["status"] == "finished", done
    config = yaml.safe_load((run_dir(workdir, done) / "config.yaml").read_text())
    assert config["data"]["size"] == 64 and config["model"]["init"].endswith(f"{photo['id']}.png")
    smaller = studio.post(f"/api/runs/{job['run']}/larger", json={"settings": {"size": 32}})
    assert smaller.status_code == 400 and "a larger size than 32 px" in smaller.json()["error"]


def test_continue_shows_the_whole_runs_curve(studio, workdir):
    content, style = pair(studio)
    job = wait(studio, start(studio, content, [style], steps=60)["id"], lambda j: j["step"] >= 30)
    studio.post(f"/api/jobs/{job['id']}/stop")
    wait(studio, job["id"])
    again = studio.post(f"/api/runs/{job['run']}/continue").json()
    assert again["curve"] and again["curve"][0][0] <= 5  # from the run's first steps, not from here
    wait(studio, again["id"])
