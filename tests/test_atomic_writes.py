"""Checkpoints and images are written whole or not at all: a crash or kill -9 mid-write keeps the
previous file intact and leaves no truncated one behind."""

import errno
import io
import os
import signal
import subprocess
import sys

import pytest
import torch

from nst import images
from nst.cli import main
from nst.images import save_image
from nst.run.checkpoint_files import RunCheckpointIO, pack_optimizer_lists, unpack_optimizer_lists


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the previous checkpoint")
    script = (
        "import os, signal, sys\n"
        "from nst.files import atomic_write\n"
        "with atomic_write(sys.argv[1]) as (out, _):\n"
        "    out.write(b'half of a new checkpoint')\n"
        "    out.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(target)])
    assert killed.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"the previous checkpoint"
    leftovers = list(tmp_path.glob(".last.ckpt.*.part"))
    assert len(leftovers) == 1  # hidden, and never mistaken for a checkpoint

    RunCheckpointIO().save_checkpoint({"global_step": 7}, target)  # the next save clears it
    assert torch.load(target, weights_only=True) == {"global_step": 7}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_checkpoint_write_that_fails_half_way_keeps_the_last_good_one(
    tiny_config, workdir, monkeypatch, capsys
):
    real_save = torch.save

    def disk_full_at_step_4(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == 4:
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_step_4)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tiny_config()), "--trainer.max_steps", "6"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "continue with --ckpt_path last" in err
    checkpoints = workdir / "logs" / "tiny" / "version_0" / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 2
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]


def test_an_image_write_that_fails_half_way_keeps_the_old_image(tmp_path, monkeypatch):
    path = tmp_path / "result.png"
    save_image(torch.zeros(1, 3, 8, 8), path)
    before = path.read_bytes()

    def crash_half_way(self, out, *args, **kwargs):
        out.write(before[: len(before) // 2])
        raise KeyboardInterrupt  # as a second Ctrl-C would

    monkeypatch.setattr(images.Image.Image, "save", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.ones(1, 3, 8, 8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]


def _lbfgs_after(steps: int, image: torch.Tensor, optimizer: torch.optim.LBFGS) -> torch.Tensor:
    target = torch.linspace(0, 1, image.numel()).reshape(image.shape)
    for _ in range(steps):

        def closure():
            optimizer.zero_grad()
            loss = ((image - target) ** 2 * (1 + target)).sum() + (image**4).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    return image.detach().clone()


def test_an_lbfgs_history_is_written_as_one_tensor_per_list_and_read_back_exactly(monkeypatch):
    image = torch.nn.Parameter(torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0)))
    optimizer = torch.optim.LBFGS([image], max_iter=1, history_size=5)
    _lbfgs_after(8, image, optimizer)
    checkpoint = {"optimizer_states": [optimizer.state_dict()], "global_step": 8}
    written = io.BytesIO()
    torch.save(pack_optimizer_lists(checkpoint), written)

    live = optimizer.state[image]
    assert isinstance(live["old_dirs"], list) and len(live["old_dirs"]) == 5  # the run's own state untouched
    read = torch.load(io.BytesIO(written.getvalue()), weights_only=True)
    assert set(read["optimizer_states"][0]["state"][0]["old_dirs"]) == {"nst_packed"}

    again = torch.nn.Parameter(image.detach().clone())
    resumed = torch.optim.LBFGS([again], max_iter=1, history_size=5)
    resumed.load_state_dict(unpack_optimizer_lists(read)["optimizer_states"][0])
    assert torch.equal(_lbfgs_after(4, again, resumed), _lbfgs_after(4, image, optimizer))

    monkeypatch.setattr("nst.run.checkpoint_files.PACK_UP_TO_BYTES", 100)  # a large history stays as it is
    big = pack_optimizer_lists(checkpoint)["optimizer_states"][0]["state"][0]
    assert isinstance(big["old_dirs"], list)
