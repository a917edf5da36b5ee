"""The schema of `python -m selfplay.train_rm` (conf/train_rm.yaml composes on it): where the preference
pairs come from, the backbone, label noise, the held-out share and the training settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from selfplay.config import GenerateConfig, JudgeConfig, ModelConfig, PairColumnsConfig, PromptsConfig


@dataclass
class RewardTrainingConfig:
    """How the reward model is trained (TRL's RewardTrainer: a Bradley-Terry loss on each pair)."""

    learning_rate: float = 1e-5
    epochs: float = 1.0
    batch_size: int = 8
    """Pairs per optimizer step (per device)."""
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    """Tokens of prompt + response; longer inputs are cut (and counted), as the reward-model judge cuts
    them at judge.max_length."""
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    logging_steps: int = 10
    trl_args: dict[str, Any] = field(default_factory=dict)
    """Any other field of the installed TRL's RewardConfig (+train.trl_args.<field>=<value>)."""


@dataclass
class TrainRMConfig:
    """`python -m selfplay.train_rm output=<folder> [input=<pairs>] [...]`: train a reward model
    (AutoModelForSequenceClassification, one output) on preference pairs, either a file of pairs
    (`input`, TRL's prompt / chosen / rejected layout), or pairs sampled from `model` on `prompts` and
    labelled by `judge` (best vs worst response of each prompt) when `input` is null."""

    output: str | None = None
    """The new reward model's folder (must not exist, or be empty): judge.kind=reward_model
    judge.model.path=<output> loads it as it is; its README.md states the held-out accuracy."""
    input: str | None = None
    """A preference file (Parquet, JSONL, JSON), a datasets folder or hub name; null = sample pairs."""
    split: str = "train"
    """Split of a datasets folder / hub dataset."""
    pairs: PairColumnsConfig = field(default_factory=PairColumnsConfig)
    """Column names of `input`."""
    backbone: str | None = None
    """The model the score head goes on (a folder, hub name, tiny or a registry name such as
    smollm2-135m); null = the policy, `model.path`."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy that samples the responses (input=null) and the default backbone."""
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    """The prompts to sample on (their pool, not the held-out prompts)."""
    num_prompts: int = 128
    """Prompts sampled (the first of the shuffled pool); each gives at most one best-vs-worst pair."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """Sampling settings (generate.num_samples responses per prompt)."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The labelling judge of sampled pairs: chosen = its best response, rejected = its worst."""
    label_noise: float = 0.0
    """Share of the training pairs whose labels are flipped (chosen and rejected swapped), drawn with
    `seed`; held-out pairs keep their labels."""
    heldout_share: float = 0.2
    """Share of the pairs held out (drawn with `seed`) to measure pairwise accuracy after training."""
    seed: int = 0
    """Seeds the held-out draw, the label flips, the score head's initialisation and training."""
    train: RewardTrainingConfig = field(default_factory=RewardTrainingConfig)


def register_train_rm_config() -> None:
    ConfigStore.instance().store(name="train_rm_schema", node=TrainRMConfig)
