"""The processes of a sweep: Lightning's own launcher starts them, and each takes its share of
the cells.

``--trainer.devices N --trainer.num_nodes M`` asks for N * M processes. On one machine
Lightning's launcher starts the other N - 1 (the same command, with LOCAL_RANK set); torchrun
and SLURM start all of them themselves, and Lightning reads which one this is from their
environment. Each process runs its cells as ordinary single-device runs: the cells are
independent pictures, so nothing is synchronised during a step (DistributedDataParallel would
average the pictures' gradients, silently). The processes meet only at the start (to agree on
the sweep directory) and at the end (so that rank 0 draws the figure once every cell is done),
through a key-value store that rank 0 serves at MASTER_ADDR:MASTER_PORT. No process group is
formed: Lightning's runs would take part in its collectives, and processes running different
cells would wait on each other forever.
"""

import json
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from lightning.pytorch import Trainer
from torch.distributed import TCPStore

from nst.errors import NSTError, brief
from nst.run.lightning_private import every_process_writes, started_processes

T = TypeVar("T")
HEARTBEAT_S = 5.0  # how often a process says it is alive
SILENCE_S = 60.0  # after this long without a word from a process, it is taken for dead
_CONNECT = timedelta(minutes=10)  # how long a process waits for rank 0 to answer


@dataclass
class Ranks:
    """This process's place in a batch."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    accelerator: str = "cpu"
    launcher: Any = None  # Lightning's, for a batch of several processes
    children: list[Any] = field(default_factory=list)  # processes this one started
    store: TCPStore | None = None
    stopped_outcome: Any = None  # what a process that stopped before its first cell reports

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every world-th, so that none is run twice and none is lost."""
        return list(items[self.rank :: self.world])

    def device_settings(self) -> dict[str, Any]:
        """The trainer settings of one cell on this rank: one device, its own."""
        devices: Any = 1
        if self.accelerator == "cuda" and self.launcher is not None:  # --trainer.devices 2,3: GPU 2 or 3
            devices = [self.launcher.strategy.parallel_devices[self.local_rank].index]
        elif self.accelerator == "cuda":
            devices = [self.local_rank]
        return {"trainer.devices": devices, "trainer.num_nodes": 1, "trainer.strategy": "auto"}

    def start(self) -> None:
        """Start the node's other processes (from its first one) and connect them all."""
        if self.world == 1:
            return
        strategy = self.launcher.strategy
        environment = strategy.cluster_environment
        # Under torchrun its agent already serves a store at MASTER_ADDR:MASTER_PORT (which is
        # what TORCHELASTIC_USE_AGENT_STORE says); everywhere else rank 0 serves one there,
        # before it starts any other process, so that a port in use stops the batch at once.
        serve = self.rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
        address, port = environment.main_address, environment.main_port
        try:
            self.store = TCPStore(
                address, port, self.world, is_master=serve, timeout=_CONNECT, wait_for_workers=False
            )
        except RuntimeError as error:
            if serve:
                raise NSTError(
                    f"cannot serve the batch's store at {address}:{port} ({brief(error)}); another batch "
                    "may be using the port: set MASTER_PORT to a free one"
                ) from error
            raise NSTError(
                f"cannot reach rank 0 of this batch at {address}:{port} ({brief(error)}); check that it "
                "started (and MASTER_ADDR, MASTER_PORT, NODE_RANK on each machine)"
            ) from error
        strategy.launcher.launch(lambda: None)  # a no-op where torchrun or SLURM started them
        self.children = started_processes(strategy.launcher)
        if self.rank != 0:
            threading.Thread(target=self._beat, daemon=True).start()
        every_process_writes()  # each is rank zero of its own cells' runs

    def broadcast(self, key: str, value: T) -> T:
        """Rank 0's ``value``, on every rank."""
        if self.world == 1:
            return value
        key = f"nst/{key}"  # a store torchrun's agent serves holds its own keys too
        if self.rank == 0:
            self.store.set(key, json.dumps(value))
            return value
        return json.loads(self.store.get(key))

    def gather(self, key: str, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order, on rank 0 (None elsewhere), once all have one.
        A process that falls silent (killed, its machine gone) ends the wait with an error."""
        if self.world == 1:
            return [value]
        key = f"nst/{key}"
        self.store.set(f"{key}/{self.rank}", json.dumps(value))
        if self.rank != 0:
            return None
        keys = [f"{key}/{r}" for r in range(self.world)]
        heard = {r: (-1, time.monotonic()) for r in range(1, self.world)}
        while not self.store.check(keys):  # polled: a store.wait that times out logs each time
            time.sleep(1.0)
            self._check_children(key)
            self._check_alive(heard, key)
        return [json.loads(self.store.get(k)) for k in keys]

    def _check_children(self, key: str) -> None:
        # A process this one started that ended without a word: stopped while it was still
        # starting (exit code 0, see nst.cli), or crashed.
        for local, child in enumerate(self.children, start=1):
            rank = self.rank + local
            if child.poll() is None or self.store.check([f"{key}/{rank}"]):
                continue
            if child.returncode != 0:
                raise NSTError(
                    f"process {rank} of this batch ended with exit code {child.returncode} before its "
                    "cells were done; continue with --ckpt_path last"
                )
            self.store.set(f"{key}/{rank}", json.dumps(self.stopped_outcome))

    def _check_alive(self, heard: dict[int, tuple[int, float]], key: str) -> None:
        now = time.monotonic()
        for r, (beats, since) in heard.items():
            if self.store.check([f"{key}/{r}"]):
                continue
            latest = self.store.add(f"nst/alive/{r}", 0)
            if latest != beats:
                heard[r] = (latest, now)
            elif now - since > SILENCE_S:
                raise NSTError(
                    f"process {r} of this batch has not been heard from for {SILENCE_S:.0f} s; "
                    "its cells are unfinished: continue with --ckpt_path last"
                )

    def _beat(self) -> None:
        while True:
            try:
                self.store.add(f"nst/alive/{self.rank}", 1)
            except RuntimeError:  # rank 0 is gone: stop at the next step boundary, with a checkpoint
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(HEARTBEAT_S)

    def forward(self, signum: int) -> None:
        """Pass a stop signal on to the processes this one started (they stop at a step boundary)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)


def plan(trainer: dict[str, Any]) -> Ranks:
    """This process's place in the batch that ``trainer`` (the trainer.* settings) asks for,
    read from the environment as Lightning reads it; nothing is started yet."""
    strategy = trainer.get("strategy") or "auto"
    if strategy not in ("auto", "ddp"):
        raise NSTError(
            f"a batch spreads its pictures with trainer.strategy ddp (or auto), not {strategy}: "
            "each process runs its own pictures, with nothing shared during a step"
        )
    try:  # built for its launcher, cluster environment and ranks; it never fits
        launcher = Trainer(
            accelerator=trainer.get("accelerator") or "auto",
            devices=trainer.get("devices") or 1,
            num_nodes=trainer.get("num_nodes") or 1,
            strategy="ddp",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except Exception as error:
        raise NSTError(f"trainer options: {' '.join(str(error).split())}") from error
    accelerator = type(launcher.accelerator).__name__.removesuffix("Accelerator").lower()
    if launcher.world_size == 1:
        return Ranks(accelerator=accelerator)
    return Ranks(
        rank=launcher.global_rank,
        world=launcher.world_size,
        local_rank=launcher.local_rank,
        accelerator=accelerator,
        launcher=launcher,
    )
