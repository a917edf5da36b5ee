"""Where everything of a run lives on disk: the one place that spells a run's folder and file names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfplay.rundir import stage_names as sn
from selfplay.rundir.markers import read_marker
from selfplay.rundir.stats import Finished, SelectionStats, finished, typed

MARKER = "_SUCCESS"
"""Written last into a finished stage's folder: fingerprint, seconds, stats."""
STATS = "_stats.json"
"""Where a stage process (or rank 0 of training) leaves its stats for the orchestrator."""
ERROR = "_error.txt"
"""Where a stage, shard or training process that fails with a one-line error leaves it."""

# Record files inside a stage folder.
PROMPTS = "prompts.jsonl"
HELDOUT_PROMPTS = "heldout_prompts.jsonl"
COMPLETIONS = "completions.parquet"
JUDGMENTS = "judgments.jsonl"
LOGPROBS = "logprobs.jsonl"
PAIRS = "pairs.jsonl"
KEPT_PAIRS = "kept_pairs.parquet"
"""The kept pairs in TRL's conversational preference format (datasets / `trl dpo` load it as it is)."""
MODEL_CARD = "README.md"
EVALUATED_CARD = "model_card.md"
"""The evaluate stage's copy of the policy's model card, with the held-out results (pushed as its README)."""
PUSHED = "pushed.json"
COMPLETION_TABLE = "completions.jsonl"
"""The evaluate stage's table of a few held-out prompts: pi_0's and the new policy's responses, their
rewards and the winner (the tracker logs it as a table)."""
REWRITES = "rewrites.jsonl"
REWRITE_SAMPLES = "rewrite_samples.parquet"
"""Evolve's raw rewrites, as the policy sampled them (one Completion per rewrite request)."""
HELDOUT = "heldout.jsonl"
ROWS = "rows.jsonl"
"""Offline selection's import stage: the dataset's usable rows (prompt messages, chosen, rejected)."""
ROW_SCORES = "row_scores.jsonl"
"""Offline selection's score stage: what was computed for each row (rewards, implicit rewards)."""
# Training: the rows every rank reads, the trainer's scratch folder, the next policy.
TRAIN_DATA = "data"
TRAIN_HISTORY = "history.jsonl"
LIVE_HISTORY = "history.live.jsonl"
"""TRL's log entries as the training process writes them (rank 0, one line per log, appended at once),
which the orchestrator forwards to the tracker while the stage runs."""
"""TRL's per-step log history of an iteration's training (loss, rewards, learning rate per step)."""
TRAINER = "trainer"
MODEL = "model"
FINAL = "final"
"""<run>/final: a link to the newest trained policy (the last finished iteration's train/model)."""


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @classmethod
    def of(cls, cfg) -> RunLayout:
        """The run directory of a config: <loop.output_dir>/<loop.run_name>, absolute."""
        return cls((Path(cfg.loop.output_dir) / cfg.loop.run_name).resolve())

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

    @property
    def final_link(self) -> Path:
        return self.root / FINAL

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def workers_dir(self) -> Path:
        return self.root / "workers"

    def worker_dir(self, slot: int) -> Path:
        """Where the orchestrator hands the worker of engine slot `slot` its task and reads its answer."""
        return self.workers_dir / f"slot-{slot:03d}"

    def worker_log(self, slot: int) -> Path:
        return self.logs_dir / f"worker-{slot:03d}.log"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def tracking_dir(self) -> Path:
        return self.root / "tracking"

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:03d}"

    def stage_dir(self, iteration: int, stage: str) -> Path:
        return self.iteration_dir(iteration) / stage

    def partial_dir(self, iteration: int, stage: str) -> Path:
        """Where a stage writes while it runs; renamed to `stage_dir` when it finishes."""
        return self.iteration_dir(iteration) / f".{stage}.partial"

    def locate(self, path: Path) -> tuple[int, str, str] | None:
        """(iteration, stage, path inside the stage folder) of a path in a finished stage's folder of
        this run; None for any other path (outside the run, a partial folder, the run's own files)."""
        try:
            parts = Path(path).resolve().relative_to(self.root.resolve()).parts
        except ValueError:
            return None
        if len(parts) < 3 or not parts[0].startswith("iter_") or parts[1].startswith("."):
            return None
        digits = parts[0][len("iter_") :]
        return (int(digits), parts[1], "/".join(parts[2:])) if digits.isdigit() else None

    def marker(self, iteration: int, stage: str) -> Path:
        return self.stage_dir(iteration, stage) / MARKER

    def policy_dir(self, iteration: int) -> Path:
        """pi_{t+1}, written by iteration t's train stage."""
        return self.stage_dir(iteration, sn.TRAIN) / MODEL

    def log_file(self, iteration: int, stage: str, shard: int | None = None, shards: int = 1) -> Path:
        """Log of a stage process, or of one shard process of a sharded stage."""
        name = f"iter_{iteration:03d}-{stage}"
        if shard is not None:
            name += f"-shard-{shard:05d}-of-{shards:05d}"
        return self.logs_dir / f"{name}.log"

    def finished(self, iteration: int, stage: str) -> Finished | None:
        """A finished stage's marker, its statistics typed; None while it has not finished."""
        marker = self.marker(iteration, stage)
        return finished(read_marker(marker), iteration, stage, str(marker))

    def kept_pair_splits(self, through: int) -> dict[str, tuple[Path, SelectionStats]]:
        """The kept pairs of every finished selection of iterations 0..`through`, as dataset splits:
        name (`iter_000`, and `iter_000_evolved` for evolve's pool) -> (its Parquet file, its stats)."""
        found: dict[str, tuple[Path, SelectionStats]] = {}
        for t in range(through + 1):
            for stage, suffix in ((sn.SELECTION, ""), (sn.EVOLVED_SELECTION, "_evolved")):
                stats = typed(self.finished(t, stage), SelectionStats)
                path = self.stage_dir(t, stage) / KEPT_PAIRS
                if stats is not None and path.is_file():
                    found[f"{self.stage_dir(t, stage).parent.name}{suffix}"] = (path, stats)
        return found

    @staticmethod
    def policy_iteration(path: str | Path) -> int | None:
        """t for a path that is a run's policy after iteration t (`.../iter_<t>/train/model`), else None."""
        parts = Path(path).parts
        if len(parts) >= 3 and parts[-1] == MODEL and parts[-2] == sn.TRAIN and parts[-3].startswith("iter_"):
            digits = parts[-3][len("iter_") :]
            return int(digits) if digits.isdigit() else None
        return None

    @staticmethod
    def part_file(folder: Path, shard: int, shards: int, suffix: str = ".jsonl") -> Path:
        """Shard `shard` of `shards` of a sharded stage's records, inside its partial folder (in the
        format of the stage's output, `suffix`)."""
        return folder / f"part-{shard:05d}-of-{shards:05d}{suffix}"

    @staticmethod
    def error_file(folder: Path, shard: int | None = None) -> Path:
        return folder / (ERROR if shard is None else f"_error-{shard:05d}.txt")

    @staticmethod
    def rendezvous_file(folder: Path) -> Path:
        """Where rank 0 of training publishes the port it bound (cluster.master_port null)."""
        return folder / "_rendezvous.json"

    @staticmethod
    def where_file(folder: Path, shard: int | None = None, rank: int | None = None) -> Path:
        """Where a launched shard, stage or training process records where it ran (node, devices)."""
        name = "_where" + (f"-shard-{shard:05d}" if shard is not None else "")
        return folder / (name + (f"-rank-{rank:05d}" if rank is not None else "") + ".json")

    @staticmethod
    def retries_file(folder: Path, shard_key: str) -> Path:
        """A judging shard's count of the requests its judge retried (a remote judge), summed into the
        stage's statistics and removed there; `shard_key` names the shard's slice of prompts, so a shard
        run again replaces its own count."""
        return folder / f"_retries-{shard_key}.jsonl"

    @staticmethod
    def retries_files(folder: Path) -> list[Path]:
        return sorted(folder.glob("_retries-*.jsonl"))

    @staticmethod
    def part_files(folder: Path) -> list[Path]:
        return sorted(folder.glob("part-*-of-*.*"))
