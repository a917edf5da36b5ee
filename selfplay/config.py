"""The one configuration schema: structured-config dataclasses, each field's default written once, one
module per section in selfplay/schema/ and every name re-exported here.

Hydra composes YAML from `conf/` (shipped as `selfplay.conf`) on top of these and `run.py` converts the
result into these dataclasses once (they are not `frozen`: OmegaConf makes frozen nodes read-only,
which breaks command-line overrides; stages treat them as read-only). No logic lives here beyond
registering.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from selfplay.schema.choices import (
    TINY_MODEL,
    Backend,
    Choice,
    ClusterKind,
    Dtype,
    EngineLifetime,
    EvolveParents,
    ImplicitReward,
    Isolation,
    JudgeKind,
    JudgeMode,
    LogprobsMode,
    LogprobSource,
    Nonfinite,
    Preamble,
    PromptSource,
    Reference,
    RefLogprobs,
    SelectionPool,
    TableFormat,
    TinyTemplate,
    TrackingBackend,
)
from selfplay.schema.judge import (
    EvaluateJudgeConfig,
    GenerativeJudgeConfig,
    JudgeConfig,
    JudgeModelConfig,
    OfflineJudgeConfig,
    RemoteJudgeConfig,
)
from selfplay.schema.offline import (
    ColumnsConfig,
    OfflineModelConfig,
    OfflineSelectConfig,
    PairColumnsConfig,
    SelectRunConfig,
    TrainFileConfig,
)
from selfplay.schema.policy import ModelConfig, TinyModelConfig
from selfplay.schema.run import (
    RESOURCE_KEYS,
    ClusterConfig,
    Config,
    EvaluateConfig,
    EvolveConfig,
    HubConfig,
    LoopConfig,
    TaskConfig,
    TrackingConfig,
    _evolved_selection,
)
from selfplay.schema.sampling import GenerateConfig, LogprobsConfig, PromptsConfig
from selfplay.schema.selection import SelectionConfig
from selfplay.schema.training import LoraConfig, TrainConfig

__all__ = [
    "Backend",
    "Choice",
    "ClusterConfig",
    "ClusterKind",
    "ColumnsConfig",
    "Config",
    "Dtype",
    "EngineLifetime",
    "EvaluateConfig",
    "EvaluateJudgeConfig",
    "EvolveConfig",
    "EvolveParents",
    "GenerateConfig",
    "GenerativeJudgeConfig",
    "HubConfig",
    "ImplicitReward",
    "Isolation",
    "JudgeConfig",
    "JudgeKind",
    "JudgeMode",
    "JudgeModelConfig",
    "LogprobSource",
    "LogprobsConfig",
    "LogprobsMode",
    "LoopConfig",
    "LoraConfig",
    "ModelConfig",
    "Nonfinite",
    "OfflineJudgeConfig",
    "OfflineModelConfig",
    "OfflineSelectConfig",
    "PairColumnsConfig",
    "Preamble",
    "PromptSource",
    "PromptsConfig",
    "RESOURCE_KEYS",
    "RefLogprobs",
    "Reference",
    "RemoteJudgeConfig",
    "SelectRunConfig",
    "SelectionConfig",
    "SelectionPool",
    "TINY_MODEL",
    "TableFormat",
    "TaskConfig",
    "TinyModelConfig",
    "TinyTemplate",
    "TrackingBackend",
    "TrackingConfig",
    "TrainConfig",
    "TrainFileConfig",
    "_evolved_selection",
    "register_configs",
]


def register_configs() -> None:
    """Register the schema so that `conf/config.yaml` composes on top of it."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    cs.store(name="select_schema", node=OfflineSelectConfig)
    cs.store(name="train_file_schema", node=TrainFileConfig)
    for group, node in [
        ("model", ModelConfig),
        ("prompts", PromptsConfig),
        ("generate", GenerateConfig),
        ("judge", JudgeConfig),
        ("logprobs", LogprobsConfig),
        ("selection", SelectionConfig),
        ("train", TrainConfig),
        ("evolve", EvolveConfig),
        ("evaluate", EvaluateConfig),
        ("loop", LoopConfig),
        ("tracking", TrackingConfig),
        ("hub", HubConfig),
        ("cluster", ClusterConfig),
        ("task", TaskConfig),
    ]:
        cs.store(group=group, name=f"schema_{group}", node=node)
