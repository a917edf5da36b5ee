"""The one table of stages: each stage's name, its work (`run`, or `sharded` over slices of its
prompts; `ranks` for what every training process runs), when a config enables it, what it writes and
its statistics record. Order, sharding, the enabled list, the runner, worker mode and the dry run all
follow from the table; the loop never names a stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from selfplay.config import Config
from selfplay.data.records import Completion, Judgment, Prompt, RowScores, SequenceLogprob
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import (
    COMPLETION_TABLE,
    COMPLETIONS,
    EVALUATED_CARD,
    HELDOUT,
    HELDOUT_PROMPTS,
    JUDGMENTS,
    KEPT_PAIRS,
    LOGPROBS,
    MODEL,
    PAIRS,
    PROMPTS,
    PUSHED,
    REWRITE_SAMPLES,
    REWRITES,
    ROW_SCORES,
    ROWS,
)
from selfplay.rundir.stats import STATS_OF, StageStats
from selfplay.stages.evaluating import evaluate_finish, evaluate_shard, heldout_prompts
from selfplay.stages.judging import judge_shard, judge_stats
from selfplay.stages.pushing import run_push
from selfplay.stages.sampling import (
    evolve_finish,
    evolve_parents,
    evolve_shard,
    evolved_generate_stats,
    generate_shard,
    generate_stats,
    run_prompts,
)
from selfplay.stages.scoring import import_rows, score_shard, score_stats
from selfplay.stages.selecting import (
    logprobs_shard,
    logprobs_stats,
    needs_logprobs_stage,
    run_evolved_selection,
    run_selection,
)
from selfplay.stages.training import import_pairs, prepare_training, train_ranks

StageFn = Callable[[StageContext], StageStats]


@dataclass(frozen=True)
class Sharded:
    """How a sharded stage splits its prompts: each shard runs `core` on a contiguous slice and writes
    its own part; the parts are merged into `output` and `stats` summarise the merged records."""

    output: str
    record: type
    core: Callable[[StageContext, list[Prompt]], list]
    stats: Callable[[StageContext, list[Prompt], Path], StageStats]
    """Summarises the merged records (and may write what is derived from all of them, e.g. evolve's
    filtered prompts); it runs where the stage's parts are merged, after every shard."""
    prompts_from: str = sn.PROMPTS
    """Stage whose prompts.jsonl is sharded: the iteration's prompts, or the evolved ones."""
    items: Callable[[StageContext], list[Prompt]] | None = None
    """What is sharded when it is not a stage's prompts.jsonl (evolve's parents, the held-out prompts)."""

    @property
    def count_known_late(self) -> bool:
        """Whether its item count is only known when it runs (evolved prompts, evolve's parents,
        held-out prompts): a stage with fewer items than shards then runs fewer shards."""
        return self.prompts_from != sn.PROMPTS or self.items is not None


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
    reads_prompt_pool: bool = False
    """Whether it reads the run's prompt pool (the run's start checks the pool's budget and toy parts)."""

    @property
    def declared_outputs(self) -> tuple[str, ...]:
        return (*self.outputs, *((self.sharded.output,) if self.sharded else ()))

    @property
    def resumable(self) -> bool:
        """Whether a killed run keeps the stage's partial folder (finished shards; trainer checkpoints)."""
        return self.sharded is not None or self.ranks is not None

    @property
    def stats(self) -> type[StageStats]:
        """Its statistics record (selfplay/rundir/stats.py)."""
        return STATS_OF[self.name]


def _evolving(cfg: Config) -> bool:
    return cfg.evolve.enabled


TRAIN = Stage(sn.TRAIN, run=prepare_training, ranks=train_ranks, outputs=(f"{MODEL}/config.json",))

STAGES: tuple[Stage, ...] = (
    Stage(sn.PROMPTS, run=run_prompts, outputs=(PROMPTS, HELDOUT_PROMPTS), reads_prompt_pool=True),
    Stage(
        sn.GENERATE, sharded=Sharded(COMPLETIONS, Completion, generate_shard, generate_stats), samples=True
    ),
    Stage(sn.JUDGE, sharded=Sharded(JUDGMENTS, Judgment, judge_shard, judge_stats)),
    Stage(
        sn.LOGPROBS,
        sharded=Sharded(LOGPROBS, SequenceLogprob, logprobs_shard, logprobs_stats),
        enabled=needs_logprobs_stage,
    ),
    Stage(sn.SELECTION, run=run_selection, outputs=(PAIRS, KEPT_PAIRS)),
    Stage(
        sn.EVOLVE,
        sharded=Sharded(REWRITE_SAMPLES, Completion, evolve_shard, evolve_finish, items=evolve_parents),
        enabled=_evolving,
        samples=True,
        outputs=(PROMPTS, REWRITES),
    ),
    Stage(
        sn.EVOLVED_GENERATE,
        sharded=Sharded(
            COMPLETIONS,
            Completion,
            partial(generate_shard, salt="evolved"),
            evolved_generate_stats,
            sn.EVOLVE,
        ),
        enabled=_evolving,
        samples=True,
    ),
    Stage(
        sn.EVOLVED_JUDGE,
        sharded=Sharded(
            JUDGMENTS,
            Judgment,
            partial(judge_shard, completions_from=sn.EVOLVED_GENERATE),
            judge_stats,
            sn.EVOLVE,
        ),
        enabled=_evolving,
    ),
    Stage(sn.EVOLVED_SELECTION, run=run_evolved_selection, enabled=_evolving, outputs=(PAIRS, KEPT_PAIRS)),
    TRAIN,
    Stage(
        sn.EVALUATE,
        sharded=Sharded(HELDOUT, dict, evaluate_shard, evaluate_finish, items=heldout_prompts),
        enabled=lambda cfg: cfg.evaluate.enabled,
        samples=True,
        outputs=(EVALUATED_CARD, COMPLETION_TABLE),
    ),
    Stage(sn.PUSH, run=run_push, enabled=lambda cfg: cfg.hub.push, outputs=(PUSHED,)),
)
"""Every stage of an iteration, in run order."""

STAGE_NAMES = tuple(s.name for s in STAGES)

FILE_STAGES: tuple[Stage, ...] = (Stage(sn.IMPORT, run=import_pairs, outputs=(PAIRS,)), TRAIN)
"""Training on a preference file (`python -m selfplay.train`): its rows become the kept pairs, then the
loop's own train stage."""


SELECT_STAGES: tuple[Stage, ...] = (
    Stage(sn.IMPORT, run=import_rows, outputs=(ROWS, PROMPTS)),
    Stage(
        sn.SCORE,
        sharded=Sharded(ROW_SCORES, RowScores, score_shard, score_stats, sn.IMPORT),
        samples=False,
    ),
)
"""Offline selection's scoring (`python -m selfplay.select` on a dataset that lacks rewards or implicit
rewards): its rows, then what they lack computed in shards on the engine slots of `cluster=`."""


def stage(name: str, table: tuple[Stage, ...] = STAGES) -> Stage:
    for s in table:
        if s.name == name:
            return s
    raise SelfplayError(f"unknown stage '{name}' (stages: {', '.join(s.name for s in table)})")


def stages_for(config: Config, table: tuple[Stage, ...] = STAGES) -> list[str]:
    """The stages an iteration runs, in order, for this config."""
    return [s.name for s in table if s.enabled(config)]
