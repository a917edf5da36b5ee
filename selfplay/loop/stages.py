"""Stage adapters: each reads its inputs from the run directory, calls its package's pure core,
writes its records into `ctx.out`, and returns stats. The orchestrator owns markers and renames;
this file is the whole on-disk contract between stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from selfplay.config import Config
from selfplay.data.jsonl import read_records, write_jsonl, write_records
from selfplay.data.prompts import iteration_window, load_prompt_pool
from selfplay.data.records import Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.errors import SelfplayError
from selfplay.loop.layout import RunLayout

PROMPTS, COMPLETIONS, JUDGMENTS = "prompts.jsonl", "completions.jsonl", "judgments.jsonl"
LOGPROBS, PAIRS, HELDOUT = "logprobs.jsonl", "pairs.jsonl", "heldout.jsonl"
HELDOUT_PROMPTS = "heldout_prompts.jsonl"


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
    relaunch: list[str] | None = None
    """The command that starts this run again (for shard and training worker processes)."""

    def input(self, stage: str, name: str) -> Path:
        return self.layout.stage_dir(self.iteration, stage) / name


def run_prompts(ctx: StageContext) -> dict:
    pool = load_prompt_pool(ctx.config.prompts)
    prompts = iteration_window(pool.pool, ctx.iteration, ctx.config.prompts.per_iteration)
    write_records(ctx.out / PROMPTS, prompts)
    write_records(ctx.out / HELDOUT_PROMPTS, pool.heldout)  # read by evaluate: the pool is loaded once
    return {"prompts": len(prompts), "pool": len(pool.pool), "duplicates_dropped": pool.duplicates_dropped}


# Sharded stages: a core over a slice of the iteration's prompts, and stats over the merged records.


def generate_shard(ctx: StageContext, prompts: list[Prompt], salt: str = "iter") -> list[Completion]:
    from selfplay.generate.sampler import sample_completions

    gen = ctx.config.generate
    salt = f"{salt}_{ctx.iteration:03d}"
    completions, _ = sample_completions(
        ctx.policy, prompts, gen, ctx.config.model, salt, gen.num_samples, ctx.iteration
    )
    return completions


def generate_stats(ctx: StageContext, prompts: list[Prompt], completions: list[Completion]) -> dict:
    from selfplay.generate.sampler import resolve_backend
    from selfplay.generate.sampling import completion_stats

    answered = {c.prompt_id for c in completions}
    return {
        "backend": resolve_backend(ctx.config.generate),
        "prompts_too_long": sum(p.prompt_id not in answered for p in prompts),
        **completion_stats(completions),
    }


def _completions_of(ctx: StageContext, prompts: list[Prompt], stage: str = "generate") -> list[Completion]:
    ids = {p.prompt_id for p in prompts}
    return [c for c in read_records(ctx.input(stage, COMPLETIONS), Completion) if c.prompt_id in ids]


def _reward_model(ctx: StageContext):
    """The loaded reward model when the judge is one, else None."""
    if ctx.config.judge.kind != "reward_model":
        return None
    from selfplay.judge.reward_model import RewardModel

    return RewardModel(ctx.config.judge)


def _judge(
    ctx: StageContext, prompts: list[Prompt], completions: list[Completion], reward_model=None
) -> list[Judgment]:
    from selfplay.judge.judging import judge_completions

    if reward_model is None:
        reward_model = _reward_model(ctx)
    return judge_completions(ctx.config.judge, prompts, completions, reward_model)


def judge_shard(
    ctx: StageContext, prompts: list[Prompt], completions_from: str = "generate"
) -> list[Judgment]:
    return _judge(ctx, prompts, _completions_of(ctx, prompts, completions_from))


def judge_stats(ctx: StageContext, prompts: list[Prompt], judgments: list[Judgment]) -> dict:
    from selfplay.judge.judging import judgment_stats

    return judgment_stats(judgments)


def logprobs_shard(ctx: StageContext, prompts: list[Prompt]) -> list[SequenceLogprob]:
    from selfplay.logprobs.stage import teacher_forced_logprobs

    completions = _completions_of(ctx, prompts)
    reference = ctx.initial_policy if ctx.config.selection.implicit_reward == "dpo" else None
    return teacher_forced_logprobs(
        ctx.policy, prompts, completions, ctx.config.logprobs, ctx.config.model, reference
    )


def logprobs_stats(ctx: StageContext, prompts: list[Prompt], records: list[SequenceLogprob]) -> dict:
    stats = {"sequences": len(records), "tokens": sum(r.num_tokens for r in records)}
    if ctx.config.selection.implicit_reward == "dpo":
        # pi_t == pi_0 in iteration 0: the dpo implicit reward is then 0 for every response.
        stats["dpo_implicit_all_zero"] = all(r.logprob_sum == r.reference_logprob_sum for r in records)
    return stats


@dataclass(frozen=True)
class ShardedStage:
    """A stage that splits a prompt set into shards, each writing its own part."""

    output: str
    record: type
    run_shard: Callable[[StageContext, list[Prompt]], list]
    stats: Callable[[StageContext, list[Prompt], list], dict]
    prompts_from: str = "prompts"
    """Stage whose prompts.jsonl is sharded: the iteration's prompts, or the evolved ones."""


SHARDED: dict[str, ShardedStage] = {
    "generate": ShardedStage(COMPLETIONS, Completion, generate_shard, generate_stats),
    "judge": ShardedStage(JUDGMENTS, Judgment, judge_shard, judge_stats),
    "logprobs": ShardedStage(LOGPROBS, SequenceLogprob, logprobs_shard, logprobs_stats),
    "evolved_generate": ShardedStage(
        COMPLETIONS,
        Completion,
        partial(generate_shard, salt="evolved"),
        generate_stats,
        prompts_from="evolve",
    ),
    "evolved_judge": ShardedStage(
        JUDGMENTS,
        Judgment,
        partial(judge_shard, completions_from="evolved_generate"),
        judge_stats,
        prompts_from="evolve",
    ),
}


def run_selection(ctx: StageContext) -> dict:
    from selfplay.selection.select import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    completions = read_records(ctx.input("generate", COMPLETIONS), Completion)
    judgments = read_records(ctx.input("judge", JUDGMENTS), Judgment)
    logprobs: dict | None = None
    if "logprobs" in stages_for(cfg):
        records = read_records(ctx.input("logprobs", LOGPROBS), SequenceLogprob)
        logprobs = {(r.prompt_id, r.sample_index): r for r in records}
    cands = candidates(completions, judgments, str(cfg.selection.implicit_reward), logprobs)
    earlier = []
    if cfg.selection.pool == "all":  # each file holds its iteration's own pairs and earlier ones
        for t in range(ctx.iteration):
            path = ctx.layout.stage_dir(t, "selection") / PAIRS
            earlier += [p for p in read_records(path, Pair) if p.iteration == t]
    pairs, stats = pair_and_select(prompts, cands, cfg.selection, ctx.iteration, earlier)
    write_records(ctx.out / PAIRS, pairs)
    return stats


def _too_long(ctx: StageContext):
    """Whether a new prompt's rendered length leaves no room under the policy's or the judge's limit."""
    from selfplay.generate.sampling import render_prompt_ids
    from selfplay.models.loading import load_tokenizer

    cfg = ctx.config
    policy_tok = load_tokenizer(ctx.policy, cfg.model.trust_remote_code)
    judge_tok = None
    if cfg.judge.kind == "reward_model":
        judge_tok = load_tokenizer(str(cfg.judge.model_path), cfg.judge.trust_remote_code)

    def too_long(text: str) -> bool:
        messages = [{"role": "user", "content": text}]
        if len(render_prompt_ids(policy_tok, messages)) + 1 >= cfg.generate.max_model_len:
            return True
        return judge_tok is not None and len(render_prompt_ids(judge_tok, messages)) >= cfg.judge.max_length

    return too_long


def run_evolve(ctx: StageContext) -> dict:
    from dataclasses import replace

    from selfplay.evolve.rewrite import choose_parents, evolved_prompts, rewrite_requests
    from selfplay.evolve.templates import load_templates
    from selfplay.generate.sampler import sample_completions

    cfg, ev = ctx.config, ctx.config.evolve
    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    seed_pairs = [
        p for p in read_records(ctx.input("selection", PAIRS), Pair) if p.iteration == ctx.iteration
    ]
    parents = choose_parents(prompts, seed_pairs, ev)
    triples = rewrite_requests(
        parents, load_templates(list(ev.strategies), ev.templates_dir), ev, cfg.generate.seed, ctx.iteration
    )
    gen = replace(cfg.generate, max_tokens=ev.max_tokens)
    rewrites, _ = sample_completions(
        ctx.policy,
        [r for _, r, _ in triples],
        gen,
        cfg.model,
        f"evolve_{ctx.iteration:03d}",
        1,
        ctx.iteration,
    )
    new, rows, counts = evolved_prompts(
        triples, {c.prompt_id: c for c in rewrites}, ev, _too_long(ctx), ctx.iteration
    )
    write_records(ctx.out / PROMPTS, new)
    write_jsonl(ctx.out / "rewrites.jsonl", rows)
    return {"parents": len(parents), "rewrites": len(triples), "evolved_prompts": len(new), **dict(counts)}


def run_evolved_selection(ctx: StageContext) -> dict:
    """Pair and select the evolved prompts' responses as their own pool, with `evolve.selection`."""
    from selfplay.selection.select import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input("evolve", PROMPTS), Prompt)
    completions = read_records(ctx.input("evolved_generate", COMPLETIONS), Completion)
    judgments = read_records(ctx.input("evolved_judge", JUDGMENTS), Judgment)
    cands = candidates(completions, judgments, str(cfg.evolve.selection.implicit_reward))
    pairs, stats = pair_and_select(prompts, cands, cfg.evolve.selection, ctx.iteration)
    write_records(ctx.out / PAIRS, pairs)
    return stats


def training_pairs(ctx: StageContext) -> list[Pair]:
    """Kept pairs of this iteration, and of earlier ones with `train.accumulate`."""
    pairs = [p for p in read_records(ctx.input("selection", PAIRS), Pair) if p.kept]
    if ctx.config.evolve.enabled:  # evolve-then-select: the best evolved pairs join the seed pairs
        pairs += [p for p in read_records(ctx.input("evolved_selection", PAIRS), Pair) if p.kept]
    if ctx.config.train.accumulate:
        for t in range(ctx.iteration):
            path = ctx.layout.stage_dir(t, "selection") / PAIRS
            pairs += [p for p in read_records(path, Pair) if p.kept and p.iteration == t]
            if ctx.config.evolve.enabled:
                path = ctx.layout.stage_dir(t, "evolved_selection") / PAIRS
                pairs += [p for p in read_records(path, Pair) if p.kept]
        pairs = list({p.pair_id: p for p in pairs}.values())
    return pairs


def reference_path(ctx: StageContext) -> str:
    return ctx.initial_policy if ctx.config.train.reference == "initial" else ctx.policy


def run_train(ctx: StageContext) -> dict:
    import json

    from datasets import Dataset

    from selfplay.loop.launch import launch_training
    from selfplay.train.data import training_rows

    cfg = ctx.config
    pairs = training_pairs(ctx)
    if not pairs:
        raise SelfplayError(
            f"iteration {ctx.iteration} train: no kept pairs (see the selection stage's counts)"
        )
    sampled = {}
    if cfg.train.reference == "previous":  # pi_t's own samples carry pi_t's log-probs
        files = [ctx.input("generate", COMPLETIONS)]
        if cfg.evolve.enabled:
            files.append(ctx.input("evolved_generate", COMPLETIONS))
        sampled = {
            (c.prompt_id, c.sample_index): c
            for f in files
            for c in read_records(f, Completion)
            if c.iteration == ctx.iteration
        }
    rows, ref_stats = training_rows(
        pairs, sampled, ctx.policy, reference_path(ctx), cfg.train, cfg.model, cfg.logprobs.batch_size
    )
    Dataset.from_list(rows).save_to_disk(str(ctx.out / "data"))
    from selfplay.loop.cluster import local_resources

    res = local_resources(cfg)
    if (
        cfg.train.num_processes > 1
        or cfg.train.deepspeed
        or res.kind != "local"
        or res.isolation == "process"
    ):
        launch_training(ctx)
    else:
        from selfplay.train.trainer import train_policy

        train_policy(ctx.out / "data", ctx.policy, reference_path(ctx), cfg.train, cfg.model, ctx.out)
    stats = json.loads((ctx.out / "train_stats.json").read_text())
    return {
        "pairs": len(pairs),
        "reference": str(cfg.train.reference),
        "loss": str(cfg.train.loss),
        **ref_stats,
        **stats,
    }


def run_evaluate(ctx: StageContext) -> dict:
    from selfplay.generate.sampler import sample_completions
    from selfplay.judge.judging import mean_reward

    cfg = ctx.config
    heldout = read_records(ctx.input("prompts", HELDOUT_PROMPTS), Prompt)
    reward_model = _reward_model(ctx)  # loaded once for both policies
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
        judgments = _judge(ctx, heldout, completions, reward_model)
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

STAGE_ORDER = [
    "prompts",
    "generate",
    "judge",
    "logprobs",
    "selection",
    "evolve",
    "evolved_generate",
    "evolved_judge",
    "evolved_selection",
    "train",
    "evaluate",
]
STAGES: dict[str, StageFn] = {
    "prompts": run_prompts,
    "selection": run_selection,
    "evolve": run_evolve,
    "evolved_selection": run_evolved_selection,
    "train": run_train,
    "evaluate": run_evaluate,
}
"""Unsharded stages; the others are in SHARDED and run through loop/shards.py."""


def stages_for(config: Config) -> list[str]:
    """The stages an iteration runs, in order, for this config."""
    names = list(STAGE_ORDER)
    if config.logprobs.source != "teacher_forcing" and config.selection.implicit_reward != "dpo":
        names.remove("logprobs")
    if not config.evaluate.enabled:
        names.remove("evaluate")
    if not config.evolve.enabled:
        for name in ("evolve", "evolved_generate", "evolved_judge", "evolved_selection"):
            names.remove(name)
    return names
