"""Sharded stages: split the stage's prompts into N contiguous shards, run the missing ones (in this
process, or as shard processes, one per engine slot at a time), then merge the parts in order.

Each part is written atomically inside the stage's partial folder, so a killed or failed stage keeps
its finished shards and a rerun redoes only the missing ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from selfplay.data.files import concat_files, read_records, write_records
from selfplay.data.jsonl import write_jsonl
from selfplay.data.records import Prompt
from selfplay.errors import SelfplayError
from selfplay.loop.launch import Watched, reason, stop
from selfplay.loop.placement import Placement
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import PROMPTS, RunLayout
from selfplay.rundir.stats import StageStats
from selfplay.stages.table import Sharded

log = logging.getLogger(__name__)


def shard_slice(prompts: list[Prompt], shard: int, shards: int) -> list[Prompt]:
    """The shard-th of `shards` contiguous, near-equal slices (order kept, so parts concatenate)."""
    base, extra = divmod(len(prompts), shards)
    start = shard * base + min(shard, extra)
    return prompts[start : start + base + (shard < extra)]


def stage_prompts(ctx: StageContext, spec: Sharded) -> list[Prompt]:
    """The prompt set a sharded stage splits: its own items, or a stage's prompts (the iteration's, or
    the evolved ones)."""
    if spec.items is not None:
        return spec.items(ctx)
    return read_records(ctx.input(spec.prompts_from, PROMPTS), Prompt)


def run_shard(ctx: StageContext, spec: Sharded, shard: int, shards: int) -> Path:
    """Run one shard's core and write its part (the unit a shard worker process runs)."""
    prompts = stage_prompts(ctx, spec)
    records = spec.core(ctx, shard_slice(prompts, shard, shards))
    path = part_file(ctx, spec, shard, shards)
    if spec.record is dict:  # plain rows (evaluate's)
        write_jsonl(path, records)
    else:
        write_records(path, records, spec.record)
    return path


def clipped_shards(ctx: StageContext, spec: Sharded, shards: int, items: int) -> int:
    """Shards of a stage whose item count is only known when it runs (evolved prompts, evolve's
    parents, held-out prompts): at most one per item."""
    return max(1, min(shards, items))


def part_file(ctx: StageContext, spec: Sharded, shard: int, shards: int) -> Path:
    return RunLayout.part_file(ctx.out, shard, shards, Path(spec.output).suffix)


def run_sharded_stage(
    ctx: StageContext,
    name: str,
    spec: Sharded,
    where: Placement,
    start_workers: Callable[[list[int], int], None],
) -> StageStats:
    """Run the missing shards (here, or through `start_workers(shard_ids, shards)`), then merge all
    parts into the stage's output file."""
    prompts = stage_prompts(ctx, spec)
    shards = where.shards
    if spec.count_known_late:
        shards = clipped_shards(ctx, spec, shards, len(prompts))
    if shards < 1 or shards > max(1, len(prompts)):
        raise SelfplayError(
            f"loop.shards={shards} must be between 1 and the iteration's {len(prompts)} prompts"
        )
    missing = [i for i in range(shards) if not part_file(ctx, spec, i, shards).exists()]
    if len(missing) < shards:
        log.info(
            "iteration %d %s: %d of %d shards already done",
            ctx.iteration,
            name,
            shards - len(missing),
            shards,
        )
    if where.workers > 0 and missing:
        start_workers(missing, shards)
    else:
        for i in missing:
            run_shard(ctx, spec, i, shards)
    parts = [part_file(ctx, spec, i, shards) for i in range(shards)]
    concat_files(parts, ctx.out / spec.output)  # in order, without parsing
    for part in RunLayout.part_files(ctx.out):
        part.unlink()
    return spec.stats(ctx, prompts, ctx.out / spec.output)


def part_done(folder: Path, shard: int, shards: int) -> bool:
    return any(RunLayout.part_file(folder, shard, shards, s).exists() for s in (".jsonl", ".parquet"))


def run_worker_pool(
    ctx: StageContext,
    name: str,
    shard_ids: list[int],
    shards: int,
    where: Placement,
    start: Callable[[int, int], Watched],
) -> None:
    """Run shard processes, one per slot at a time; `start(shard, slot)` starts one, watched. Fails
    naming each failed shard, its exit code (or why it was killed) and its log."""
    queue: list[int] = list(shard_ids)
    running: dict[int, tuple[int, int, Watched]] = {}
    failed: list[str] = []
    free = list(range(where.workers))
    try:
        while queue or running:
            while queue and free:
                shard, slot = queue.pop(0), free.pop(0)
                w = start(shard, slot)
                running[w.proc.pid] = (shard, slot, w)
                log.info(
                    "iteration %d %s: shard %d/%d started (pid %d, log %s)",
                    ctx.iteration,
                    name,
                    shard,
                    shards,
                    w.proc.pid,
                    w.log_path,
                )
            time.sleep(0.2)
            for pid, (shard, slot, w) in list(running.items()):
                killed = w.check() if w.poll() is None else None
                if w.poll() is None:
                    continue
                running.pop(pid)
                free.append(slot)
                if killed is not None:
                    failed.append(f"shard {shard}/{shards} killed: {killed} (log {w.log_path})")
                elif w.proc.returncode != 0 or not part_done(ctx.out, shard, shards):
                    why = reason(RunLayout.error_file(ctx.out, shard))
                    failed.append(f"shard {shard}/{shards} (exit {w.proc.returncode}{why}; log {w.log_path})")
    finally:
        for _, _, w in running.values():  # Ctrl-C, SIGTERM, an error: the running shards end too
            stop(w.proc)
    if failed:
        raise SelfplayError(
            f"iteration {ctx.iteration} {name}: {len(failed)} shard(s) failed: {'; '.join(failed)}. "
            "Finished shards are kept; rerun the same command to redo only the missing ones"
        )
