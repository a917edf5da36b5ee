"""Running one stage of one iteration: skip it when its marker says it is done; otherwise run it
where its placement says (in this process, as its own process, as shards, as training rank processes),
rename its partial folder into place and write its marker last. The only module that launches."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from selfplay.config import Config
from selfplay.errors import SelfplayError, storage_problem
from selfplay.loop import launch
from selfplay.loop.cluster import Resources, local_resources
from selfplay.loop.placement import (
    LOOPBACK_INTERFACES,
    PROCESS,
    RANKS,
    SHARDS,
    Placement,
    placement,
    shard_command,
    show,
    stage_command,
    train_launches,
)
from selfplay.loop.shards import run_sharded_stage, run_worker_pool
from selfplay.loop.workers import WorkerPool
from selfplay.rundir.context import StageContext
from selfplay.rundir.integrity import checksums, verify
from selfplay.rundir.layout import STATS, RunLayout
from selfplay.rundir.markers import read_marker, write_marker
from selfplay.rundir.stats import Finished, StageStats
from selfplay.stages.table import Stage

log = logging.getLogger(__name__)


def place(spec: Stage, cfg: Config, res: Resources) -> Placement:
    """Where this stage runs for this config (the one decision; `loop.dry_run` prints it)."""
    return placement(spec.sharded is not None, spec.ranks is not None, cfg, res)


def run_stage(
    ctx: StageContext,
    spec: Stage,
    fp: str,
    res: Resources | None = None,
    relaunch: list[str] | None = None,
    workers: WorkerPool | None = None,
) -> Finished:
    """Run (or skip) one stage; returns what its marker records. `relaunch` is the run's own command,
    needed for every placement that starts processes."""
    layout, t, stage = ctx.layout, ctx.iteration, spec.name
    marker = read_marker(layout.marker(t, stage))
    if marker is not None and marker.get("fingerprint") == fp:
        log.info("iteration %d %s: done before, skipped", t, stage)
        return Finished(
            t,
            stage,
            float(marker["seconds"]),
            spec.stats.from_dict(marker["stats"], str(layout.marker(t, stage))),
        )
    final, partial = layout.stage_dir(t, stage), layout.partial_dir(t, stage)
    shutil.rmtree(final, ignore_errors=True)  # unfinished or stale
    if not spec.resumable:  # sharded stages keep finished parts, training its checkpoints
        shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    for stale in (partial / STATS, ctx.layout.error_file(partial)):
        stale.unlink(missing_ok=True)
    for half_written in partial.rglob(".*.tmp-*"):  # a killed writer's temporary file, never renamed
        if half_written.is_file():
            half_written.unlink(missing_ok=True)
    log.info("iteration %d %s: running", t, stage)
    verify(layout, Path(ctx.policy))  # the policy this stage starts from (once per process)
    if not spec.samples:
        from selfplay.generate.engine_pool import POOL

        POOL.release_memory()  # a persistent engine sleeps (GPUs) while this stage needs the memory
    if spec.ranks is not None and workers is not None:
        workers.release()  # the workers' engines too: training takes the GPUs
    start = time.time()
    try:
        res = res or local_resources(ctx.config)
        stats = execute(ctx, spec, place(spec, ctx.config, res), res, relaunch, workers)
        if not isinstance(stats, spec.stats):  # every stage returns the record it declares
            raise SelfplayError(f"{ctx.label}: returned {type(stats).__name__}, not {spec.stats.__name__}")
    except SelfplayError:
        raise
    except Exception as exc:
        problem = storage_problem(exc)
        if problem is None:
            raise
        raise SelfplayError(
            f"iteration {t} {stage}: {problem} while writing under {layout.root}; free space and rerun the "
            "same command (finished stages are kept, this one starts again)"
        ) from None
    seconds = round(time.time() - start, 3)
    placed = gather_placement(partial)
    if placed:
        stats.placement = placed
    os.replace(partial, final)
    marker = {
        "files": checksums(final),  # what the next stages read is checked against these
        "fingerprint": fp,
        "stage": stage,
        "iteration": t,
        "seconds": seconds,
        "stats": stats.to_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_marker(layout.marker(t, stage), marker)
    log.info("iteration %d %s: done in %.1fs %s", t, stage, seconds, stats.short())
    dropped = stats.drops()
    if dropped:
        log.warning("iteration %d %s: dropped and counted: %s", t, stage, dropped)
    return Finished(t, stage, seconds, stats)


def execute(
    ctx: StageContext,
    spec: Stage,
    where: Placement,
    res: Resources,
    relaunch: list[str] | None,
    workers: WorkerPool | None = None,
) -> StageStats:
    def command_line() -> list[str]:
        if relaunch is None:
            raise SelfplayError(
                f"iteration {ctx.iteration} {spec.name}: placement '{where.where}' starts processes and "
                "needs the run's command line (run through python -m selfplay.run)"
            )
        return relaunch

    if where.where == SHARDS and where.persistent:
        assert spec.sharded is not None
        if workers is None:
            raise SelfplayError(f"{ctx.label}: loop.workers needs the run's worker pool (internal)")
        pool = workers

        def to_workers(shard_ids: list[int], shards: int) -> None:
            pool.run_shards(ctx, spec.name, shard_ids, shards, watch(ctx))

        return run_sharded_stage(ctx, spec.name, spec.sharded, where, to_workers)
    if where.where == SHARDS:
        assert spec.sharded is not None

        def start_workers(shard_ids: list[int], shards: int) -> None:
            cmd = command_line()

            def start(shard: int, slot: int) -> launch.Watched:
                s = where.slots[slot]
                log_path = ctx.layout.log_file(ctx.iteration, spec.name, shard, shards)
                ctx.layout.error_file(ctx.out, shard).unlink(missing_ok=True)  # from an earlier failure
                argv = shard_command(cmd, s, spec.name, ctx.iteration, shard, shards, res)
                name = f"iteration {ctx.iteration} {spec.name} shard {shard}/{shards}"
                return launch.Watched(launch.spawn(argv, s.env, log_path), log_path, name, watch(ctx))

            run_worker_pool(ctx, spec.name, shard_ids, shards, where, start)

        return run_sharded_stage(ctx, spec.name, spec.sharded, where, start_workers)
    if where.where == PROCESS:
        log_path = ctx.layout.log_file(ctx.iteration, spec.name)
        argv = stage_command(command_line(), spec.name, ctx.iteration)
        rc = launch.run_process(argv, {}, log_path, f"{ctx.label} process", watch(ctx))
        found = launch.read_stats(ctx.out, f"{ctx.label}: the stage process", rc, log_path)
        return spec.stats.from_dict(found, f"{ctx.label}: the stage process's statistics")
    assert spec.run is not None
    stats = spec.run(ctx)
    if spec.ranks is None:
        return stats
    if where.where == RANKS:
        return stats.merged(_ranks(ctx, spec, res, command_line()))
    return stats.merged(spec.ranks(ctx))


def _ranks(ctx: StageContext, spec: Stage, res: Resources, relaunch: list[str]) -> StageStats:
    """The training processes (rank 0's log is the stage's log; rank r's beside it)."""
    port = ctx.config.cluster.master_port or 0  # 0: rank 0 binds a free port and publishes it
    RunLayout.rendezvous_file(ctx.out).unlink(missing_ok=True)  # an earlier launch's
    log_path = ctx.layout.log_file(ctx.iteration, spec.name)
    extra = {}
    if ctx.config.train.deepspeed:
        extra["DS_ACCELERATOR"] = os.environ.get("DS_ACCELERATOR", "cuda" if res.gpus_per_node else "cpu")
    launches = []
    for rank, (cmd, env) in enumerate(train_launches(relaunch, res, ctx.iteration, port, spec.name)):
        env = {k: v for k, v in env.items() if k not in LOOPBACK_INTERFACES or k not in os.environ}
        rank_log = (
            log_path if rank == 0 else log_path.with_name(f"{log_path.stem}-rank{rank}{log_path.suffix}")
        )
        launches.append((cmd, {**env, **extra}, rank_log))
    log.info(
        "iteration %d %s: %d process(es): %s (log %s)",
        ctx.iteration,
        spec.name,
        res.train_world_size,
        show(launches[0][0], launches[0][1]),
        log_path,
    )
    from functools import partial

    from selfplay.rundir.layout import LIVE_HISTORY

    tick = None
    if ctx.follow_training is not None:  # training metrics to the run's tracker, live
        tick = partial(ctx.follow_training, ctx.iteration, ctx.out / LIVE_HISTORY)
    rc, failed_log = launch.run_processes(launches, f"{ctx.label} training processes", watch(ctx), tick=tick)
    found = launch.read_stats(ctx.out, f"{ctx.label}: training processes", rc, failed_log)
    return spec.stats.from_dict(found, f"{ctx.label}: the training processes' statistics")


def gather_placement(folder) -> list[dict[str, Any]]:
    """Where each launched process of the stage ran (node, devices, rank or shard), from the records
    they left (removed here): kept in the stage's stats."""
    out = []
    for f in sorted(folder.glob("_where*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(f.read_text()))
        f.unlink(missing_ok=True)
    return sorted(out, key=lambda w: (w.get("shard", -1), w.get("rank", -1)))


def watch(ctx: StageContext) -> launch.Watch:
    lp = ctx.config.loop
    return launch.Watch(lp.hang_timeout, lp.stage_timeout, lp.progress_interval, lp.progress)
