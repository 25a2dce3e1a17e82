"""Canaries for every reach past Lightning's public API (nst.run.lightning_private): each fails
loudly when a Lightning release no longer behaves as nst relies on. Run these first after
raising pyproject.toml's bound on lightning."""

from collections.abc import Iterator

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import nn

from nst.run import lightning_private as private
from nst.run.stopping import Stop, StopAtStepBoundary


class Endless:
    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield torch.zeros(1)


class Tiny(private.HookNameSetDirectly, LightningModule):
    """One parameter, optimised by hand, whose published loss (2, 1, 1, ...) stops improving
    after step 2."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.automatic_optimization = False
        self.hook_names: list[str] = []

    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        self.hook_names.append(self.__dict__.get("_current_fx_name"))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward((self.weight - 1).pow(2).sum())
        optimizer.step()
        private.publish_metrics(
            self.trainer, {"loss/total": float(max(3 - self.global_step, 1))}
        )  # counts this step

    def train_dataloader(self) -> Endless:
        return Endless()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.weight], lr=0.1)


def fit(tmp_path, *callbacks: Callback, **options: object) -> tuple[Trainer, Tiny]:
    trainer = Trainer(
        max_steps=options.pop("max_steps", 12),
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )
    module = Tiny()
    with private.inert_hooks_left_out(trainer, module):
        trainer.fit(module)
    return trainer, module


def test_lightning_passes_over_the_hooks_left_out_and_records_the_hook_name(tmp_path):
    inert = Callback()  # every hook Lightning's own, all left out while the run fits
    trainer, module = fit(tmp_path, inert, max_steps=3)
    assert trainer.global_step == 3
    assert module.hook_names == ["on_train_batch_start"] * 3  # set by Lightning, in __dict__ directly
    assert not set(vars(inert)) & set(private.PER_STEP)  # given back as it came


def test_published_losses_end_a_run_early_at_a_step_even_with_min_steps(tmp_path):
    early = EarlyStopping(monitor="loss/total", patience=2, mode="min")
    trainer, _ = fit(tmp_path, early, StopAtStepBoundary(Stop()))
    assert trainer.global_step == 4  # better until step 2, then two steps of patience
    early = EarlyStopping(monitor="loss/total", patience=2, mode="min")
    trainer, _ = fit(tmp_path, early, StopAtStepBoundary(Stop()), min_steps=8)
    assert trainer.global_step == 8  # not the run's one epoch's end (12): min_steps alone holds it


def test_a_checkpoint_counts_steps_taken_by_hand_where_nst_reads_them(tmp_path):
    trainer, _ = fit(tmp_path, max_steps=4)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert private.steps_in(checkpoint) == 4
    loops = checkpoint["loops"]["fit_loop"]
    # A checkpoint of the automatic loop, as nst wrote them before, resumes at its step.
    manual = loops[private._MANUAL]
    loops[private._AUTOMATIC]["optimizer"]["step"] = manual
    loops[private._MANUAL] = {**manual, "total": {**manual["total"], "completed": 0}}
    assert private.steps_in(private.steps_counted_by_hand(checkpoint)) == 4


def test_tensorboard_takes_a_prefix_and_ready_made_summaries(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="run", prefix="cell")
    assert private.prefixed(logger, {"loss/total": 1.5}) == {"cell-loss/total": 1.5}
    writer = private.event_writer(logger)
    writer.add_summary(Summary(value=[Summary.Value(tag="loss/total", simple_value=1.5)]), 3)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir).Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/total")] == [(3, 1.5)]


def test_the_launcher_keeps_the_processes_it_starts():
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False)
    launcher = trainer.strategy.launcher
    assert hasattr(launcher, "procs") and private.started_processes(launcher) == []


def test_every_process_writes_where_rank_zero_only_decides(monkeypatch):
    ran = []
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    rank_zero_only(lambda: ran.append(1))()
    assert ran == []  # a process of rank 1 writes nothing by itself
    private.every_process_writes()
    rank_zero_only(lambda: ran.append(1))()
    assert ran == [1]


@pytest.mark.parametrize("hook", private.PER_STEP)
def test_each_hook_left_out_is_one_lightning_calls_at_every_step(hook):
    assert callable(getattr(Callback, hook)) and callable(getattr(LightningModule, hook))
