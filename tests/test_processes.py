"""Real ``cli.py fit`` processes: stopped at a random step by Ctrl-C, SIGTERM or kill -9 and resumed
with ``--ckpt_path last`` (the result must be the uninterrupted run's, bit for bit), and started
side by side from one config."""

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nst.cli import main

pytestmark = pytest.mark.slow  # real processes

CLI = Path(__file__).resolve().parents[1] / "cli.py"
STEPS = 30
EVERY = 4  # checkpoint interval: what a kill -9 may lose
# 96 px makes a step take tens of milliseconds here, long enough to stop a run in the middle.
RUN = ["--data.size", "96", "--trainer.max_steps", str(STEPS), "--checkpoint.every_n_steps", str(EVERY)]


def start(config: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, str(CLI), "fit", "--config", str(config), *RUN, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_for_step(process: subprocess.Popen, step: int) -> int:
    """Read the progress bar until it shows ``step`` or more steps done; return what it showed."""
    shown, seen = b"", 0
    while seen < step:
        chunk = process.stdout.read1(4096)
        if not chunk:
            raise AssertionError(f"the run ended before step {step}: {process.stderr.read().decode()}")
        shown = (shown + chunk)[-200:]
        seen = max([seen, *(int(n) for n in re.findall(rb"(\d+)/%d" % STEPS, shown))])
    return seen


def saved(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize(
    ("optimizer", "signum"),
    [
        ("lbfgs", signal.SIGINT),
        ("adam", signal.SIGTERM),
        ("lbfgs", signal.SIGTERM),
        ("adam", signal.SIGINT),
        ("lbfgs", signal.SIGKILL),
        ("adam", signal.SIGKILL),
        ("multi-scale", signal.SIGTERM),
        ("multi-scale", signal.SIGKILL),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_a_run_stopped_at_a_random_step_resumes_to_the_uninterrupted_result(
    tiny_config, workdir, optimizer, signum
):
    seed = int(os.environ.get("NST_TEST_SEED") or random.randrange(10**6))  # replay: NST_TEST_SEED=...
    target = random.Random(seed).randint(2, STEPS - 6)
    why = f"(stopped at step {target}; random seed {seed})"
    # Multi-scale: three phases over the 30 steps (L-BFGS, Adam, L-BFGS), so the stop lands in any.
    phases = [{"size": 48, "steps": 12}, {"size": 68, "steps": 10, "optimizer": "adam", "lr": 0.05}]
    phases += [{"size": 96, "steps": 8}]
    config = tiny_config(phases=phases) if optimizer == "multi-scale" else tiny_config(optimizer=optimizer)
    main(["fit", "--config", str(config), *RUN, "--trainer.logger.init_args.name", "uninterrupted"])
    expected = workdir / "logs" / "uninterrupted" / "version_0"

    process = start(config, "--trainer.enable_progress_bar", "true")
    seen = wait_for_step(process, target)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    run_dir = workdir / "logs" / "tiny" / "version_0"
    step = saved(run_dir)["global_step"]
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL, why
        # Lost at most the steps since the last periodic checkpoint, and that checkpoint is whole.
        # The bar shows a step before that step's checkpoint is written, hence seen - 1.
        assert step % EVERY == 0 and step >= (seen - 1) // EVERY * EVERY, why
    else:
        assert process.returncode == 128 + signum, err.decode()
        # The step in progress finished and was saved.
        assert f"stopped by {signum.name} after step {step}" in err.decode(), why
        assert "Continue with the same command plus --ckpt_path last" in err.decode()
        assert seen <= step < STEPS, why
    assert not (run_dir / "final.png").exists()

    resumed = subprocess.run(
        [sys.executable, str(CLI), "fit", "--config", str(config), *RUN, "--ckpt_path", "last"],
        capture_output=True,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert saved(run_dir)["global_step"] == STEPS
    assert torch.equal(saved(run_dir)["state_dict"]["image"], saved(expected)["state_dict"]["image"]), why
    assert (run_dir / "final.png").read_bytes() == (expected / "final.png").read_bytes(), why
    assert not list(run_dir.rglob(".*.part")), why  # no temporary file outlives the run


def test_runs_started_together_from_one_config_get_their_own_directories(tiny_config, workdir):
    config = tiny_config()
    processes = [start(config, "--data.size", "32", "--trainer.max_steps", "4") for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    run_dirs = sorted((workdir / "logs" / "tiny").iterdir())
    assert [d.name for d in run_dirs] == ["version_0", "version_1", "version_2"]
    for run_dir in run_dirs:
        assert saved(run_dir)["global_step"] == 4
        assert (run_dir / "final.png").is_file() and (run_dir / "config.yaml").is_file()
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # nobody else's curves


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("delay", [0.5, 3.0, 4.5])
def test_a_signal_while_starting_ends_cleanly(tiny_config, workdir, signum, delay):
    # 0.5 s: importing torch; later: parsing, the run directory, the network, the first steps.
    process = start(tiny_config(), "--trainer.max_steps", "1000")
    time.sleep(delay)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    err = err.decode()
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert f"stopped by {signum.name}" in err
    left = list(workdir.glob("logs/tiny/version_*"))
    if "saved" in err:  # training had begun: its checkpoint is there to resume
        assert [d.name for d in left] == ["version_0"] and saved(left[0])["global_step"] >= 1
    else:  # nothing to resume, so nothing left that looks like a run
        assert left == []
