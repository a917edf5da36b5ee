"""Stage adapters and the one table of stages.

Each adapter reads its inputs from the run directory, calls its package's pure core, writes its
records into `ctx.out` and returns stats. The orchestrator owns markers and renames; the runner owns
where a stage runs (this file never launches anything). `STAGES` lists every stage in run order:
from it follow the order, which stages are sharded and which ones a config enables.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from selfplay.config import Config
from selfplay.data.files import read_records, write_records
from selfplay.data.jsonl import read_jsonl, write_jsonl
from selfplay.data.prompts import iteration_window, load_prompt_pool
from selfplay.data.records import COMPLETION_TEXT, Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.data.trl_format import write_trl_pairs
from selfplay.errors import SelfplayError
from selfplay.loop.context import StageContext
from selfplay.loop.integrity import verify
from selfplay.loop.layout import (
    COMPLETION_TABLE,
    COMPLETIONS,
    EVALUATED_CARD,
    HELDOUT,
    HELDOUT_PROMPTS,
    JUDGMENTS,
    KEPT_PAIRS,
    LIVE_HISTORY,
    LOGPROBS,
    MODEL,
    MODEL_CARD,
    PAIRS,
    PROMPTS,
    PUSHED,
    REWRITE_SAMPLES,
    REWRITES,
    STATS,
    TRAIN_DATA,
    TRAIN_HISTORY,
    TRAINER,
    RunLayout,
)

log = logging.getLogger(__name__)


def run_prompts(ctx: StageContext) -> dict:
    pool = load_prompt_pool(ctx.config.prompts)
    prompts = iteration_window(pool.pool, ctx.iteration, ctx.config.prompts.per_iteration)
    write_records(ctx.out / PROMPTS, prompts)
    write_records(ctx.out / HELDOUT_PROMPTS, pool.heldout)  # read by evaluate: the pool is loaded once
    return {
        "prompts": len(prompts),
        "pool": len(pool.pool),
        "duplicates_dropped": pool.duplicates_dropped,
        "heldout_overlap_removed": pool.heldout_overlap,
    }


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


def generate_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> dict:
    from selfplay.generate.requests import completion_stats
    from selfplay.generate.sample import resolve_backend

    completions = read_records(output, Completion, columns=COMPLETION_TEXT)
    answered = {c.prompt_id for c in completions}
    return {
        "backend": resolve_backend(ctx.config.generate),
        "prompts_too_long": sum(p.prompt_id not in answered for p in prompts),
        **completion_stats(completions),
    }


def _completions_of(
    ctx: StageContext, prompts: list[Prompt], stage: str = "generate", tokens: bool = False
) -> list[Completion]:
    """The completions of these prompts only (a shard reads its own rows), with or without the
    per-token arrays."""
    where = ("prompt_id", [p.prompt_id for p in prompts])
    columns = None if tokens else COMPLETION_TEXT
    return read_records(ctx.input(stage, COMPLETIONS), Completion, columns, where)


def judge_shard(
    ctx: StageContext, prompts: list[Prompt], completions_from: str = "generate"
) -> list[Judgment]:
    from selfplay.judge.judging import load_judge

    with load_judge(ctx.config.judge, runtime=judge_runtime(ctx)) as judge:
        return judge(prompts, _completions_of(ctx, prompts, completions_from), ctx.label)


def judge_runtime(ctx: StageContext):
    """What a judge may use of this run: the iteration's policy, the generation and model settings."""
    from selfplay.judge.kinds import JudgeRuntime

    return JudgeRuntime(ctx.policy, ctx.config.generate, ctx.config.model)


def judge_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> dict:
    from selfplay.judge.judging import judgment_stats

    return judgment_stats(read_records(output, Judgment))


def logprobs_shard(ctx: StageContext, prompts: list[Prompt]) -> list[SequenceLogprob]:
    from selfplay.logprobs.responses import teacher_forced_logprobs

    completions = _completions_of(ctx, prompts, tokens=True)
    reference = ctx.initial_policy if ctx.config.selection.implicit_reward == "dpo" else None
    return teacher_forced_logprobs(
        ctx.policy, prompts, completions, ctx.config.logprobs, ctx.config.model, reference, ctx.label
    )


def logprobs_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> dict:
    records = read_records(output, SequenceLogprob)
    stats = {"sequences": len(records), "tokens": sum(r.num_tokens for r in records)}
    if ctx.config.selection.implicit_reward == "dpo":
        # pi_t == pi_0 in iteration 0: the dpo implicit reward is then 0 for every response.
        stats["dpo_implicit_all_zero"] = all(r.logprob_sum == r.reference_logprob_sum for r in records)
    return stats


def run_selection(ctx: StageContext) -> dict:
    from selfplay.selection.pipeline import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    completions = read_records(ctx.input("generate", COMPLETIONS), Completion, COMPLETION_TEXT)
    judgments = read_records(ctx.input("judge", JUDGMENTS), Judgment)
    logprobs: dict | None = None
    if needs_logprobs_stage(cfg):
        records = read_records(ctx.input("logprobs", LOGPROBS), SequenceLogprob)
        logprobs = {(r.prompt_id, r.sample_index): r for r in records}
    cands = candidates(completions, judgments, str(cfg.selection.implicit_reward), logprobs)
    earlier: list[Pair] = []
    if cfg.selection.pool == "all":  # each file holds its iteration's own pairs and earlier ones
        earlier = ctx.earlier(("selection",), PAIRS, Pair, lambda p, t: p.iteration == t)
    pool, stats = pair_and_select(prompts, cands, cfg.selection, ctx.iteration, earlier)
    if not len(pool):
        raise SelfplayError(f"{ctx.label}: no pairs to select from ({no_pairs_reason(stats)})")
    write_jsonl(ctx.out / PAIRS, pool.rows())
    write_trl_pairs(ctx.out / KEPT_PAIRS, pool.kept_pairs())
    return stats


def no_pairs_reason(stats: dict) -> str:
    """Why a pool is empty, from the pairing counts (e.g. a judge that gives every response the same
    reward ties every prompt)."""
    n = stats.get("prompts", 0)
    if n and stats.get("tied", 0) == n:
        return f"all {n} prompts' responses tie in reward: does the judge give every response the same value?"
    counts = {
        k: stats[k] for k in ("tied", "identical", "too_few_responses", "nonfinite_responses") if stats.get(k)
    }
    return f"{n} prompts; dropped: {counts or 'nothing'}"


def evolve_parents(ctx: StageContext) -> list[Prompt]:
    """What evolve shards: the prompts it rewrites (all of the iteration's, or its top pairs')."""
    from selfplay.evolve.rewrite import choose_parents

    prompts = read_records(ctx.input("prompts", PROMPTS), Prompt)
    pairs = [p for p in read_records(ctx.input("selection", PAIRS), Pair) if p.iteration == ctx.iteration]
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


def evolve_finish(ctx: StageContext, parents: list[Prompt], output: Path) -> dict:
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
    return {"parents": len(parents), "rewrites": len(triples), "evolved_prompts": len(new), **dict(counts)}


def run_evolved_selection(ctx: StageContext) -> dict:
    """Pair and select the evolved prompts' responses as their own pool, with `evolve.selection`."""
    from selfplay.selection.pipeline import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input("evolve", PROMPTS), Prompt)
    completions = read_records(ctx.input("evolved_generate", COMPLETIONS), Completion, COMPLETION_TEXT)
    judgments = read_records(ctx.input("evolved_judge", JUDGMENTS), Judgment)
    cands = candidates(completions, judgments, str(cfg.evolve.selection.implicit_reward))
    pool, stats = pair_and_select(prompts, cands, cfg.evolve.selection, ctx.iteration)
    write_jsonl(ctx.out / PAIRS, pool.rows())
    write_trl_pairs(ctx.out / KEPT_PAIRS, pool.kept_pairs())
    return stats


PAIR_SOURCES = ("selection", "evolved_selection", "import")
"""The stages whose kept pairs an iteration trains on (those of them that ran)."""


def training_pairs(ctx: StageContext) -> list[Pair]:
    """Kept pairs of this iteration, and of earlier ones with `train.accumulate`."""
    sources = tuple(s for s in PAIR_SOURCES if ctx.layout.marker(ctx.iteration, s).is_file())
    pairs = [p for s in sources for p in read_records(ctx.input(s, PAIRS), Pair) if p.kept]
    if ctx.config.train.accumulate:
        pairs += ctx.earlier(sources, PAIRS, Pair, lambda p, t: p.kept and p.iteration == t)
        pairs = list({p.pair_id: p for p in pairs}.values())
    return pairs


def prepare_training(ctx: StageContext) -> dict:
    """The training rows, tokenised (the sampled ids of every sampled response; sampled log-probs as
    DPO reference log-probs where exact), as a file-backed dataset every training process reads."""
    import torch
    from datasets import Dataset

    from selfplay.models.loading import default_device, load_tokenizer, torch_dtype
    from selfplay.training.data import sampled_key, training_rows
    from selfplay.training.losses import loss_spec
    from selfplay.training.schedule import check_schedule, planned_schedule

    cfg = ctx.config
    pairs = training_pairs(ctx)
    if not pairs:
        raise SelfplayError(
            f"iteration {ctx.iteration} train: no kept pairs (see the selection stage's counts)"
        )
    wanted = ("generate", "evolved_generate") if cfg.evolve.enabled else ("generate",)
    sources = tuple(s for s in wanted if ctx.input(s, COMPLETIONS).is_file())  # none when training on a file
    where = ("prompt_id", {p.prompt_id for p in pairs})  # only the kept pairs' rows, with their tokens
    completions = [
        c for s in sources for c in read_records(ctx.input(s, COMPLETIONS), Completion, where=where)
    ]
    if cfg.train.accumulate:
        completions += ctx.earlier(sources, COMPLETIONS, Completion, where=where)
    sampled = {sampled_key(c): c for c in completions}
    exact = torch_dtype(str(cfg.model.dtype), default_device()) == torch.float32
    raw = cfg.generate.logprobs_mode == "raw"  # processed log-probs are not the model's: never a reference
    reuse = ctx.reference if exact and raw and loss_spec(cfg.train).reference else None
    tokenizer = load_tokenizer(ctx.policy, cfg.model.trust_remote_code, chat_template=cfg.model.chat_template)
    rows, row_stats = training_rows(pairs, sampled, tokenizer, cfg.train, reuse)
    if not rows:
        raise SelfplayError(
            f"iteration {ctx.iteration} train: every kept pair's prompt fills train.max_length={cfg.train.max_length}"
        )
    world = ctx.train_world_size  # the schedule the training processes will run, checked before they start
    warning = check_schedule(
        planned_schedule(len(rows), cfg.train, world), cfg.train, f"iteration {ctx.iteration} train"
    )
    if warning:
        log.warning(warning)
    shutil.rmtree(ctx.out / TRAIN_DATA, ignore_errors=True)  # a rerun after a kill keeps the checkpoints only
    Dataset.from_list(rows).save_to_disk(str(ctx.out / TRAIN_DATA))
    return {
        "pairs": len(pairs),
        "reference": str(cfg.train.reference),
        "loss": str(cfg.train.loss),
        **row_stats,
    }


def train_ranks(ctx: StageContext) -> dict:
    """What every training process runs (one process, or each rank process): train on the prepared
    rows and save the next policy (with its model card); returns the trainer's stats."""
    import os

    from selfplay.loop.tracking import follow_training
    from selfplay.training.trainer import train_policy

    cfg = ctx.config
    stats = train_policy(
        ctx.out / TRAIN_DATA,
        ctx.policy,
        ctx.reference,
        cfg.train,
        cfg.model,
        ctx.out / TRAINER,
        ctx.out / MODEL,
        ctx.label,
        ctx.out / TRAIN_HISTORY,
        RunLayout.rendezvous_file(ctx.out),
        cfg.cluster.rendezvous_timeout,
        ctx.out / LIVE_HISTORY,
        partial(follow_training, ctx.iteration, ctx.out / LIVE_HISTORY),  # in this process: to its tracker
    )
    if int(os.environ.get("RANK", "0")) == 0:
        write_card(ctx, ctx.out / MODEL / MODEL_CARD, stats)
    return stats


def write_card(ctx: StageContext, path: Path, train: dict, evaluation: dict | None = None) -> None:
    """The policy's model card, written atomically by the stage that owns `path`'s folder: train into
    its model folder; evaluate, with the held-out results, into its own (the push stage uploads it)."""
    import os

    from selfplay.loop.markers import read_marker
    from selfplay.training.card import model_card

    selection = (read_marker(ctx.layout.marker(ctx.iteration, "selection")) or {}).get("stats", {})
    text = model_card(ctx.config, ctx.iteration, ctx.policy, train, selection, evaluation)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def evaluation_judge(cfg: Config):
    """The judge of held-out evaluation: evaluate.judge when it names a kind, else the selection judge."""
    return cfg.judge if cfg.evaluate.judge.kind is None else cfg.evaluate.judge


def heldout_prompts(ctx: StageContext) -> list[Prompt]:
    """What evaluate shards: the held-out prompts the prompts stage wrote."""
    return read_records(ctx.input("prompts", HELDOUT_PROMPTS), Prompt)


def _evaluated_policies(ctx: StageContext) -> dict[str, str]:
    """pi_{t+1} ("after"), and pi_0 ("before") in iteration 0: later iterations reuse pi_0's and pi_t's
    held-out samples from earlier evaluations (the same seeds, not regenerated)."""
    after = {"after": str(ctx.layout.policy_dir(ctx.iteration))}
    return {"before": ctx.initial_policy, **after} if ctx.iteration == 0 else after


def evaluate_shard(ctx: StageContext, heldout: list[Prompt]) -> list[dict]:
    """Sample and judge these held-out prompts with each evaluated policy: one row per sample."""
    from selfplay.evaluate.heldout import evaluate_policies
    from selfplay.generate.engine_pool import POOL
    from selfplay.judge.judging import load_judge

    cfg = ctx.config
    key = "judge" if cfg.evaluate.judge.kind is None else "evaluate.judge"
    _, rows = evaluate_policies(
        _evaluated_policies(ctx),
        heldout,
        cfg.generate,
        cfg.model,
        cfg.evaluate.num_samples,
        ctx.iteration,
        lambda: load_judge(evaluation_judge(cfg), key, judge_runtime(ctx)),  # loaded once sampling is over...
        ctx.label,
        POOL.release_memory,  # ...and the engine asleep (GPUs): the judge never shares with it
    )
    return rows


def evaluate_finish(ctx: StageContext, heldout: list[Prompt], output: Path) -> dict:
    """Over every shard's rows (put back in the unsharded order: policy, prompt, sample): each policy's
    summary and the win rates vs pi_0 and vs pi_t; the model card with the held-out results."""
    from selfplay.evaluate.heldout import completion_table, summary, win_rate
    from selfplay.judge.judging import judge_name
    from selfplay.loop.markers import read_marker

    cfg, t = ctx.config, ctx.iteration
    names = list(_evaluated_policies(ctx))
    position = {p.prompt_id: i for i, p in enumerate(heldout)}
    rows = sorted(
        read_jsonl(output),
        key=lambda r: (names.index(r["policy"]), position[r["prompt_id"]], r["sample_index"]),
    )
    write_jsonl(output, rows)
    stats: dict = {"heldout_prompts": len(heldout), "heldout_judge": judge_name(evaluation_judge(cfg))}
    for name in names:
        stats.update(summary([r for r in rows if r["policy"] == name], name))
    after = [r for r in rows if r["policy"] == "after"]
    if t == 0:
        initial = previous = [r for r in rows if r["policy"] == "before"]
    else:
        first, last = (
            ctx.layout.stage_dir(0, "evaluate") / HELDOUT,
            ctx.layout.stage_dir(t - 1, "evaluate") / HELDOUT,
        )
        verify(ctx.layout, first)
        verify(ctx.layout, last)
        initial = [r for r in read_jsonl(first) if r["policy"] == "before"]
        previous = [r for r in read_jsonl(last) if r["policy"] == "after"]
    stats["win_rate_vs_initial"] = win_rate(after, initial)
    stats["win_rate_vs_previous"] = win_rate(after, previous)
    write_jsonl(
        ctx.out / COMPLETION_TABLE, completion_table(heldout, initial, after, cfg.evaluate.completions)
    )
    train = (read_marker(ctx.layout.marker(t, "train")) or {}).get("stats", {})
    write_card(ctx, ctx.out / EVALUATED_CARD, train, stats)  # the train stage's card + held-out results
    return stats


def push_plan(ctx: StageContext):
    """The push stage's uploads (selfplay/reporting/hub_layout.py): this iteration's policy with the card
    that has its held-out results, and the kept pairs of every finished iteration so far, staged under
    the stage's folder."""
    from selfplay.loop.markers import read_marker
    from selfplay.reporting.export import dataset_card
    from selfplay.reporting.hub_layout import push_plan as plan
    from selfplay.training.card import model_card

    t, layout, cfg = ctx.iteration, ctx.layout, ctx.config
    found = layout.kept_pair_splits(t)
    train = (read_marker(layout.marker(t, "train")) or {}).get("stats", {})
    evaluation = (read_marker(layout.marker(t, "evaluate")) or {}).get("stats")
    selection = (read_marker(layout.marker(t, "selection")) or {}).get("stats", {})
    card = model_card(cfg, t, ctx.policy, train, selection, evaluation)
    import dataclasses

    config = dataclasses.asdict(cfg)
    pairs_card = str(
        dataset_card(
            config,
            {name: stats for name, (_, stats) in found.items()},
            layout.root,
            data_path="data/{split}.parquet",
            license=cfg.hub.license,
        )
    )
    splits = {name: path for name, (path, _) in found.items()}
    return plan(cfg.hub, t, layout.policy_dir(t), card, splits, pairs_card, ctx.out / "staged")


def run_push(ctx: StageContext) -> dict:
    import json

    from selfplay.models import hub

    cfg = ctx.config
    uploads = push_plan(ctx)
    lines = [u.describe(cfg.hub.private) for u in uploads]
    (ctx.out / PUSHED).write_text(
        json.dumps(
            [
                {"repo_id": u.repo_id, "repo_type": u.repo_type, "revision": u.revision,
                 "branch_after": u.branch_after, "files": u.files()}
                for u in uploads
            ],
            indent=1,
        )
    )  # fmt: skip
    for line in lines:
        log.info("hub%s: %s", " (dry run: nothing uploaded)" if cfg.hub.dry_run else "", line)
    if not cfg.hub.dry_run:
        hub.push(uploads, cfg.hub.private)
    return {
        "repo_id": cfg.hub.repo_id,
        "dry_run": cfg.hub.dry_run,
        "uploads": len(uploads),
        "files": sum(len(u.files()) for u in uploads),
    }


def import_pairs(ctx: StageContext) -> dict:
    """`python -m selfplay.train input=<file>`: the file's preference rows as this run's kept pairs (the
    system prompt of `prompts.system_prompt` added, as the loop adds it), for the train stage."""
    from selfplay.data.preferences import file_pairs

    cfg = ctx.config
    pairs, stats = file_pairs(
        getattr(cfg, "input", None),
        getattr(cfg, "split", "train"),
        getattr(cfg, "pairs", None),
        cfg.prompts.system_prompt,
    )
    write_records(ctx.out / PAIRS, pairs)
    return stats


# The table of stages.

StageFn = Callable[[StageContext], dict]


@dataclass(frozen=True)
class Sharded:
    """How a sharded stage splits its prompts: each shard runs `core` on a contiguous slice and writes
    its own part; the parts are merged into `output` and `stats` summarise the merged records."""

    output: str
    record: type
    core: Callable[[StageContext, list[Prompt]], list]
    stats: Callable[[StageContext, list[Prompt], Path], dict]
    """Summarises the merged records (and may write what is derived from all of them, e.g. evolve's
    filtered prompts); it runs where the stage's parts are merged, after every shard."""
    prompts_from: str = "prompts"
    """Stage whose prompts.jsonl is sharded: the iteration's prompts, or the evolved ones."""
    items: Callable[[StageContext], list[Prompt]] | None = None
    """What is sharded when it is not a stage's prompts.jsonl (evolve's parents, the held-out prompts);
    a stage with fewer items than shards runs fewer shards."""


@dataclass(frozen=True)
class Stage:
    """One stage of an iteration. Exactly one of `run` / `sharded` describes its work; `ranks` (train)
    is the part every training process runs after `run` has prepared its data."""

    name: str
    run: StageFn | None = None
    sharded: Sharded | None = None
    ranks: StageFn | None = None
    enabled: Callable[[Config], bool] = lambda cfg: True
    samples: bool = False
    """Whether it samples from the policy with the generation engine (a persistent engine stays awake for
    it; before any other stage it sleeps on GPUs, so the memory is free)."""
    outputs: tuple[str, ...] = ()
    """What the next stages read from its folder (besides a sharded stage's output): checked to exist
    before a resume trusts the stage's marker."""

    @property
    def declared_outputs(self) -> tuple[str, ...]:
        return (*self.outputs, *((self.sharded.output,) if self.sharded else ()))

    @property
    def resumable(self) -> bool:
        """Whether a killed run keeps the stage's partial folder (finished shards; trainer checkpoints)."""
        return self.sharded is not None or self.ranks is not None


def needs_logprobs_stage(cfg: Config) -> bool:
    return cfg.logprobs.source == "teacher_forcing" or cfg.selection.implicit_reward == "dpo"


def _evolving(cfg: Config) -> bool:
    return cfg.evolve.enabled


STAGES: tuple[Stage, ...] = (
    Stage("prompts", run=run_prompts, outputs=(PROMPTS, HELDOUT_PROMPTS)),
    Stage("generate", sharded=Sharded(COMPLETIONS, Completion, generate_shard, generate_stats), samples=True),
    Stage("judge", sharded=Sharded(JUDGMENTS, Judgment, judge_shard, judge_stats)),
    Stage(
        "logprobs",
        sharded=Sharded(LOGPROBS, SequenceLogprob, logprobs_shard, logprobs_stats),
        enabled=needs_logprobs_stage,
    ),
    Stage("selection", run=run_selection, outputs=(PAIRS, KEPT_PAIRS)),
    Stage(
        "evolve",
        sharded=Sharded(REWRITE_SAMPLES, Completion, evolve_shard, evolve_finish, items=evolve_parents),
        enabled=_evolving,
        samples=True,
        outputs=(PROMPTS, REWRITES),
    ),
    Stage(
        "evolved_generate",
        sharded=Sharded(
            COMPLETIONS, Completion, partial(generate_shard, salt="evolved"), generate_stats, "evolve"
        ),
        enabled=_evolving,
        samples=True,
    ),
    Stage(
        "evolved_judge",
        sharded=Sharded(
            JUDGMENTS,
            Judgment,
            partial(judge_shard, completions_from="evolved_generate"),
            judge_stats,
            "evolve",
        ),
        enabled=_evolving,
    ),
    Stage("evolved_selection", run=run_evolved_selection, enabled=_evolving, outputs=(PAIRS, KEPT_PAIRS)),
    Stage("train", run=prepare_training, ranks=train_ranks, outputs=(f"{MODEL}/config.json",)),
    Stage(
        "evaluate",
        sharded=Sharded(HELDOUT, dict, evaluate_shard, evaluate_finish, items=heldout_prompts),
        enabled=lambda cfg: cfg.evaluate.enabled,
        samples=True,
        outputs=(EVALUATED_CARD, COMPLETION_TABLE),
    ),
    Stage("push", run=run_push, enabled=lambda cfg: cfg.hub.push, outputs=(PUSHED,)),
)
"""Every stage, in run order."""

STAGE_NAMES = tuple(s.name for s in STAGES)

FILE_STAGES: tuple[Stage, ...] = (
    Stage("import", run=import_pairs, outputs=(PAIRS,)),
    Stage("train", run=prepare_training, ranks=train_ranks, outputs=(f"{MODEL}/config.json",)),
)
"""Training on a preference file (`python -m selfplay.train`): its rows become the kept pairs, then the
loop's own train stage."""


def stage(name: str, table: tuple[Stage, ...] = STAGES) -> Stage:
    for s in table:
        if s.name == name:
            return s
    raise SelfplayError(f"unknown stage '{name}' (stages: {', '.join(s.name for s in table)})")


def stages_for(config: Config, table: tuple[Stage, ...] = STAGES) -> list[str]:
    """The stages an iteration runs, in order, for this config."""
    return [s.name for s in table if s.enabled(config)]


__all__ = ["STATS", "STAGES", "Stage", "Sharded", "stage", "stages_for", "StageContext"]
