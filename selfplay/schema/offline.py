"""The other entry points' schemas: offline selection of a dataset (`python -m selfplay.select`) and
training on a preference file (`python -m selfplay.train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from selfplay.schema.choices import TableFormat
from selfplay.schema.judge import OfflineJudgeConfig
from selfplay.schema.policy import ModelConfig
from selfplay.schema.run import ClusterConfig, Config, LoopConfig, TaskConfig
from selfplay.schema.sampling import LogprobsConfig
from selfplay.schema.selection import SelectionConfig


@dataclass
class PairColumnsConfig:
    """Column names of a preference file (training on a file; offline selection adds its own below)."""

    prompt: str = "prompt"
    """Prompt: a string or a list of chat messages."""
    chosen: str = "chosen"
    """Chosen response: a string, or chat messages whose last assistant message is the response."""
    rejected: str = "rejected"
    """Rejected response, same forms as `chosen`."""
    id: str | None = None
    """Stable row id (ties in the ranking break by it); null = the row number."""


@dataclass
class ColumnsConfig(PairColumnsConfig):
    """Column names of a preference dataset (offline selection)."""

    chosen_reward: str = "score_chosen"
    """Explicit reward of the chosen response (UltraFeedback's name); computed with `judge` if absent."""
    rejected_reward: str = "score_rejected"
    """Explicit reward of the rejected response; computed with `judge` if absent."""
    chosen_implicit: str = "implicit_chosen"
    """Implicit reward of the chosen response, in the `selection.implicit_reward` form; computed by
    teacher forcing with `model` if absent."""
    rejected_implicit: str = "implicit_rejected"
    """Implicit reward of the rejected response; computed with `model` if absent."""
    all_rewards: str = "all_rm_scores"
    """The SimPO datasets' layout: a list of K rewards per prompt (chosen = the highest, rejected = the
    lowest, explicit margin = max - min); used when the two reward columns above are absent."""
    all_responses: str = "all_generated_responses"
    """The K responses `all_rewards` scores (chosen and rejected are taken from it when present)."""


@dataclass
class OfflineModelConfig(ModelConfig):
    """The policy whose implicit rewards are computed when the dataset lacks them."""

    path: str | None = None  # type: ignore[assignment]
    """Model folder or hub name; null = implicit rewards must come from the dataset's columns."""


@dataclass
class OfflineSelectConfig:
    """`python -m selfplay.select`: select pairs of an existing preference dataset."""

    input: str | None = None
    """Parquet, JSONL/JSON file, or a `datasets` folder (save_to_disk) or hub name."""
    output: str | None = None
    """Folder for selected.parquet (the kept pairs, best first, in TRL's preference format with every
    score), scored.parquet (every usable row, input order) and summary.json."""
    format: TableFormat = TableFormat.parquet
    """parquet, or jsonl (selected.jsonl / scored.jsonl: slower, for tools that read JSON lines)."""
    split: str = "train"
    """Split of a datasets folder / hub dataset."""
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    judge: OfflineJudgeConfig = field(default_factory=OfflineJudgeConfig)
    model: OfflineModelConfig = field(default_factory=OfflineModelConfig)
    logprobs: LogprobsConfig = field(default_factory=LogprobsConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    """Where the scoring of a dataset runs when rewards or implicit rewards are computed (the loop's
    machinery, in `<output>/work/`): loop.shards, loop.shard_workers, loop.workers, loop.isolation,
    loop.threads, loop.hang_timeout, loop.progress apply; the rest is set by the command."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The engine slots the scoring shards run on (cluster=local|gpus|slurm, as for the loop)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """Set by the command for the shard and worker processes it starts (do not set)."""


@dataclass
class TrainFileConfig(Config):
    """`python -m selfplay.train input=<file> [preset=...]`: train the policy (`model`) on a preference
    file (e.g. `selected.parquet` of `python -m selfplay.select`) with the loop's train stage: the same
    TRL path, presets, tokenisation, reference handling, processes and resume."""

    input: str | None = None
    """Parquet, JSONL/JSON file, a `datasets` folder (save_to_disk) or hub name with preference pairs."""
    split: str = "train"
    """Split of a datasets folder / hub dataset."""
    pairs: PairColumnsConfig = field(default_factory=PairColumnsConfig)


@dataclass
class SelectRunConfig(Config):
    """Offline selection's scoring as a run of the loop's machinery (built from OfflineSelectConfig by
    the command, never composed by Hydra): the dataset, its columns and the run's sections."""

    input: str | None = None
    split: str = "train"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
