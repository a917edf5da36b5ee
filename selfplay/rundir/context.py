"""What a stage adapter is given: the config, the run layout, its iteration, its output folder, the
policies of this iteration and where live training metrics go; plus the rules every stage shares
(which policy is the reference, where earlier iterations' records are)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selfplay.config import Config, TrainConfig
from selfplay.data.files import read_records
from selfplay.rundir.integrity import verify
from selfplay.rundir.layout import RunLayout

R = TypeVar("R")


def reference_policy(train: TrainConfig, policy: str, initial: str) -> str:
    """The DPO reference of an iteration: pi_0 with `train.reference=initial`, else pi_t."""
    return initial if train.reference == "initial" else policy


@dataclass(frozen=True)
class StageContext:
    config: Config
    layout: RunLayout
    iteration: int
    out: Path
    """The folder the stage writes into (its partial folder, renamed when the stage finishes)."""
    policy: str
    """pi_t: the policy this iteration generates with and trains from."""
    initial_policy: str
    """pi_0."""
    stage: str = ""
    """The stage's name (for progress lines and error messages)."""
    world_size: int | None = None
    """Training processes the run launches (nodes x processes per node on a cluster); None =
    train.num_processes."""
    follow_training: Callable[[int, Path], None] | None = None
    """Called about once a second while training runs, with the iteration and the live history file the
    training process appends TRL's log entries to (the run's tracker forwards them); None = not tracked."""

    @property
    def train_world_size(self) -> int:
        return self.world_size or self.config.train.num_processes

    @property
    def label(self) -> str:
        return f"iteration {self.iteration} {self.stage}".strip()

    @property
    def reference(self) -> str:
        return reference_policy(self.config.train, self.policy, self.initial_policy)

    def input(self, stage: str, name: str) -> Path:
        """A file a finished stage of this iteration wrote, checked against the checksum its stage
        recorded (once per process) when it exists."""
        path = self.layout.stage_dir(self.iteration, stage) / name
        if path.exists():
            verify(self.layout, path)
        return path

    def earlier(
        self,
        stages: tuple[str, ...],
        name: str,
        cls: type[R],
        keep: Callable[[R, int], bool] = lambda r, t: True,
        where: tuple[str, Any] | None = None,
    ) -> list[R]:
        """Records in file `name` of `stages` from every earlier iteration, oldest iteration first,
        filtered by `keep(record, iteration)` (e.g. an iteration's own pairs only, as a pool=all
        file also holds older ones)."""
        out: list[R] = []
        for t in range(self.iteration):
            for stage in stages:
                path = self.layout.stage_dir(t, stage) / name
                verify(self.layout, path)
                out += [r for r in read_records(path, cls, where=where) if keep(r, t)]
        return out
