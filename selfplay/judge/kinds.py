"""The table of judge kinds: how each one is checked at start, named in records and cards, loaded (once
per stage process or worker shard) and asked for rewards, and which tokenizer bounds its input. Adding a
kind is one `JudgeSpec` here plus the `JudgeKind` choice and its fields in `selfplay/config.py`;
nothing else tests a judge's kind."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from selfplay.config import JudgeConfig
from selfplay.data.records import Message
from selfplay.errors import SelfplayError

Item = tuple[list[Message], str, dict[str, Any]]
"""What a judge scores: the prompt's chat messages, the response, and the response's metadata
(prompt_id, sample_index, num_tokens, finish_reason)."""


class Scorer(Protocol):
    def score(self, items: list[Item], progress=None) -> tuple[list[float], list[bool]]:
        """Rewards (any float; NaN/inf are counted by selection) and input-truncated flags, in order."""
        ...


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    describe: Callable[[JudgeConfig], str]
    """How records and cards name this judge ("rule:topical_variety", "rm:/models/rm")."""
    check: Callable[[JudgeConfig, str], None]
    """Refuse at start what would fail later; `key` is the config section ("judge", "evaluate.judge")."""
    load: Callable[[JudgeConfig, str], Scorer]
    """The ready scorer (a reward model is loaded here: the one place that loads a judge)."""
    input_tokenizer: Callable[[JudgeConfig], Any] = lambda cfg: None
    """The tokenizer whose length `max_length` bounds (evolved prompts must fit it), if any."""


# Rules: a Python function.


class RuleScorer:
    def __init__(self, cfg: JudgeConfig, key: str):
        from selfplay.judge.rules import resolve_rule

        self.cfg, self.key, self.rule = cfg, key, resolve_rule(cfg.rule)

    def score(self, items: list[Item], progress=None) -> tuple[list[float], list[bool]]:
        rewards = []
        for messages, response, meta in items:
            rewards.append(self.call(messages[-1]["content"], response, meta))
            if progress is not None:
                progress.update()
        return rewards, [False] * len(items)

    def call(self, prompt_text: str, response: str, meta: dict[str, Any]) -> float:
        """One rule call; a rule that raises or returns something other than a number is a one-line
        error naming it (a NaN or inf is a number: selection counts and drops it)."""
        where = f"(prompt {meta.get('prompt_id')}, response {meta.get('sample_index')})"
        try:
            value = self.rule(prompt_text, response)
        except Exception as err:
            raise SelfplayError(
                f"{self.key}.rule={self.cfg.rule} raised {type(err).__name__}: {err} {where}"
            ) from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SelfplayError(
                f"{self.key}.rule={self.cfg.rule} returned {value!r:.60} ({type(value).__name__}), not a number {where}"
            )
        return float(value)


def _check_rule(cfg: JudgeConfig, key: str) -> None:
    from selfplay.judge.rules import resolve_rule

    try:
        resolve_rule(cfg.rule)
    except ValueError as err:
        raise SelfplayError(str(err).replace("judge.rule", f"{key}.rule")) from None


# Reward models: a sequence classifier.


class RewardModelScorer:
    def __init__(self, cfg: JudgeConfig, key: str):
        from selfplay.judge.reward_model import RewardModel

        self.model = RewardModel(cfg, key=key)

    def score(self, items: list[Item], progress=None) -> tuple[list[float], list[bool]]:
        return self.model.score([(m, r) for m, r, _ in items], progress)


def _check_model_path(cfg: JudgeConfig, key: str) -> None:
    if not cfg.model_path:
        raise SelfplayError(f"{key}.model_path: required with {key}.kind={cfg.kind}")


def _reward_model_tokenizer(cfg: JudgeConfig):
    from selfplay.models.loading import load_tokenizer

    return load_tokenizer(str(cfg.model_path), cfg.trust_remote_code, "judge.model_path", cfg.chat_template)


JUDGES: dict[str, JudgeSpec] = {
    "rule": JudgeSpec(
        name="rule",
        describe=lambda cfg: f"rule:{cfg.rule}",
        check=_check_rule,
        load=RuleScorer,
    ),
    "reward_model": JudgeSpec(
        name="reward_model",
        describe=lambda cfg: f"rm:{cfg.model_path}",
        check=_check_model_path,
        load=RewardModelScorer,
        input_tokenizer=_reward_model_tokenizer,
    ),
}
"""Every kind `judge.kind` (and `evaluate.judge.kind`, the offline judge's kind) may name."""


def judge_spec(cfg: JudgeConfig) -> JudgeSpec:
    return JUDGES[str(cfg.kind)]
