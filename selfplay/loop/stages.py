"""Stage adapters: each reads its inputs from the run directory, calls its package's pure core,
writes its records into `ctx.out`, and returns stats. The orchestrator owns markers and renames;
this file is the whole on-disk contract between stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selfplay.config import Config
from selfplay.data.jsonl import read_records, write_jsonl, write_records
from selfplay.data.prompts import iteration_window, load_prompt_pool
from selfplay.data.records import Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.loop.layout import RunLayout

PROMPTS, COMPLETIONS, JUDGMENTS = "prompts.jsonl", "completions.jsonl", "judgments.jsonl"
LOGPROBS, PAIRS, HELDOUT = "logprobs.jsonl", "pairs.jsonl", "heldout.jsonl"


@dataclass(frozen=True)
class StageContext:
    config: Config
    layout: RunLayout
    iteration: int
    out: Path
    policy: str
    """pi_t: the policy this iteration generates with and trains from."""
    initial_policy: str
    """pi_0."""

    def input(self, stage: str, name: str) -> Path:
        return self.layout.stage_dir(self.iteration, stage) / name


def run_prompts(ctx: StageContext) -> dict:
    pool = load_prompt_pool(ctx.config.prompts)
    prompts = iteration_window(pool.pool, ctx.iteration, ctx.config.prompts.per_iteration)
    write_records(ctx.out / PROMPTS, prompts)
    return {"prompts": len(prompts), "pool": len(pool.pool), "duplicates_dropped": pool.duplicates_dropped}


def run_generate(ctx: StageContext) -> dict:
    from selfplay.generate.sampler import sample_completions
    from selfplay.generate.sampling import completion_stats

    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    gen = ctx.config.generate
    completions, backend = sample_completions(
        ctx.policy,
        prompts,
        gen,
        ctx.config.model,
        f"iter_{ctx.iteration:03d}",
        gen.num_samples,
        ctx.iteration,
    )
    write_records(ctx.out / COMPLETIONS, completions)
    return {"backend": backend, **completion_stats(completions)}


def _judge(ctx: StageContext, prompts: list[Prompt], completions: list[Completion]) -> list[Judgment]:
    from selfplay.judge.judging import judge_completions

    reward_model = None
    if ctx.config.judge.kind == "reward_model":
        from selfplay.judge.reward_model import RewardModel

        reward_model = RewardModel(ctx.config.judge)
    return judge_completions(ctx.config.judge, prompts, completions, reward_model)


def run_judge(ctx: StageContext) -> dict:
    from selfplay.judge.judging import judgment_stats

    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    completions = read_records(ctx.input("generate", COMPLETIONS), Completion)
    judgments = _judge(ctx, prompts, completions)
    write_records(ctx.out / JUDGMENTS, judgments)
    return judgment_stats(judgments)


def run_logprobs(ctx: StageContext) -> dict:
    from selfplay.logprobs.stage import teacher_forced_logprobs

    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    completions = read_records(ctx.input("generate", COMPLETIONS), Completion)
    records = teacher_forced_logprobs(ctx.policy, prompts, completions, ctx.config.logprobs, ctx.config.model)
    write_records(ctx.out / LOGPROBS, records)
    return {"sequences": len(records), "tokens": sum(r.num_tokens for r in records)}


def run_selection(ctx: StageContext) -> dict:
    from selfplay.selection.select import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    completions = read_records(ctx.input("generate", COMPLETIONS), Completion)
    judgments = read_records(ctx.input("judge", JUDGMENTS), Judgment)
    logprobs: dict | None = None
    if cfg.logprobs.source == "teacher_forcing":
        logprobs = {
            (r.prompt_id, r.sample_index): (r.logprob_sum, r.num_tokens)
            for r in read_records(ctx.input("logprobs", LOGPROBS), SequenceLogprob)
        }
    cands = candidates(completions, judgments, str(cfg.selection.implicit_reward), logprobs)
    pairs, stats = pair_and_select(prompts, cands, cfg.selection, ctx.iteration)
    write_records(ctx.out / PAIRS, pairs)
    return stats


def run_train(ctx: StageContext) -> dict:
    from selfplay.train.dpo import train_policy

    pairs = [p for p in read_records(ctx.input("selection", PAIRS), Pair) if p.kept]
    reference = ctx.initial_policy if ctx.config.train.reference == "initial" else None
    stats = train_policy(pairs, ctx.policy, reference, ctx.config.train, ctx.config.model, ctx.out)
    return {"pairs": len(pairs), "reference": "initial" if reference else "previous", **stats}


def run_evaluate(ctx: StageContext) -> dict:
    from selfplay.generate.sampler import sample_completions
    from selfplay.judge.judging import mean_reward

    cfg = ctx.config
    heldout = load_prompt_pool(cfg.prompts).heldout
    policies = {"after": str(ctx.layout.policy_dir(ctx.iteration))}
    if ctx.iteration == 0:
        policies = {"before": ctx.initial_policy, **policies}
    stats: dict = {"heldout_prompts": len(heldout)}
    rows = []
    for name, path in policies.items():
        # Same seeds for every policy (salt "heldout"): comparisons use common random numbers.
        completions, _ = sample_completions(
            path, heldout, cfg.generate, cfg.model, "heldout", cfg.evaluate.num_samples, ctx.iteration
        )
        judgments = _judge(ctx, heldout, completions)
        stats[f"heldout_reward_{name}"] = mean_reward(judgments)
        stats[f"heldout_tokens_{name}"] = sum(c.num_tokens for c in completions) / max(1, len(completions))
        rows += [
            {
                "policy": name,
                "prompt_id": c.prompt_id,
                "sample_index": c.sample_index,
                "text": c.text,
                "reward": j.reward,
            }
            for c, j in zip(completions, judgments)
        ]
    write_jsonl(ctx.out / HELDOUT, rows)
    return stats


StageFn = Callable[[StageContext], dict]

STAGES: dict[str, StageFn] = {
    "prompts": run_prompts,
    "generate": run_generate,
    "judge": run_judge,
    "logprobs": run_logprobs,
    "selection": run_selection,
    "train": run_train,
    "evaluate": run_evaluate,
}


def stages_for(config: Config) -> list[str]:
    """The stages an iteration runs, in order, for this config."""
    names = list(STAGES)
    if config.logprobs.source != "teacher_forcing":
        names.remove("logprobs")
    if not config.evaluate.enabled:
        names.remove("evaluate")
    return names
