"""The records stages exchange: plain frozen dataclasses with stable ids and provenance."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

Message = dict[str, str]


@dataclass(frozen=True)
class Prompt:
    """One prompt as chat messages (system turn optional, last turn from the user)."""

    prompt_id: str
    messages: list[Message]
    iteration: int = 0
    source: str = ""
    origin: str = "seed"
    """seed (from the prompt pool) or evolved (rewritten by the policy)."""
    parent_id: str | None = None
    """The prompt an evolved prompt was rewritten from."""
    strategy: str | None = None
    """The rewrite strategy of an evolved prompt."""


@dataclass(frozen=True)
class Completion:
    """One sampled response of a policy to a prompt, with its sampled-token log-probs.

    Stored as Parquet (the per-token arrays as int32 / float32). `num_tokens` and `logprob_sum` are
    kept beside the arrays, so a reader that does not need the tokens (judge, selection) reads the
    record without them (empty arrays) and still has both."""

    prompt_id: str
    sample_index: int
    text: str
    finish_reason: str
    """"stop" (end-of-sequence or stop string), "length" (cut at max_tokens) or "empty"."""
    iteration: int = 0
    model: str = ""
    seed: int = 0
    num_tokens: int = -1
    """Sampled tokens (-1 when constructed: taken from token_ids)."""
    logprob_sum: float = math.nan
    """Sum of the sampled tokens' log-probs (NaN when constructed: taken from logprobs)."""
    token_ids: list[int] = field(default_factory=list, metadata={"dtype": "int32"})
    logprobs: list[float] = field(default_factory=list, metadata={"dtype": "float32"})
    """Per-token log-probs of the sampled tokens under the raw (or, with generate.logprobs_mode=processed,
    the sampling) distribution."""

    def __post_init__(self) -> None:
        if self.num_tokens < 0:
            object.__setattr__(self, "num_tokens", len(self.token_ids))
        if math.isnan(self.logprob_sum) and self.logprobs is not None:
            object.__setattr__(self, "logprob_sum", float(sum(self.logprobs)))

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


COMPLETION_TEXT = [
    "prompt_id",
    "sample_index",
    "text",
    "finish_reason",
    "iteration",
    "model",
    "seed",
    "num_tokens",
    "logprob_sum",
]
"""Completion columns without the per-token arrays (what judging and selection read)."""


@dataclass(frozen=True)
class Judgment:
    """The explicit reward the judge gave one response. A reward that is not a finite number is stored
    as `reward: null` with `nonfinite` saying which ("nan", "inf", "-inf"), so the file stays valid JSON;
    `value` gives it back as a float."""

    prompt_id: str
    sample_index: int
    reward: float | None
    judge: str = ""
    truncated_input: bool = False
    nonfinite: str | None = None

    @staticmethod
    def of(
        prompt_id: str, sample_index: int, value: float, judge: str = "", truncated: bool = False
    ) -> Judgment:
        if math.isfinite(value):
            return Judgment(prompt_id, sample_index, value, judge, truncated)
        return Judgment(prompt_id, sample_index, None, judge, truncated, nonfinite_label(value))

    @property
    def value(self) -> float:
        return self.reward if self.reward is not None else float(self.nonfinite or "nan")


def nonfinite_label(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class SequenceLogprob:
    """Teacher-forced log-probability of one response under a policy."""

    prompt_id: str
    sample_index: int
    logprob_sum: float
    num_tokens: int
    model: str = ""
    reference_logprob_sum: float | None = None
    """log pi_0(y|x), for the `dpo` implicit-reward form."""


@dataclass(frozen=True)
class Pair:
    """A preference pair with both margins, its selection score and whether it was kept."""

    pair_id: str
    prompt_id: str
    messages: list[Message]
    chosen: str
    rejected: str
    chosen_index: int
    rejected_index: int
    chosen_reward: float
    rejected_reward: float
    chosen_implicit: float
    rejected_implicit: float
    explicit_margin: float
    implicit_margin: float
    iteration: int = 0
    score: float | None = None
    rank: int | None = None
    kept: bool = False
    origin: str = "seed"
    """seed or evolved: where the pair's prompt came from."""
    parent_id: str | None = None
    """For evolved pairs: the prompt the pair's prompt was rewritten from."""
    strategy: str | None = None
    """For evolved pairs: the rewrite strategy."""


@dataclass(frozen=True)
class PreferenceRow:
    """A row of a preference dataset as offline selection's scoring reads it."""

    row_id: str
    messages: list[Message]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class RowScores:
    """What offline selection computed for a dataset row: its rewards (the judge) and implicit rewards
    (teacher forcing of the policy); None where not computed or not a finite number."""

    row_id: str
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    chosen_implicit: float | None = None
    rejected_implicit: float | None = None


R = TypeVar("R")


def to_dict(record: Any) -> dict[str, Any]:
    return asdict(record)


def from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """Build a record, naming unknown or missing fields instead of failing inside dataclasses."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as err:
        raise ValueError(f"{cls.__name__}: {err}") from None
