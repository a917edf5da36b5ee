"""Where everything of a run lives on disk (one place for every path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARKER = "_SUCCESS"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.root / "manifest.json"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def results_file(self) -> Path:
        return self.root / "results.md"

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:03d}"

    def stage_dir(self, iteration: int, stage: str) -> Path:
        return self.iteration_dir(iteration) / stage

    def partial_dir(self, iteration: int, stage: str) -> Path:
        """Where a stage writes while it runs; renamed to `stage_dir` when it finishes."""
        return self.iteration_dir(iteration) / f".{stage}.partial"

    def marker(self, iteration: int, stage: str) -> Path:
        return self.stage_dir(iteration, stage) / MARKER

    def policy_dir(self, iteration: int) -> Path:
        """pi_{t+1}, written by iteration t's train stage."""
        return self.stage_dir(iteration, "train") / "model"
