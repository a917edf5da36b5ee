"""Sharded stages: split the iteration's prompts into N contiguous shards, run the missing ones (in
this process, or as up to `loop.shard_workers` processes at a time), then merge the parts in order.

Each part is written atomically as `part-<i>-of-<N>.jsonl` inside the stage's partial folder, so a
killed or failed stage keeps its finished shards and a rerun redoes only the missing ones.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from selfplay.data.jsonl import read_records, write_records
from selfplay.data.records import Prompt
from selfplay.errors import SelfplayError
from selfplay.loop.stages import PROMPTS, SHARDED, StageContext

log = logging.getLogger(__name__)


def part_path(folder: Path, shard: int, shards: int) -> Path:
    return folder / f"part-{shard:05d}-of-{shards:05d}.jsonl"


def shard_slice(prompts: list[Prompt], shard: int, shards: int) -> list[Prompt]:
    """The shard-th of `shards` contiguous, near-equal slices (order kept, so parts concatenate)."""
    base, extra = divmod(len(prompts), shards)
    start = shard * base + min(shard, extra)
    return prompts[start : start + base + (shard < extra)]


def iteration_prompts(ctx: StageContext, stage: str) -> list[Prompt]:
    """The prompt set a sharded stage splits: the iteration's, or the evolved ones."""
    return read_records(ctx.input(SHARDED[stage].prompts_from, PROMPTS), Prompt)


def run_shard(ctx: StageContext, stage: str, shard: int, shards: int) -> Path:
    """Run one shard's core and write its part (the unit a shard worker process runs)."""
    prompts = iteration_prompts(ctx, stage)
    records = SHARDED[stage].run_shard(ctx, shard_slice(prompts, shard, shards))
    path = part_path(ctx.out, shard, shards)
    write_records(path, records)
    return path


def run_sharded_stage(ctx: StageContext, stage: str) -> dict:
    """Run the missing shards, then merge all parts into the stage's output file."""
    from selfplay.loop.cluster import effective_shards, local_resources, shard_workers

    prompts = iteration_prompts(ctx, stage)
    res = local_resources(ctx.config)
    shards, workers = effective_shards(ctx.config, res), shard_workers(ctx.config, res)
    if SHARDED[stage].prompts_from == "evolve":
        shards = max(1, min(shards, len(prompts)))  # how many rewrites survive is only known now
    if shards < 1 or shards > max(1, len(prompts)):
        raise SelfplayError(
            f"loop.shards={shards} must be between 1 and the iteration's {len(prompts)} prompts"
        )
    missing = [i for i in range(shards) if not part_path(ctx.out, i, shards).exists()]
    if len(missing) < shards:
        log.info(
            "iteration %d %s: %d of %d shards already done",
            ctx.iteration,
            stage,
            shards - len(missing),
            shards,
        )
    if workers > 0 and missing:
        if ctx.relaunch is None:
            raise SelfplayError("shard worker processes need the run's command line (run via selfplay.run)")
        launch_workers(ctx, stage, missing, shards, res.slots[:workers])
    else:
        for i in missing:
            run_shard(ctx, stage, i, shards)
    spec = SHARDED[stage]
    records: list = []
    for i in range(shards):
        records += read_records(part_path(ctx.out, i, shards), spec.record)
    write_records(ctx.out / spec.output, records)
    for part in ctx.out.glob("part-*.jsonl"):
        part.unlink()
    return spec.stats(ctx, prompts, records)


def launch_workers(ctx: StageContext, stage: str, shard_ids: list[int], shards: int, slots: list) -> None:
    """Run shard processes, one per slot at a time; fail naming each failed shard and its log."""
    from selfplay.loop.cluster import shard_command

    logs = ctx.layout.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    relaunch = [*ctx.relaunch, f"loop.shards={shards}"]  # type: ignore[misc]
    queue: list[int] = list(shard_ids)
    running: dict[subprocess.Popen, tuple[int, int, Path]] = {}
    failed: list[str] = []
    free = list(range(len(slots)))
    while queue or running:
        while queue and free:
            shard, slot = queue.pop(0), free.pop(0)
            log_path = logs / f"iter_{ctx.iteration:03d}-{stage}-shard-{shard:05d}-of-{shards:05d}.log"
            cmd = shard_command(relaunch, slots[slot], stage, ctx.iteration, shard)
            env = {**os.environ, **slots[slot].env}
            with open(log_path, "w") as out:
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            running[proc] = (shard, slot, log_path)
            log.info(
                "iteration %d %s: shard %d/%d started (pid %d, log %s)",
                ctx.iteration,
                stage,
                shard,
                shards,
                proc.pid,
                log_path,
            )
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None]:
            shard, slot, log_path = running.pop(proc)
            free.append(slot)
            if proc.returncode != 0 or not part_path(ctx.out, shard, shards).exists():
                failed.append(f"shard {shard}/{shards} (exit {proc.returncode}; log {log_path})")
    if failed:
        raise SelfplayError(
            f"iteration {ctx.iteration} {stage}: {len(failed)} shard(s) failed: {'; '.join(failed)}. "
            "Finished shards are kept; rerun the same command to redo only the missing ones"
        )
