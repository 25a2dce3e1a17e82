"""The studio's web application (FastAPI): the page, uploads, jobs, the live event stream,
the gallery and downloads. Files are found only by ids this server made; nothing the client
sends is used as a path."""

import asyncio
import contextlib
import io
import json
import queue
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from nst.errors import NSTError
from nst.images import MAX_PIXELS, save_image, to_pil, to_tensor
from nst.many.sweep_figure import logged_scalars
from nst.run import run_dirs
from nst.studio.form import NAME, default_weights_dir, fields, settings_of
from nst.studio.gallery import Gallery
from nst.studio.jobs import CURVE_POINTS, Jobs, run_label
from nst.studio.networks import DEFAULT_SIDE, HOW, MAX_SIDE, Networks
from nst.studio.uploads import MAX_BYTES, Uploads
from nst.video.run import RESULT as VIDEO
from nst.video.run import frame_path, is_video_run

STATIC = Path(__file__).parent / "static"
FORMATS = {"png": "image/png", "jpg": "image/jpeg", "tif": "image/tiff"}
TOKEN_COOKIE = "nst_token"
# What every new studio run has besides its form: no terminal bar (nobody sees the server's
# terminal), and checkpoints often enough that Stop and a crash lose little.
NEW_RUN = {"trainer.enable_progress_bar": False, "checkpoint.every_n_steps": 25}


def create_app(
    logs: Path = Path("logs"),
    token: str | None = None,
    tensorboard: str | None = None,
    networks: Sequence[Path] = (),
    weights_dir: Path | None = None,
) -> FastAPI:
    """The studio over the runs in ``logs``; with ``token``, every request must carry it.
    ``networks``: folders of trained style networks to offer besides the runs' own.
    ``weights_dir``: where the VGG19 weight files the page may choose are (default:
    torchvision's cache)."""
    logs = logs.absolute()
    if logs.exists() and not logs.is_dir():
        raise NSTError(
            f"{logs} is a file, not a folder of runs: give --logs a folder (it is made if missing)"
        )
    weights_dir = default_weights_dir() if weights_dir is None else weights_dir
    uploads = Uploads(logs / NAME / "uploads")
    jobs = Jobs()
    styles = Networks(logs, networks)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(jobs.close)  # a running job stops at its next step, with a checkpoint

    app = FastAPI(title="nst studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    gallery = Gallery(logs, uploads.name, uploads.folder, weights_dir)
    app.state.jobs = jobs

    @app.exception_handler(NSTError)
    async def one_line(request: Request, error: NSTError) -> JSONResponse:
        status = 404 if str(error).startswith("no such") else 400
        return JSONResponse({"error": str(error)}, status_code=status)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        if token is None or request.url.path.startswith("/static/"):
            return await call_next(request)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
        given = given or request.headers.get("x-nst-token")
        if not (given and secrets.compare_digest(given, token)):
            return JSONResponse({"error": "this studio asks for its token: open the address it printed"}, 401)
        response = await call_next(request)
        if request.query_params.get("token"):  # the printed address: remembered for the page's requests
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/settings")
    async def settings() -> dict[str, Any]:
        return {
            "fields": fields(weights_dir),
            "tensorboard": tensorboard,
            "max_upload_mb": MAX_BYTES // 2**20,
            "max_megapixels": MAX_PIXELS // 10**6,
        }

    @app.post("/api/uploads")
    async def upload(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        data = await file.read(MAX_BYTES + 1)
        return await asyncio.to_thread(uploads.add, data, file.filename or "upload")

    @app.get("/api/uploads")
    async def recent() -> list[dict[str, Any]]:
        return uploads.recent()

    @app.get("/api/uploads/{upload_id}/thumbnail.jpg")
    async def upload_thumbnail(upload_id: str) -> Response:
        return _jpeg(await asyncio.to_thread(uploads.thumbnail, upload_id))

    @app.post("/api/jobs")
    async def start(request: Request) -> dict[str, Any]:
        body = await _json(request)
        content = body.get("content")
        styles = body.get("styles") or []
        if not isinstance(styles, list):
            raise NSTError("styles is a list of upload ids")
        if content is None and not styles:
            raise NSTError("give a photo, a painting or both: there is nothing to start from")
        form = body.get("settings") or {}
        if not isinstance(form, dict):
            raise NSTError("settings is a mapping of the form's fields")
        if content is None and form.get("init", "content") == "content":
            form = {**form, "init": "noise"}  # a texture has no photo to start from
        settings = settings_of(form, weights_dir)
        style_paths = [str(uploads.path(s)) for s in styles]
        blend = body.get("blend")
        if blend is not None:
            if not isinstance(blend, list) or len(blend) != len(styles):
                raise NSTError("blend is one weight per painting")
            settings["data.style_blend"] = _blend(blend)
        layer = {
            **settings,
            "data.content": str(uploads.path(content)) if content is not None else None,
            "data.style": (style_paths[0] if len(style_paths) == 1 else style_paths) or None,
            **NEW_RUN,
        }
        video = content is not None and uploads.is_video(content)
        if video:  # the steps are the first frame's; later frames start from it and stop sooner
            steps = layer.pop("trainer.max_steps")
            layer |= {"video.steps_first": steps, "video.steps": max(1, min(steps, 200))}
            # No more frames than the upload was counted to have (and checked against the caps).
            layer["video.frames"] = uploads.info(content)["frames"]
        names = [uploads.name(i) for i in ([content] if content else []) + styles]
        title = " × ".join(n for n in names if n) or "run"
        where = run_dirs.Where(save_dir=str(logs), name=NAME)
        job = jobs.submit(title, [layer], where, kind="video" if video else "picture")
        return jobs.describe(job)

    @app.get("/api/jobs")
    async def job_list() -> list[dict[str, Any]]:
        return [jobs.describe(job) for job in jobs.jobs.values()]

    @app.post("/api/jobs/{job_id}/stop")
    async def stop(job_id: str) -> dict[str, Any]:
        return jobs.describe(jobs.stop(job_id))

    @app.get("/api/jobs/{job_id}/live.jpg")
    async def live(job_id: str) -> Response:
        job = jobs.jobs.get(job_id)
        if job is None or job.live is None:
            raise NSTError("no such picture")
        return Response(job.live, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/events")
    async def events(request: Request, seconds: float = 3600) -> StreamingResponse:
        stream = jobs.subscribe()

        async def send() -> Any:
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            try:
                for job in jobs.jobs.values():
                    yield _event({"type": "job", "job": jobs.describe(job)})
                yield _event({"type": "ready"})
                quiet = 0.0
                # The stream ends when the server stops: open pages must not hold it up.
                while (
                    loop.time() < until and not jobs.closing.is_set() and not await request.is_disconnected()
                ):
                    try:
                        yield _event(stream.get_nowait())
                        quiet = 0.0
                    except queue.Empty:
                        await asyncio.sleep(0.05)
                        quiet += 0.05
                        if quiet > 15:  # keeps proxies and the browser from closing an idle stream
                            yield ": still here\n\n"
                            quiet = 0.0
            finally:
                jobs.unsubscribe(stream)

        return StreamingResponse(
            send(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.get("/api/networks")
    async def network_list() -> dict[str, Any]:
        found = await asyncio.to_thread(styles.entries)
        return {"networks": found, "how": HOW, "size": DEFAULT_SIDE, "max_size": MAX_SIDE}

    @app.get("/api/networks/{network_id}/preview.jpg")
    async def network_preview(network_id: str) -> Response:
        return Response(await asyncio.to_thread(styles.preview, network_id), media_type="image/jpeg")

    @app.post("/api/paint")
    async def paint(
        file: Annotated[UploadFile | None, File()] = None,
        network: Annotated[str | None, Form()] = None,
        size: Annotated[str | None, Form()] = None,
    ) -> Response:
        # Every field optional here and checked below: a missing one gets one line, not FastAPI's list.
        if network is None:
            raise NSTError("pick a network: network is the id the network list gave")
        if file is None:
            raise NSTError("give a photo to paint: file is missing")
        long_side = _side(size)
        data = await file.read(MAX_BYTES + 1)
        name = file.filename or "photo"
        painted = await asyncio.to_thread(
            styles.paint, network, data, lambda d: uploads.photo(d, name), long_side
        )
        return Response(
            painted.png,
            media_type="image/png",
            headers={
                "X-Paint-Ms": f"{painted.paint_ms:.0f}",
                "X-Total-Ms": f"{painted.total_ms:.0f}",
                "X-Size": f"{painted.size[0]}x{painted.size[1]}",
                "Cache-Control": "no-store",
            },
        )

    @app.get("/api/runs")
    async def runs_list() -> list[dict[str, Any]]:
        return await asyncio.to_thread(gallery.entries)

    @app.post("/api/runs/{run_id}/continue")
    async def continue_run(run_id: str) -> dict[str, Any]:
        run_dir = gallery.find(run_id)
        checkpoint = run_dirs.checkpoint_of(run_dir)
        if is_video_run(run_dir):
            if (run_dir / VIDEO).is_file():
                raise NSTError(f"run {run_id} has nothing to continue: its video is written")
        elif not checkpoint.is_file() or (run_dir / run_dirs.RESULT).is_file():
            raise NSTError(
                f"run {run_id} has nothing to continue: it finished, or never reached a checkpoint"
            )
        if any(job.run_dir == run_dir for job in jobs.active()):
            raise NSTError(f"run {run_id} is running already")
        if is_video_run(run_dir):
            layers = [
                ["--config", str(run_dir / "config.yaml")],
                {"ckpt_path": str(run_dir), "trainer.enable_progress_bar": False},
            ]
            where = run_dirs.Where(run_dir=run_dir)
            job = jobs.submit(f"{run_label(run_dir)} (continued)", layers, where, kind="video")
            return jobs.describe(job)
        layers = [
            ["--config", str(run_dir / "config.yaml")],
            {
                "ckpt_path": str(checkpoint),
                "output.path": None,
                "trainer.enable_progress_bar": False,
            },
        ]
        # The whole run's curve, not only the steps from here on.
        curve = await asyncio.to_thread(_curve, run_dir)
        job = jobs.submit(
            f"{run_label(run_dir)} (continued)", layers, run_dirs.Where(run_dir=run_dir), curve=curve
        )
        return jobs.describe(job)

    @app.post("/api/runs/{run_id}/remove")
    async def remove(run_id: str) -> dict[str, Any]:
        run_dir = gallery.find(run_id)
        if any(job.run_dir == run_dir for job in jobs.active()):
            raise NSTError(f"run {run_label(run_dir)} is running: stop it first")
        moved = await asyncio.to_thread(gallery.remove, run_dir)
        return {"removed": run_label(run_dir), "kept_in": str(moved)}

    @app.post("/api/runs/{run_id}/as-photo")
    async def as_photo(run_id: str) -> dict[str, Any]:
        """The run's picture as a new upload, to be used as a photo (or a painting)."""
        run_dir = gallery.find(run_id)
        picture = await asyncio.to_thread(_picture, run_dir)
        out = io.BytesIO()
        picture.save(out, format="PNG")
        name = f"{_picture_name(gallery, run_dir)}.png"
        return await asyncio.to_thread(uploads.add, out.getvalue(), name)

    @app.post("/api/runs/{run_id}/larger")
    async def larger(run_id: str, request: Request) -> dict[str, Any]:
        """The run again at a larger size, starting from its picture (upscaled): the strokes it
        found are kept, and finer ones are added."""
        run_dir = gallery.find(run_id)
        body = await _json(request)
        config = gallery.config(run_dir)
        if is_video_run(run_dir) or not config:
            raise NSTError(f"run {run_label(run_dir)} is a video or has no settings: it cannot grow")
        form = gallery.form(run_dir)
        # One size from here on: the picture it starts from is the coarse stage already.
        settings = settings_of({**form, **(body.get("settings") or {}), "multi_scale": False}, weights_dir)
        size, before = settings["data.size"], form.get("size", 0)
        if size <= before:
            raise NSTError(f"a larger size than {before} px, please (got {size})")
        start_from = await as_photo(run_id)
        data = config.get("data") or {}
        layer = {
            **settings,
            **{f"data.{key}": data.get(key) for key in ("content", "style", "style_blend")},
            "model.init": str(uploads.path(start_from["id"])),
            **NEW_RUN,
        }
        where = run_dirs.Where(save_dir=str(logs), name=NAME)
        job = jobs.submit(f"{run_label(run_dir)} at {size} px", [layer], where)
        return jobs.describe(job)

    @app.get("/api/runs/{run_id}/video.mp4")
    async def video_file(run_id: str) -> FileResponse:
        run_dir = gallery.find(run_id)
        if not (run_dir / VIDEO).is_file():
            raise NSTError("no such video: the run is not a video, or it has not finished")
        name = f"{_picture_name(gallery, run_dir)}.mp4"
        return FileResponse(run_dir / VIDEO, media_type="video/mp4", filename=name)

    @app.get("/api/runs/{run_id}/frames/{index}.jpg")
    async def frame(run_id: str, index: int) -> Response:
        path = frame_path(gallery.find(run_id), index)
        if index < 0 or not path.is_file():
            raise NSTError("no such frame")
        return _jpeg(await asyncio.to_thread(_opened, path))

    @app.get("/api/runs/{run_id}/picture.jpg/full")
    async def full_size(run_id: str) -> Response:
        """The picture at full size, for viewing on the page (downloads are picture.*)."""
        return _jpeg(await asyncio.to_thread(_picture, gallery.find(run_id)))

    @app.get("/api/uploads/{upload_id}/full.jpg")
    async def upload_full(upload_id: str) -> Response:
        if uploads.is_video(upload_id):
            return _jpeg(await asyncio.to_thread(uploads.thumbnail, upload_id))
        return _jpeg(await asyncio.to_thread(_opened, uploads.path(upload_id)))

    @app.get("/api/runs/{run_id}/thumbnail.jpg")
    async def run_thumbnail(run_id: str) -> Response:
        picture = await asyncio.to_thread(_picture, gallery.find(run_id))
        picture.thumbnail((320, 320))
        return _jpeg(picture)

    @app.get("/api/runs/{run_id}/picture.{ext}")
    async def download(run_id: str, ext: str) -> Response:
        if ext not in FORMATS:
            raise NSTError(f"pictures come as {', '.join(FORMATS)}, not {ext[:10]}")
        run_dir = gallery.find(run_id)
        data = await asyncio.to_thread(_encoded, run_dir, ext)
        name = f"{_picture_name(gallery, run_dir)}.{ext}"
        return Response(
            data, media_type=FORMATS[ext], headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    return app


def _side(given: str | None) -> int:
    if given is None or given == "":
        return DEFAULT_SIDE
    try:
        side = int(given)
    except ValueError:
        side = 0
    if not 16 <= side <= MAX_SIDE:
        raise NSTError(f"size is the painting's long side in px, from 16 to {MAX_SIDE}; got {given[:20]}")
    return side


def _blend(weights: list[Any]) -> list[float]:
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
        raise NSTError("each painting's weight is a number")
    if not all(0 <= w < float("inf") for w in weights) or not any(weights):
        raise NSTError("each painting's weight is 0 or more, and not all are 0")
    return [float(w) for w in weights]


def _curve(run_dir: Path) -> list[list[float]]:
    try:
        points = sorted(logged_scalars(run_dir).get("loss/total", {}).items())
    except Exception:  # unreadable event files: the curve starts empty, as before
        return []
    while len(points) > CURVE_POINTS:
        points = points[::2]
    return [[step, value] for step, value in points]


def _picture_name(gallery: Gallery, run_dir: Path) -> str:
    """A download's name: the pictures it was made from, then the run (unique), in safe characters."""
    entry = gallery.names_of(run_dir)
    made_of = "_in_".join(n for n in entry if n) or "picture"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", made_of).strip("-.")[:80] or "picture"
    return f"{safe}_{run_dir.parent.name}-{run_dir.name.removeprefix('version_')}"


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise NSTError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise NSTError("the request is a JSON object")
    return body


def _opened(path: Path) -> Image.Image:
    with Image.open(path) as picture:
        return picture.convert("RGB")


def _jpeg(picture: Image.Image) -> Response:
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="JPEG", quality=88)
    return Response(out.getvalue(), media_type="image/jpeg")


def _image(run_dir: Path) -> torch.Tensor | None:
    """The optimised image of a run's checkpoint (full precision), if it has one."""
    checkpoint = run_dirs.checkpoint_of(run_dir)
    if not checkpoint.is_file():
        return None
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        return state["state_dict"]["image"].float()
    except Exception as error:  # a damaged file: one line for the page, no traceback in the log
        raise NSTError(
            f"run {run_label(run_dir)} has a damaged checkpoint ({type(error).__name__})"
        ) from None


def _picture(run_dir: Path) -> Image.Image:
    if is_video_run(run_dir):  # its latest frame
        frames = sorted((run_dir / "frames").glob("*.png"))
        if not frames:
            raise NSTError("no such picture: no frame of the video is finished yet")
        with Image.open(frames[-1]) as picture:
            return picture.convert("RGB")
    if (run_dir / run_dirs.RESULT).is_file():
        with Image.open(run_dir / run_dirs.RESULT) as picture:
            return picture.convert("RGB")
    image = _image(run_dir)
    if image is None:
        raise NSTError("no such picture: the run has not reached a checkpoint")
    return to_pil(image)


def _encoded(run_dir: Path, ext: str) -> bytes:
    """The run's picture as a file of format ``ext``: final.png as it is, or written from the
    checkpoint's full-precision image (a 16-bit TIFF keeps it); a run whose colours are set
    after the optimisation (original colours, luminance only) is written from final.png, and a
    video run's picture is its latest frame."""
    finished = (run_dir / run_dirs.RESULT).is_file()
    # (A video run has neither: its latest frame is written, through _picture.)
    if ext == "png" and finished:
        return (run_dir / run_dirs.RESULT).read_bytes()
    config = Gallery(run_dir.parent.parent).config(run_dir)
    output, data = config.get("output") or {}, config.get("data") or {}
    recoloured = output.get("original_colours") or data.get("luminance_only")
    image = None if recoloured else _image(run_dir)
    if image is None:
        image = to_tensor(_picture(run_dir))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"picture.{ext}"
        save_image(image, path)
        return path.read_bytes()
