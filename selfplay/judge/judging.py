"""Judge stage: an explicit reward for every completion, by a rule or a reward model."""

from __future__ import annotations

import math

from selfplay.config import JudgeConfig
from selfplay.data.records import Completion, Judgment, Prompt
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


def load_judge(cfg: JudgeConfig) -> Judge:
    """The judge as configured; a reward model is loaded here (the only place that loads one)."""
    if cfg.kind != "reward_model":
        return Judge(cfg)
    from selfplay.judge.reward_model import RewardModel

    return Judge(cfg, RewardModel(cfg))


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
            out.append(Judgment(c.prompt_id, c.sample_index, float(rule(prompt_text, c.text)), name))
            progress.update()
        progress.close()
        return out
    items = [(by_id[c.prompt_id].messages, c.text) for c in completions]
    rewards, truncated = reward_model.score(items, progress)
    progress.close()
    return [
        Judgment(c.prompt_id, c.sample_index, r, name, t) for c, r, t in zip(completions, rewards, truncated)
    ]


def judgment_stats(judgments: list[Judgment]) -> dict[str, float]:
    import numpy as np

    values = np.array([j.reward for j in judgments], dtype=float)
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


def mean_reward(judgments: list[Judgment]) -> float:
    vals = [j.reward for j in judgments if math.isfinite(j.reward)]
    return sum(vals) / len(vals) if vals else float("nan")
