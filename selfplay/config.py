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
    TINY_MODEL as TINY_MODEL,
)
from selfplay.schema.choices import (
    Backend as Backend,
)
from selfplay.schema.choices import (  # noqa: F401
    Choice as Choice,
)
from selfplay.schema.choices import (
    ClusterKind as ClusterKind,
)
from selfplay.schema.choices import (
    Dtype as Dtype,
)
from selfplay.schema.choices import (
    EngineLifetime as EngineLifetime,
)
from selfplay.schema.choices import (
    EvolveParents as EvolveParents,
)
from selfplay.schema.choices import (
    ImplicitReward as ImplicitReward,
)
from selfplay.schema.choices import (
    Isolation as Isolation,
)
from selfplay.schema.choices import (
    JudgeKind as JudgeKind,
)
from selfplay.schema.choices import (
    JudgeMode as JudgeMode,
)
from selfplay.schema.choices import (
    LogprobsMode as LogprobsMode,
)
from selfplay.schema.choices import (
    LogprobSource as LogprobSource,
)
from selfplay.schema.choices import (
    Loss as Loss,
)
from selfplay.schema.choices import (
    Metric as Metric,
)
from selfplay.schema.choices import (
    Nonfinite as Nonfinite,
)
from selfplay.schema.choices import (
    Pairing as Pairing,
)
from selfplay.schema.choices import (
    Preamble as Preamble,
)
from selfplay.schema.choices import (
    PromptSource as PromptSource,
)
from selfplay.schema.choices import (
    Reference as Reference,
)
from selfplay.schema.choices import (
    RefLogprobs as RefLogprobs,
)
from selfplay.schema.choices import (
    SelectionPool as SelectionPool,
)
from selfplay.schema.choices import (
    TableFormat as TableFormat,
)
from selfplay.schema.choices import (
    TinyTemplate as TinyTemplate,
)
from selfplay.schema.choices import (
    TrackingBackend as TrackingBackend,
)
from selfplay.schema.judge import (
    EvaluateJudgeConfig as EvaluateJudgeConfig,
)
from selfplay.schema.judge import (
    GenerativeJudgeConfig as GenerativeJudgeConfig,
)
from selfplay.schema.judge import (
    JudgeConfig as JudgeConfig,
)
from selfplay.schema.judge import (  # noqa: F401
    JudgeModelConfig as JudgeModelConfig,
)
from selfplay.schema.judge import (
    OfflineJudgeConfig as OfflineJudgeConfig,
)
from selfplay.schema.judge import (
    RemoteJudgeConfig as RemoteJudgeConfig,
)
from selfplay.schema.offline import (
    ColumnsConfig as ColumnsConfig,
)
from selfplay.schema.offline import (
    OfflineModelConfig as OfflineModelConfig,
)
from selfplay.schema.offline import (
    OfflineSelectConfig as OfflineSelectConfig,
)
from selfplay.schema.offline import (  # noqa: F401
    PairColumnsConfig as PairColumnsConfig,
)
from selfplay.schema.offline import (
    TrainFileConfig as TrainFileConfig,
)
from selfplay.schema.policy import (
    ModelConfig as ModelConfig,
)
from selfplay.schema.policy import (  # noqa: F401
    TinyModelConfig as TinyModelConfig,
)
from selfplay.schema.run import (
    RESOURCE_KEYS as RESOURCE_KEYS,
)
from selfplay.schema.run import (
    ClusterConfig as ClusterConfig,
)
from selfplay.schema.run import (
    Config as Config,
)
from selfplay.schema.run import (
    EvaluateConfig as EvaluateConfig,
)
from selfplay.schema.run import (
    EvolveConfig as EvolveConfig,
)
from selfplay.schema.run import (
    HubConfig as HubConfig,
)
from selfplay.schema.run import (
    LoopConfig as LoopConfig,
)
from selfplay.schema.run import (
    TaskConfig as TaskConfig,
)
from selfplay.schema.run import (
    TrackingConfig as TrackingConfig,
)
from selfplay.schema.run import (  # noqa: F401
    _evolved_selection as _evolved_selection,
)
from selfplay.schema.sampling import (
    GenerateConfig as GenerateConfig,
)
from selfplay.schema.sampling import (
    LogprobsConfig as LogprobsConfig,
)
from selfplay.schema.sampling import (  # noqa: F401
    PromptsConfig as PromptsConfig,
)
from selfplay.schema.selection import (  # noqa: F401
    SelectionConfig as SelectionConfig,
)
from selfplay.schema.training import (  # noqa: F401
    LoraConfig as LoraConfig,
)
from selfplay.schema.training import (
    TrainConfig as TrainConfig,
)


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
