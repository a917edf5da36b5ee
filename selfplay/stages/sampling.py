"""Sampling stages: the iteration's prompts, the policy's responses (generate, evolved_generate) and
its rewrites of prompts (evolve)."""

from __future__ import annotations

from pathlib import Path

from selfplay.data.files import read_records, write_records
from selfplay.data.jsonl import write_jsonl
from selfplay.data.prompts import iteration_window, load_prompt_pool
from selfplay.data.records import COMPLETION_TEXT, Completion, Pair, Prompt
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import COMPLETIONS, HELDOUT_PROMPTS, PAIRS, PROMPTS, REWRITES
from selfplay.rundir.stats import EvolvedGenerateStats, EvolveStats, GenerateStats, PromptsStats


def run_prompts(ctx: StageContext) -> PromptsStats:
    pool = load_prompt_pool(ctx.config.prompts)
    prompts = iteration_window(pool.pool, ctx.iteration, ctx.config.prompts.per_iteration)
    write_records(ctx.out / PROMPTS, prompts)
    write_records(ctx.out / HELDOUT_PROMPTS, pool.heldout)  # read by evaluate: the pool is loaded once
    return PromptsStats(
        prompts=len(prompts),
        pool=len(pool.pool),
        duplicates_dropped=pool.duplicates_dropped,
        heldout_overlap_removed=pool.heldout_overlap,
    )


# Sharded stages: a core over a slice of the iteration's prompts, and stats over the merged records
# (read from the stage's output file: a stats function reads only the columns it needs).


def generate_shard(ctx: StageContext, prompts: list[Prompt], salt: str = "iter") -> list[Completion]:
    from selfplay.generate.sample import sample_completions

    gen = ctx.config.generate
    salt = f"{salt}_{ctx.iteration:03d}"
    completions, _ = sample_completions(
        ctx.policy, prompts, gen, ctx.config.model, salt, gen.num_samples, ctx.iteration, ctx.label
    )
    return completions


def generate_stats(
    ctx: StageContext, prompts: list[Prompt], output: Path, record: type[GenerateStats] = GenerateStats
) -> GenerateStats:
    from selfplay.generate.requests import completion_stats
    from selfplay.generate.sample import resolve_backend

    completions = read_records(output, Completion, columns=COMPLETION_TEXT)
    answered = {c.prompt_id for c in completions}
    return record(
        backend=resolve_backend(ctx.config.generate),
        prompts_too_long=sum(p.prompt_id not in answered for p in prompts),
        **completion_stats(completions),
    )


def evolved_generate_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> GenerateStats:
    return generate_stats(ctx, prompts, output, EvolvedGenerateStats)


def completions_of(
    ctx: StageContext, prompts: list[Prompt], stage: str = sn.GENERATE, tokens: bool = False
) -> list[Completion]:
    """The completions of these prompts only (a shard reads its own rows), with or without the
    per-token arrays."""
    where = ("prompt_id", [p.prompt_id for p in prompts])
    columns = None if tokens else COMPLETION_TEXT
    return read_records(ctx.input(stage, COMPLETIONS), Completion, columns, where)


def evolve_parents(ctx: StageContext) -> list[Prompt]:
    """What evolve shards: the prompts it rewrites (all of the iteration's, or its top pairs')."""
    from selfplay.evolve.rewrite import choose_parents

    prompts = read_records(ctx.input(sn.PROMPTS, PROMPTS), Prompt)
    pairs = [p for p in read_records(ctx.input(sn.SELECTION, PAIRS), Pair) if p.iteration == ctx.iteration]
    return choose_parents(prompts, pairs, ctx.config.evolve)


def _rewrite_requests(ctx: StageContext, parents: list[Prompt]):
    from selfplay.evolve.rewrite import rewrite_requests
    from selfplay.evolve.templates import load_templates

    ev = ctx.config.evolve
    templates = load_templates(list(ev.strategies), ev.templates_dir)
    return rewrite_requests(parents, templates, ev, ctx.config.generate.seed, ctx.iteration)


def evolve_shard(ctx: StageContext, parents: list[Prompt]) -> list[Completion]:
    """The policy's rewrites of these parents (one sample per strategy drawn, seeded per request)."""
    from dataclasses import replace

    from selfplay.generate.sample import sample_completions

    cfg = ctx.config
    gen = replace(cfg.generate, max_tokens=cfg.evolve.max_tokens or cfg.generate.max_tokens)
    requests = [r for _, r, _ in _rewrite_requests(ctx, parents)]
    rewrites, _ = sample_completions(
        ctx.policy,
        requests,
        gen,
        cfg.model,
        f"evolve_{ctx.iteration:03d}",
        1,
        ctx.iteration,
        f"{ctx.label} (rewrites)",
    )
    return rewrites


def evolve_finish(ctx: StageContext, parents: list[Prompt], output: Path) -> EvolveStats:
    """Over every shard's rewrites: clean and filter them into the evolved prompts."""
    from selfplay.evolve.length_guard import prompt_length_guard
    from selfplay.evolve.rewrite import evolved_prompts

    cfg = ctx.config
    triples = _rewrite_requests(ctx, parents)
    rewrites = {c.prompt_id: c for c in read_records(output, Completion, COMPLETION_TEXT)}
    too_long = prompt_length_guard(ctx.policy, cfg.model, cfg.generate, cfg.judge)
    new, rows, counts = evolved_prompts(triples, rewrites, cfg.evolve, too_long, ctx.iteration)
    write_records(ctx.out / PROMPTS, new)
    write_jsonl(ctx.out / REWRITES, rows)
    return EvolveStats(parents=len(parents), rewrites=len(triples), evolved_prompts=len(new), **dict(counts))
