"""Judge stage: an explicit reward for every completion, by whichever kind of judge is configured
(selfplay/judge/kinds.py)."""

from __future__ import annotations

from typing import Any

from selfplay.config import JudgeConfig
from selfplay.data.records import Completion, Judgment, Prompt
from selfplay.judge.kinds import JudgeRuntime, Scorer, judge_spec
from selfplay.progress import Progress


def judge_name(cfg: JudgeConfig) -> str:
    return judge_spec(cfg).describe(cfg)


class Judge:
    """A ready judge: its config and its scorer (a reward model loaded once, scoring many times)."""

    def __init__(self, cfg: JudgeConfig, scorer: Scorer):
        self.cfg, self.scorer = cfg, scorer

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def retries(self) -> int | None:
        """Requests the scorer retried so far (a remote judge); None for kinds that never retry."""
        return getattr(self.scorer, "retried", None)

    def close(self) -> None:
        """Free what the scorer holds (a reward model's vLLM engine); a no-op for most kinds."""
        close = getattr(self.scorer, "close", None)
        if close is not None:
            close()

    def __call__(
        self, prompts: list[Prompt], completions: list[Completion], label: str = "judge"
    ) -> list[Judgment]:
        """Rewards in completion order."""
        by_id = {p.prompt_id: p for p in prompts}
        items = [
            (
                by_id[c.prompt_id].messages,
                c.text,
                {
                    "prompt_id": c.prompt_id,
                    "sample_index": c.sample_index,
                    "num_tokens": c.num_tokens,
                    "finish_reason": c.finish_reason,
                },
            )
            for c in completions
        ]
        name = judge_name(self.cfg)
        with Progress(label, len(completions), "responses") as progress:
            rewards, truncated = self.scorer.score(items, progress)
        return [
            Judgment.of(c.prompt_id, c.sample_index, r, name, t)
            for c, r, t in zip(completions, rewards, truncated)
        ]


def load_judge(cfg: JudgeConfig, key: str = "judge", runtime: JudgeRuntime | None = None) -> Judge:
    """The judge as configured (`key` names its config section in errors), its scorer loaded;
    `runtime`: the run it judges in (policy, generation and model settings), for judges that use them."""
    return Judge(cfg, judge_spec(cfg).load(cfg, key, runtime))


def judgment_stats(judgments: list[Judgment]) -> dict[str, Any]:
    import numpy as np

    values = np.array([j.value for j in judgments], dtype=float)
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {
        "judged": len(judgments),
        "nonfinite": int(len(values) - len(finite)),
        "input_truncated": sum(j.truncated_input for j in judgments),
    }
    if len(finite):
        for q, v in zip(("p10", "p50", "p90"), np.quantile(finite, [0.1, 0.5, 0.9])):
            stats[f"reward_{q}"] = float(v)
        stats["reward_mean"] = float(finite.mean())
    return stats
