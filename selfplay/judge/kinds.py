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
class JudgeRuntime:
    """What a judge may use of the run it judges in: the iteration's policy (judge.model.path=policy),
    the generation settings and the model settings (a judge on the run's own engine)."""

    policy: str | None = None
    generate: Any = None
    model: Any = None


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    describe: Callable[[JudgeConfig], str]
    """How records and cards name this judge ("rule:topical_variety", "rm:/models/rm")."""
    check: Callable[[JudgeConfig, str], None]
    """Refuse at start what would fail later; `key` is the config section ("judge", "evaluate.judge")."""
    load: Callable[[JudgeConfig, str, JudgeRuntime | None], Scorer]
    """The ready scorer (a reward model is loaded here: the one place that loads a judge)."""
    input_tokenizer: Callable[[JudgeConfig], Any] = lambda cfg: None
    """The tokenizer whose length `max_length` bounds (evolved prompts must fit it), if any."""
    full_marks: Callable[[JudgeConfig], float | None] = lambda cfg: None
    """The reward that means "every requirement met", where the judge declares one (a rule function's
    `full_marks` attribute, e.g. the ifeval rule's 1.0); evaluation then reports the share of samples
    reaching it. None: the judge has no such notion (a reward model's scores are unbounded)."""
    relative: Callable[[JudgeConfig], bool] = lambda cfg: False
    """Whether its rewards only rank a prompt's responses against each other (a Bradley-Terry fit of
    pairwise comparisons: mean 0 per prompt), so a mean over prompts says nothing of a policy."""


# Rules: a Python function.


def rule_form(fn: Callable[..., Any]) -> str:
    """How a rule is called: "batched" when its first two parameters are named `prompts` and
    `responses` (lists in, a list out), else "single" (`(prompt, response) -> float`)."""
    import inspect

    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return "single"
    return "batched" if names[:2] == ["prompts", "responses"] else "single"


def _accepts_metadata(fn: Callable[..., Any]) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "metadata" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class RuleScorer:
    """A Python function as judge. Per response: `f(prompt: str, response: str) -> float` with the
    last user message as `prompt`. Batched: `f(prompts, responses[, metadata]) -> list[float]`, called
    with `judge.batch_size` responses at a time, `prompts` the full chat message lists, `metadata` one
    dict per response (prompt_id, sample_index, num_tokens, finish_reason). Either may be `async def`
    (per-response coroutines of one batch run concurrently)."""

    def __init__(self, cfg: JudgeConfig, key: str):
        import inspect

        from selfplay.judge.rules import resolve_rule

        self.cfg, self.key = cfg, key
        self.rule: Callable[..., Any] = resolve_rule(cfg.rule)  # any of the forms above
        self.form = rule_form(self.rule)
        self.is_async = inspect.iscoroutinefunction(self.rule)
        self.with_metadata = _accepts_metadata(self.rule)

    def score(self, items: list[Item], progress=None) -> tuple[list[float], list[bool]]:
        rewards: list[float] = []
        step = max(1, self.cfg.batch_size) if (self.form == "batched" or self.is_async) else 1
        for start in range(0, len(items), step):
            batch = items[start : start + step]
            rewards += self.call_batch(batch) if self.form == "batched" else self.call_singles(batch)
            if progress is not None:
                progress.update(len(batch))
        return rewards, [False] * len(items)

    def _where(self, meta: dict[str, Any]) -> str:
        return f"(prompt {meta.get('prompt_id')}, response {meta.get('sample_index')})"

    def _raised(self, err: Exception, where: str) -> SelfplayError:
        return SelfplayError(f"{self.key}.rule={self.cfg.rule} raised {type(err).__name__}: {err} {where}")

    def _number(self, value: Any, where: str) -> float:
        """A rule's answer as a float; anything but a real number is a one-line error naming the rule
        (a NaN or inf is a number: selection counts and drops it)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SelfplayError(
                f"{self.key}.rule={self.cfg.rule} returned {value!r:.60} ({type(value).__name__}), not a number {where}"
            )
        return float(value)

    def call_singles(self, batch: list[Item]) -> list[float]:
        if self.is_async:
            import asyncio

            async def all_of() -> list[Any]:
                calls = [self.rule(m[-1]["content"], r) for m, r, _ in batch]
                return list(await asyncio.gather(*calls, return_exceptions=True))

            values = asyncio.run(all_of())
            for value, (_, _, meta) in zip(values, batch):
                if isinstance(value, Exception):
                    raise self._raised(value, self._where(meta))
            return [self._number(v, self._where(meta)) for v, (_, _, meta) in zip(values, batch)]
        return [self.call(m[-1]["content"], r, meta) for m, r, meta in batch]

    def call(self, prompt_text: str, response: str, meta: dict[str, Any]) -> float:
        """One per-response rule call."""
        where = self._where(meta)
        try:
            value = self.rule(prompt_text, response)
        except Exception as err:
            raise self._raised(err, where) from None
        return self._number(value, where)

    def call_batch(self, batch: list[Item]) -> list[float]:
        """One batched rule call: full message lists, responses (and metadata) in, a list out."""
        first, last = batch[0][2], batch[-1][2]
        where = (
            f"(responses {first.get('prompt_id')}/{first.get('sample_index')} to "
            f"{last.get('prompt_id')}/{last.get('sample_index')})"
        )
        args: list[Any] = [[m for m, _, _ in batch], [r for _, r, _ in batch]]
        if self.with_metadata:
            args.append([dict(meta) for _, _, meta in batch])
        try:
            value = self.rule(*args)
            if self.is_async:
                import asyncio

                value = asyncio.run(value)
        except Exception as err:
            raise self._raised(err, where) from None
        try:
            values = list(value)
        except TypeError:
            values = None
        if values is None or len(values) != len(batch):
            got = f"{len(values)} values" if values is not None else f"{type(value).__name__}"
            raise SelfplayError(
                f"{self.key}.rule={self.cfg.rule} (batched) returned {got} for {len(batch)} responses {where}"
            )
        return [self._number(v, self._where(meta)) for v, (_, _, meta) in zip(values, batch)]


def rule_full_marks(fn: Callable[..., Any], key: str = "judge", name: str = "") -> float | None:
    """A rule's declared full marks (its `full_marks` attribute), checked to be a finite number."""
    import math

    value = getattr(fn, "full_marks", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SelfplayError(
            f"{key}.rule={name}: its full_marks attribute is {value!r:.40}, not a finite number"
        )
    return float(value)


def _rule_full_marks(cfg: JudgeConfig) -> float | None:
    from selfplay.judge.rules import resolve_rule

    return rule_full_marks(resolve_rule(cfg.rule), "judge", cfg.rule)


def _check_rule(cfg: JudgeConfig, key: str) -> None:
    from selfplay.judge.rules import resolve_rule

    try:
        fn = resolve_rule(cfg.rule)
    except ValueError as err:
        raise SelfplayError(str(err).replace("judge.rule", f"{key}.rule")) from None
    rule_full_marks(fn, key, cfg.rule)


# Reward models: a sequence classifier.


class RewardModelScorer:
    def __init__(self, cfg: JudgeConfig, key: str, runtime: JudgeRuntime | None = None):
        from selfplay.judge.reward_model import RewardModel

        self.model = RewardModel(cfg, key=key, generate=getattr(runtime, "generate", None))

    def score(self, items: list[Item], progress=None) -> tuple[list[float], list[bool]]:
        return self.model.score([(m, r) for m, r, _ in items], progress)

    def close(self) -> None:
        self.model.close()


def _check_model_path(cfg: JudgeConfig, key: str) -> None:
    if not cfg.model.path:
        raise SelfplayError(f"{key}.model.path: required with {key}.kind={cfg.kind}")


def _check_reward_model(cfg: JudgeConfig, key: str) -> None:
    """A reward model folder that is not there is refused at start (not after sampling), naming the
    command that trains it: its train_rm recipe's when one writes that folder (e.g. runs/rm-ifeval)."""
    from pathlib import Path

    from selfplay.models.loading import looks_local
    from selfplay.train_rm_config import recipe_writing, train_rm_command

    _check_model_path(cfg, key)
    path = str(cfg.model.path)
    if Path(path).expanduser().exists():
        return
    if looks_local(path) or recipe_writing(path) is not None:  # else a hub name, downloaded when loaded
        raise SelfplayError(
            f"{key}.model.path={path}: no reward model folder there; train it first: {train_rm_command(path)}"
        )


def _reward_model_tokenizer(cfg: JudgeConfig):
    from selfplay.models.loading import load_tokenizer

    return load_tokenizer(
        str(cfg.model.path), cfg.model.trust_remote_code, "judge.model.path", cfg.model.chat_template
    )


def _imported(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported when first called (a kind's module loads only when the kind is used)."""

    def call(*args: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return call


def _generative_tokenizer(cfg: JudgeConfig):
    from selfplay.judge.generative import POLICY

    if cfg.model.path == POLICY:
        return None  # the policy's own tokenizer: evolved prompts are checked against it already
    return _reward_model_tokenizer(cfg)


JUDGES: dict[str, JudgeSpec] = {
    "rule": JudgeSpec(
        name="rule",
        describe=lambda cfg: f"rule:{cfg.rule}",
        check=_check_rule,
        load=lambda cfg, key, runtime: RuleScorer(cfg, key),
        full_marks=_rule_full_marks,
    ),
    "reward_model": JudgeSpec(
        name="reward_model",
        describe=lambda cfg: f"rm:{cfg.model.path}",
        check=_check_reward_model,
        load=RewardModelScorer,
        input_tokenizer=_reward_model_tokenizer,
    ),
    "remote": JudgeSpec(
        name="remote",
        describe=lambda cfg: (
            f"remote:{cfg.remote.url}"
        ),  # a reward server over HTTP (selfplay/judge/remote.py)
        check=_imported("selfplay.judge.remote", "check_remote"),
        load=_imported("selfplay.judge.remote", "RemoteScorer"),
    ),
    "generative": JudgeSpec(
        name="generative",
        describe=lambda cfg: (
            f"llm:{cfg.model.path}:{cfg.generative.mode}"
        ),  # an LLM judge (selfplay/judge/generative.py)
        check=_imported("selfplay.judge.generative", "check_generative"),
        load=_imported("selfplay.judge.generative", "GenerativeScorer"),
        input_tokenizer=_generative_tokenizer,
        relative=lambda cfg: str(cfg.generative.mode) == "pairwise",
    ),
}
"""Every kind `judge.kind` (and `evaluate.judge.kind`, the offline judge's kind) may name."""


def judge_spec(cfg: JudgeConfig) -> JudgeSpec:
    return JUDGES[str(cfg.kind)]
