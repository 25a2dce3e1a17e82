"""The studio's jobs: a queue, one worker thread that runs one job at a time on the device
through the run core (nst.run.engine.Run, as the CLI's runs), and what each job shows live."""

import contextlib
import io
import itertools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from nst.errors import NSTError
from nst.images import to_pil
from nst.run.engine import Run
from nst.run.outputs import FinalImage, picture_as_written
from nst.run.run_dirs import Where
from nst.run.settings import Layer
from nst.video.run import VideoRun

log = logging.getLogger("nst.studio")
LIVE_EVERY_S = 0.5  # how often the live picture is taken (it costs a copy from the device and a JPEG)
NEWS_EVERY_S = 0.1  # how often the step and losses are sent
CURVE_POINTS = 300


@dataclass
class Job:
    id: str
    title: str
    layers: list[Layer]
    where: Where  # where its run directory is (an existing one, for a run it continues)
    status: str = "queued"  # queued, running, stopping, finished, stopped, failed
    run_dir: Path | None = None
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    losses_step: int | None = None  # the step the losses are of (they are logged every few steps)
    curve: list[list[float]] = field(default_factory=list)  # [step, total loss]
    started: float | None = None
    start_step: int = 0
    ended: float | None = None
    error: str | None = None
    live: bytes | None = None  # the latest picture, JPEG
    live_version: int = 0
    run: Run | VideoRun | None = None
    stop_asked: bool = False  # before its Run was built
    kind: str = "picture"  # or "video": painted frame by frame (nst.video.run)
    frames_done: int = 0
    frames_total: int | None = None
    frame_seconds: list[float] = field(default_factory=list)  # of the later frames this job painted

    def summary(self) -> dict[str, Any]:
        rate = eta = None
        if self.started is not None and self.step > self.start_step:
            elapsed = (self.ended or time.time()) - self.started
            rate = (self.step - self.start_step) / max(elapsed, 1e-9)
            eta = (self.total - self.step) / rate if self.status == "running" else None
        if self.kind == "video" and self.frame_seconds and self.frames_total and self.status == "running":
            frames_left = self.frames_total - self.frames_done
            eta = frames_left * sum(self.frame_seconds) / len(self.frame_seconds)
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "run": _run_id(self.run_dir),
            "label": run_label(self.run_dir),
            "step": self.step,
            "total": self.total,
            "losses": self.losses,
            "losses_step": self.losses_step,
            "curve": self.curve,
            "rate": rate,
            "eta": eta,
            "error": self.error,
            "live": self.live_version,
            "kind": self.kind,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
        }


def _run_id(run_dir: Path | None) -> str | None:
    return f"{run_dir.parent.name}~{run_dir.name.removeprefix('version_')}" if run_dir else None


def run_label(run_dir: Path | None) -> str | None:
    """A run's name wherever the page shows one (the id is only for addresses): as in logs/."""
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir else None


class Jobs:
    """Jobs run one at a time (one device), in the order they came; each change is announced
    to every subscriber (the pages' event streams)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._subscribers: list[queue.Queue[dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.closing = threading.Event()  # set when the server stops: the pages' streams end
        self._worker = threading.Thread(target=self._work, name="nst-studio-worker", daemon=True)
        self._worker.start()

    def submit(
        self,
        title: str,
        layers: Sequence[Layer],
        where: Where,
        kind: str = "picture",
        curve: list[list[float]] | None = None,
    ) -> Job:
        """Queue a run (``kind`` video: a video run); ``where.run_dir`` names the run it
        continues, if it continues one, and ``curve`` its losses so far."""
        job = Job(
            id=str(next(self._ids)),
            title=title,
            layers=list(layers),
            where=where,
            run_dir=where.run_dir,
            kind=kind,
            curve=list(curve or []),
        )
        self.jobs[job.id] = job
        self._queue.put(job)
        self.announce(job)
        return job

    def stop(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NSTError("no such job")
        if job.status == "queued":
            job.status, job.ended = "stopped", time.time()
        elif job.status == "running":
            job.status, job.stop_asked = "stopping", True
            if job.run is not None:
                job.run.stop()
        self.announce(job)
        return job

    def describe(self, job: Job) -> dict[str, Any]:
        """A job's summary, with how many jobs are ahead of it in the queue (0: it is next, so
        the page says it starts rather than that it waits)."""
        ahead = 0
        if job.status == "queued":
            ahead = sum(
                1
                for other in self.jobs.values()
                if int(other.id) < int(job.id) and other.status in ("queued", "running", "stopping")
            )
        return {**job.summary(), "ahead": ahead}

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status in ("queued", "running", "stopping")]

    def subscribe(self) -> "queue.Queue[dict[str, Any]]":
        events: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        with self._lock:
            self._subscribers.append(events)
        return events

    def unsubscribe(self, events: "queue.Queue[dict[str, Any]]") -> None:
        with self._lock:
            if events in self._subscribers:
                self._subscribers.remove(events)

    def announce(self, job: Job) -> None:
        event = {"type": "job", "job": self.describe(job)}
        with self._lock:
            for events in self._subscribers:
                with contextlib.suppress(queue.Full):  # a page that stopped reading
                    events.put_nowait(event)

    def close(self, wait_s: float = 120) -> None:
        """Stop every job (a running one at its next step, with a checkpoint) and end the worker."""
        self.closing.set()
        for job in self.active():
            self.stop(job.id)
        self._queue.put(None)
        self._worker.join(wait_s)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.status != "queued":  # stopped while it waited
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        self.announce(job)
        try:
            where = job.where
            if job.kind == "video":
                job.run = self._video(job)
                job.run_dir = job.run.run_dir
            else:
                job.run = Run(
                    job.layers,
                    callbacks=[_Watch(job, self)],
                    save_dir=where.save_dir,
                    name=where.name,
                    run_dir=where.run_dir,
                )
                job.run_dir = Path(job.run.trainer.log_dir)
            if job.stop_asked:  # while the run was being built: it ends after its first step
                job.run.stop()
            self.announce(job)
            result = job.run.fit()
            job.status = "stopped" if result.stopped is not None else "finished"
            job.losses = getattr(result, "losses", None) or job.losses
        except NSTError as error:
            job.status, job.error = "failed", str(error)
        except Exception as error:  # a bug: one line on the page, the traceback in the server's log
            job.status, job.error = "failed", f"{type(error).__name__}: {error}".splitlines()[0]
            log.exception("job %s failed", job.id)
        finally:
            job.ended = time.time()
            job.run = None
            self.announce(job)

    def _video(self, job: Job) -> VideoRun:
        started = time.time()

        def finished(index: int, frame: Path) -> None:
            nonlocal started
            if index > 0:
                job.frame_seconds.append(time.time() - started)
            started = time.time()
            job.frames_done = index + 1
            self.announce(job)

        run = VideoRun(
            job.layers,
            callbacks=[_Watch(job, self)],
            save_dir=job.where.save_dir,
            name=job.where.name,
            on_frame=finished,
        )
        job.frames_total = run.total
        job.frames_done = len(run.state["steps"])
        return run


class _Watch(Callback):
    """Hands a running job its step, losses, loss curve and live picture."""

    def __init__(self, job: Job, jobs: Jobs) -> None:
        self.job, self.jobs = job, jobs
        self._last = self._told = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.job.kind == "video":  # a frame's run: its own steps and curve
            self.job.curve = []
        self.job.total, self.job.step = trainer.max_steps, trainer.global_step
        self.job.start_step = trainer.global_step
        self.job.started = time.time()
        self._snapshot(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: object) -> None:
        job = self.job
        job.step = trainer.global_step
        logged = pl_module.painting.losses
        losses = {k.removeprefix("loss/"): v for k, v in logged.items() if k.count("/") == 1}
        if losses and losses != job.losses:
            job.losses, job.losses_step = losses, job.step
            if "total" in losses:
                job.curve.append([job.step, losses["total"]])
                if len(job.curve) > CURVE_POINTS:  # keep the curve's shape, thinned
                    job.curve = job.curve[::2]
        now = time.monotonic()
        if now - self._last >= LIVE_EVERY_S or job.step == trainer.max_steps:
            self._snapshot(trainer, pl_module)
        elif now - self._told >= NEWS_EVERY_S:
            self._told = now
            self.jobs.announce(job)

    def _snapshot(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last = self._told = time.monotonic()
        final = next((c for c in trainer.callbacks if isinstance(c, FinalImage)), None)
        colours = final.original_colours if final else None
        picture = to_pil(picture_as_written(pl_module, 0, colours, best=False))  # as it is now
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=90)
        self.job.live, self.job.live_version = out.getvalue(), self.job.live_version + 1
        self.jobs.announce(self.job)
