"""Periodic writes held to a share of a run's time (nst.run.pacing), timed by a stand-in clock:
each step takes 1/8 s of it, and each write 1 s."""

import pytest
from lightning.pytorch import Callback

from nst.cli import main
from nst.run import checkpoint_files, outputs, pacing

STEP_S = 0.125  # exact in binary, as are the sums below


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Steps(Callback):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_start(self, *_: object) -> None:
        self.clock.now += STEP_S


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(pacing, "monotonic", clock)
    return clock


def fit(config, clock, name, *options):
    main(["fit", "--config", str(config), "--trainer.max_steps", "25", "--trainer.logger.init_args.name", name,
          *options], callbacks=[Steps(clock)])  # fmt: skip


def test_periodic_checkpoints_wait_while_writing_them_takes_more_than_their_share(
    tiny_config, workdir, clock, monkeypatch
):
    written: list[int] = []
    save = checkpoint_files.RunCheckpointIO.save_checkpoint

    def slow_save(self, checkpoint, path, storage_options=None):
        clock.now += 1.0
        written.append(checkpoint["global_step"])
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(checkpoint_files.RunCheckpointIO, "save_checkpoint", slow_save)
    every_step = ["--checkpoint.every_n_steps", "1"]
    fit(tiny_config(), clock, "paced", *every_step, "--checkpoint.max_time_share", "0.5")
    # A 1 s write at half the time: the next waits 2 s from its start, 8 steps on; the last
    # step's checkpoint is written at the end, whatever the pace.
    assert written == [1, 9, 17, 25]
    written.clear()
    fit(tiny_config(), clock, "unpaced", *every_step, "--checkpoint.max_time_share", "0")
    assert written == list(range(1, 26))


def test_periodic_images_wait_while_writing_them_takes_more_than_their_share(
    tiny_config, workdir, clock, monkeypatch
):
    shown: list[int] = []
    add_image = outputs.add_image

    def slow_add(loggers, tag, image, step):
        clock.now += 1.0
        if tag == "image/current":
            shown.append(step)
        add_image(loggers, tag, image, step)

    monkeypatch.setattr(outputs, "add_image", slow_add)
    fit(tiny_config(), clock, "paced", "--image_log.every_n_steps", "1", "--image_log.max_time_share", "0.5")
    assert shown == [0, 1, 9, 17, 25]  # the start and the end are always shown
