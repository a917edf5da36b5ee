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


def iteration_prompts(ctx: StageContext) -> list[Prompt]:
    return read_records(ctx.input("prompts", PROMPTS), Prompt)


def run_shard(ctx: StageContext, stage: str, shard: int, shards: int) -> Path:
    """Run one shard's core and write its part (the unit a shard worker process runs)."""
    prompts = iteration_prompts(ctx)
    records = SHARDED[stage].run_shard(ctx, shard_slice(prompts, shard, shards))
    path = part_path(ctx.out, shard, shards)
    write_records(path, records)
    return path


def run_sharded_stage(ctx: StageContext, stage: str, relaunch: list[str] | None) -> dict:
    """Run the missing shards, then merge all parts into the stage's output file."""
    prompts = iteration_prompts(ctx)
    shards, workers = ctx.config.loop.shards, ctx.config.loop.shard_workers
    if shards < 1 or shards > len(prompts):
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
        if relaunch is None:
            raise SelfplayError(
                "loop.shard_workers > 0 needs the command line to relaunch (run via selfplay.run)"
            )
        launch_workers(ctx, stage, missing, shards, relaunch, workers)
    else:
        for i in missing:
            run_shard(ctx, stage, i, shards)
    spec = SHARDED[stage]
    records = []
    for i in range(shards):
        records += read_records(part_path(ctx.out, i, shards), spec.record)
    write_records(ctx.out / spec.output, records)
    for part in ctx.out.glob("part-*.jsonl"):
        part.unlink()
    return spec.stats(ctx, prompts, records)


def _device_groups(workers: int, per_worker: int) -> list[dict[str, str]]:
    """Environment per worker slot: its GPUs on CUDA machines, its CPU cores otherwise."""
    import torch

    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if workers * per_worker > len(devices):
            raise SelfplayError(
                f"loop.shard_workers={workers} x generate.tensor_parallel_size={per_worker} needs "
                f"{workers * per_worker} GPUs; {len(devices)} visible"
            )
        return [
            {"CUDA_VISIBLE_DEVICES": ",".join(devices[w * per_worker : (w + 1) * per_worker])}
            for w in range(workers)
        ]
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // workers)
    groups = []
    for w in range(workers):
        mine = cores[(w * per) % len(cores) :][:per]
        groups.append(
            {"VLLM_CPU_OMP_THREADS_BIND": f"{mine[0]}-{mine[-1]}", "OMP_NUM_THREADS": str(len(mine))}
        )
    return groups


def launch_workers(
    ctx: StageContext, stage: str, shard_ids: list[int], shards: int, relaunch: list[str], workers: int
) -> None:
    """Run shard processes, at most `workers` at a time; fail naming each failed shard and its log."""
    groups = _device_groups(workers, ctx.config.generate.tensor_parallel_size)
    logs = ctx.layout.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue, running, failed = list(shard_ids), {}, []
    free = list(range(workers))
    while queue or running:
        while queue and free:
            shard, slot = queue.pop(0), free.pop(0)
            log_path = logs / f"iter_{ctx.iteration:03d}-{stage}-shard-{shard:05d}-of-{shards:05d}.log"
            cmd = [*relaunch, f"task.stage={stage}", f"task.iteration={ctx.iteration}", f"task.shard={shard}"]
            env = {**os.environ, **groups[slot]}
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
