"""Judge stage: an explicit reward for every completion, by a rule or a reward model."""

from __future__ import annotations

import numbers

from selfplay.config import JudgeConfig
from selfplay.data.records import Completion, Judgment, Prompt
from selfplay.errors import SelfplayError
from selfplay.judge.rules import resolve_rule
from selfplay.progress import Progress


def judge_name(cfg: JudgeConfig) -> str:
    return f"rule:{cfg.rule}" if cfg.kind == "rule" else f"rm:{cfg.model_path}"


class Judge:
    """A ready judge: the config plus, for kind=reward_model, the loaded model (load it once, score
    many times)."""

    def __init__(self, cfg: JudgeConfig, reward_model=None):
        self.cfg = cfg
        self.reward_model = reward_model

    def __call__(
        self, prompts: list[Prompt], completions: list[Completion], label: str = "judge"
    ) -> list[Judgment]:
        return judge_completions(self.cfg, prompts, completions, self.reward_model, label)


def load_judge(cfg: JudgeConfig, key: str = "judge") -> Judge:
    """The judge as configured (`key` names its config section in errors); a reward model is loaded
    here (the only place that loads one)."""
    if cfg.kind != "reward_model":
        return Judge(cfg)
    from selfplay.judge.reward_model import RewardModel

    return Judge(cfg, RewardModel(cfg, key=key))


def judge_completions(
    cfg: JudgeConfig,
    prompts: list[Prompt],
    completions: list[Completion],
    reward_model=None,
    label: str = "judge",
) -> list[Judgment]:
    """Rewards in completion order. `reward_model` is a loaded RewardModel when kind=reward_model."""
    by_id = {p.prompt_id: p for p in prompts}
    name = judge_name(cfg)
    progress = Progress(label, len(completions), "responses")
    if cfg.kind == "rule":
        rule = resolve_rule(cfg.rule)
        out = []
        for c in completions:
            prompt_text = by_id[c.prompt_id].messages[-1]["content"]
            out.append(Judgment.of(c.prompt_id, c.sample_index, call_rule(rule, cfg, prompt_text, c), name))
            progress.update()
        progress.close()
        return out
    items = [(by_id[c.prompt_id].messages, c.text) for c in completions]
    rewards, truncated = reward_model.score(items, progress)
    progress.close()
    return [
        Judgment.of(c.prompt_id, c.sample_index, r, name, t)
        for c, r, t in zip(completions, rewards, truncated)
    ]


def call_rule(rule, cfg: JudgeConfig, prompt_text: str, c: Completion) -> float:
    """One rule call; a rule that raises or returns something other than a number is a one-line error
    naming it (a NaN or inf is a number: selection counts and drops it, per selection.on_nonfinite)."""
    where = f"(prompt {c.prompt_id}, response {c.sample_index})"
    try:
        value = rule(prompt_text, c.text)
    except Exception as err:
        raise SelfplayError(f"judge.rule={cfg.rule} raised {type(err).__name__}: {err} {where}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SelfplayError(
            f"judge.rule={cfg.rule} returned {value!r:.60} ({type(value).__name__}), not a number {where}"
        )
    return float(value)


def judgment_stats(judgments: list[Judgment]) -> dict[str, float]:
    import numpy as np

    values = np.array([j.value for j in judgments], dtype=float)
    finite = values[np.isfinite(values)]
    stats: dict[str, float] = {
        "judged": len(judgments),
        "nonfinite": int(len(values) - len(finite)),
        "input_truncated": sum(j.truncated_input for j in judgments),
    }
    if len(finite):
        for q, v in zip(("p10", "p50", "p90"), np.quantile(finite, [0.1, 0.5, 0.9])):
            stats[f"reward_{q}"] = float(v)
        stats["reward_mean"] = float(finite.mean())
    return stats
