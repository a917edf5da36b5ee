"""Held-out evaluation: sample each policy on the held-out prompts with the same seeds, judge the
samples; per policy the mean reward, its quantiles, the share at full marks (judges that declare them),
mean length and reward-length correlation; win rates between policies, sample by sample."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from selfplay.config import GenerateConfig, ModelConfig
from selfplay.data.records import Prompt
from selfplay.judge.judging import Judge, full_marks, judge_name

HELDOUT_SALT = "heldout"
"""Seed salt of held-out sampling: the same for every policy, so comparisons use common random numbers."""


def evaluate_policies(
    policies: dict[str, str],
    heldout: list[Prompt],
    gen: GenerateConfig,
    model: ModelConfig,
    num_samples: int,
    iteration: int,
    judge: Judge | Callable[[], Judge],
    label: str = "evaluate",
    release: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sample each policy on the held-out prompts (the same seeds for every policy), then judge every
    sample; stats per policy (`summary`) and one row per sample (policy, prompt_id, sample_index, text,
    num_tokens, reward). All sampling ends before the judge loads: `judge` may be a function that loads
    it, called after `release()` has freed the generation engine's memory (a reward model never shares
    a GPU with an awake engine)."""
    from selfplay.generate.sample import sample_completions

    samples = {
        name: sample_completions(
            path, heldout, gen, model, HELDOUT_SALT, num_samples, iteration, f"{label} ({name}: sampling)"
        )[0]
        for name, path in policies.items()
    }
    if release is not None:
        release()
    loaded_here = not isinstance(judge, Judge)
    judge = judge if isinstance(judge, Judge) else judge()
    stats: dict[str, Any] = {"heldout_prompts": len(heldout), "heldout_judge": judge_name(judge.cfg)}
    rows: list[dict[str, Any]] = []
    for name, completions in samples.items():
        judgments = judge(heldout, completions, f"{label} ({name}: judging)")
        ours = [
            {
                "policy": name,
                "prompt_id": c.prompt_id,
                "sample_index": c.sample_index,
                "text": c.text,
                "num_tokens": c.num_tokens,
                "reward": j.reward,  # null when not a finite number (then `nonfinite` says which)
                **({"nonfinite": j.nonfinite} if j.nonfinite else {}),
            }
            for c, j in zip(completions, judgments)
        ]
        stats.update(summary(ours, name, full_marks(judge.cfg)))
        rows += ours
    if loaded_here:
        judge.close()  # a judge loaded here is freed here (a reward model's vLLM engine)
    return stats, rows


def summary(rows: list[dict[str, Any]], name: str, full: float | None = None) -> dict[str, Any]:
    """Mean reward and its 10/50/90% quantiles, mean length, and the reward-length correlation (a judge
    that rewards length inflates the reward: this makes it visible) of one policy's samples; with the
    judge's full marks `full`, the share of samples reaching them (`heldout_strict_<name>`)."""
    import numpy as np

    rewards = np.array([value(r) for r in rows], dtype=float)
    tokens = np.array([r["num_tokens"] for r in rows], dtype=float)
    finite = np.isfinite(rewards)
    out: dict[str, Any] = {
        f"heldout_reward_{name}": mean_reward_of(rewards),
        f"heldout_tokens_{name}": float(tokens.mean()) if len(tokens) else math.nan,
    }
    if full is not None:
        out[f"heldout_strict_{name}"] = strict_share(rewards, full)
    if finite.any():
        for q, v in zip(("p10", "p50", "p90"), np.quantile(rewards[finite], [0.1, 0.5, 0.9])):
            out[f"heldout_reward_{name}_{q}"] = float(v)
    if finite.sum() > 2 and rewards[finite].std() > 0 and tokens[finite].std() > 0:
        out[f"heldout_reward_length_corr_{name}"] = float(np.corrcoef(rewards[finite], tokens[finite])[0, 1])
    return out


def value(row: dict[str, Any]) -> float:
    """A held-out row's reward as a float (NaN/inf for a null reward with its `nonfinite` label)."""
    reward = row["reward"]
    return float(reward) if reward is not None else float(row.get("nonfinite") or "nan")


def strict_share(rewards, full: float) -> float:
    """The share of samples whose reward reaches the judge's full marks (IFEval's strict rate for the
    ifeval rule); a sample without a finite reward counts as not reaching them."""
    import numpy as np

    values = np.asarray(rewards, dtype=float)
    if not len(values):
        return math.nan
    return float((np.isfinite(values) & (values >= full)).mean())


def mean_reward_of(rewards) -> float:
    finite = [r for r in rewards if math.isfinite(r)]
    return sum(finite) / len(finite) if finite else math.nan


def win_rate(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> float:
    """The share of held-out samples on which `ours` is judged better than `theirs`, matched by prompt
    and sample index (the same sampling seed); a tie counts 1/2, a sample without a finite reward on
    either side is left out."""
    other = {(r["prompt_id"], r["sample_index"]): value(r) for r in theirs}
    score, n = 0.0, 0
    for r in ours:
        b = other.get((r["prompt_id"], r["sample_index"]))
        a = value(r)
        if b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        score += 1.0 if a > b else 0.5 if a == b else 0.0
        n += 1
    return score / n if n else math.nan


def completion_table(heldout: list[Prompt], initial: list[dict], after: list[dict], n: int) -> list[dict]:
    """The first `n` held-out prompts: the request, pi_0's and the new policy's first sample, their
    rewards and which one the judge prefers ("policy", "pi_0" or "tie"; "-" when a reward is missing)."""
    first = {
        name: {r["prompt_id"]: r for r in rows if r["sample_index"] == 0}
        for name, rows in (("pi_0", initial), ("policy", after))
    }
    table = []
    for p in heldout[:n]:
        a, b = first["pi_0"].get(p.prompt_id), first["policy"].get(p.prompt_id)
        if a is None or b is None:
            continue
        ra, rb = a.get("reward"), b.get("reward")
        winner = "-" if ra is None or rb is None else "policy" if rb > ra else "pi_0" if ra > rb else "tie"
        table.append(
            {
                "prompt_id": p.prompt_id,
                "prompt": p.messages[-1]["content"],
                "pi_0": a["text"],
                "pi_0_reward": ra,
                "policy": b["text"],
                "policy_reward": rb,
                "winner": winner,
            }
        )
    return table
