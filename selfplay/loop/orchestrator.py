"""The outer loop: for each iteration run each enabled stage of the stage table, unless its marker
says it is done; worker mode (one stage, shard or training rank as its own process); the dry run."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from selfplay import progress
from selfplay.checks import parse_restart_from
from selfplay.config import Config
from selfplay.errors import SelfplayError, sigterm_raises, storage_problem
from selfplay.loop import launch
from selfplay.loop.cluster import Resources, local_resources
from selfplay.loop.launch import write_placement, write_stats
from selfplay.loop.lock import RunLock
from selfplay.loop.placement import describe, describe_workers, placement
from selfplay.loop.preflight import preflight, starting_policy
from selfplay.loop.run_config import config_dict, save_or_check
from selfplay.loop.runner import place, run_stage
from selfplay.loop.shards import run_shard
from selfplay.loop.workers import WorkerPool
from selfplay.reporting import summary
from selfplay.reporting.tracking import open_tracker
from selfplay.rundir.context import StageContext
from selfplay.rundir.integrity import check_sizes
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.manifest import manifest, point_final, write_manifest
from selfplay.rundir.markers import fingerprint, read_marker
from selfplay.stages.table import STAGES, Stage, stage, stages_for
from selfplay.training.distributed import rank_environment

log = logging.getLogger(__name__)


def run_loop(
    cfg: Config, relaunch: list[str] | None = None, table: tuple[Stage, ...] = STAGES, report: bool = True
) -> Path | None:
    """Run (or resume) the whole loop; returns the run directory. `relaunch` is the command that
    starts this same run again (used to launch stage, shard and training processes). With
    `loop.dry_run` it prints the commands every stage would launch and returns None. `report`: print
    the results table at the end (a table without selection and evaluation has none worth printing)."""
    checked = preflight(cfg, table, dry_run=cfg.loop.dry_run)
    res, stages, initial, warnings = checked.res, checked.stages, checked.initial, checked.warnings
    progress.configure(cfg.loop.progress, cfg.loop.progress_interval)
    if cfg.loop.dry_run:
        print("\n".join(dry_run(cfg, relaunch or [sys.executable, "-m", "selfplay.run"], table, res)))
        return None
    layout = RunLayout.of(cfg)
    from selfplay.generate.engine_pool import POOL

    shards = placement(True, False, cfg, res)
    workers = WorkerPool(layout, res, shards, relaunch) if shards.persistent else None
    with RunLock(layout.lock_file) as lock, sigterm_raises():  # one orchestrator per run directory
        launch.on_change = lock.record_children
        try:
            return _run(cfg, relaunch, table, stages, initial, warnings, layout, res, workers, report)
        finally:
            if workers is not None:
                workers.close()  # their engines shut down properly
            launch.stop_all()  # Ctrl-C, SIGTERM or an error: nothing this run started outlives it
            launch.on_change = None
            POOL.close()  # the persistent generation engine, if one was started


def _run(
    cfg: Config,
    relaunch: list[str] | None,
    table: tuple[Stage, ...],
    stages: list[str],
    initial: str,
    warnings: list[str],
    layout: RunLayout,
    res: Resources,
    workers: WorkerPool | None = None,
    report: bool = True,
) -> Path:
    run_id = save_or_check(layout, cfg)  # a refused resume is the only line a refused run prints
    for warning in warnings:
        log.warning(warning)
    if cfg.loop.restart_from:  # checked by preflight
        invalidate_from(
            layout,
            *parse_restart_from(cfg.loop.restart_from, stages, cfg.loop.iterations),
            stages,
            cfg.loop.iterations,
        )
        point_final(layout, cfg.loop.iterations)  # never at a policy that is to be redone
    if cfg.loop.threads:
        import torch

        torch.set_num_threads(cfg.loop.threads)
    check_finished_outputs(layout, stages, table, cfg.loop.iterations, run_id)
    last = cfg.loop.iterations - 1
    tracker = open_tracker(layout, cfg.tracking, config_dict(cfg))
    follow = None if tracker is None else tracker.follow_training  # live training metrics
    try:
        for t in range(cfg.loop.iterations):
            policy = initial if t == 0 else str(layout.policy_dir(t - 1))
            for name in stages:
                out = layout.partial_dir(t, name)
                ctx = StageContext(cfg, layout, t, out, policy, initial, name, res.train_world_size, follow)
                done = run_stage(
                    ctx, stage(name, table), fingerprint(run_id, t, name), res, relaunch, workers
                )
                if tracker is not None:
                    tracker.stage_done(done)
                summary.write_metrics(layout, summary.collect(layout, cfg.loop.iterations, stages))
                if t == last and name == cfg.loop.stop_after:
                    break
            write_manifest(layout, manifest(cfg, layout, stages, initial))
            point_final(layout, cfg.loop.iterations)
    finally:
        if tracker is not None:
            tracker.close()
    rows = summary.collect(layout, cfg.loop.iterations, stages)
    text = summary.write_results(layout, rows, f"selfplay run {cfg.loop.run_name}", cfg.loop.iterations)
    if report:
        print(text)
    return layout.root


def run_task(cfg: Config, table: tuple[Stage, ...] = STAGES) -> Path:
    """Worker mode: one stage (or one shard of a sharded stage, or one rank of training) of a run. A
    one-line error is also left in the stage's folder, so the orchestrator can report it. SIGTERM (the
    orchestrator stopping it) unwinds, so that its engine is shut down properly."""
    progress.beat(f"iteration {cfg.task.iteration} {cfg.task.stage}: started")
    try:
        with sigterm_raises():
            return _run_task(cfg, table)
    except Exception as exc:
        problem = None if isinstance(exc, SelfplayError) else storage_problem(exc)
        if not isinstance(exc, SelfplayError) and problem is None:
            raise
        err = (
            exc
            if problem is None
            else SelfplayError(
                f"iteration {cfg.task.iteration} {cfg.task.stage}: {problem} while writing; free space and rerun"
            )
        )
        layout = RunLayout.of(cfg)
        if cfg.task.stage and cfg.task.iteration is not None:
            folder = layout.partial_dir(cfg.task.iteration, cfg.task.stage)
            try:
                if folder.is_dir():
                    RunLayout.error_file(folder, cfg.task.shard).write_text(str(err) + "\n")
            except OSError:  # the disk that refused the stage may refuse this too; the log has it
                pass
        if err is exc:
            raise
        raise err from None
    finally:
        from selfplay.generate.engine_pool import POOL

        POOL.close()  # a worker process closes its engine before it exits


def _run_task(cfg: Config, table: tuple[Stage, ...]) -> Path:
    task = cfg.task
    names = [s.name for s in table]
    if task.stage not in names or task.iteration is None:
        raise SelfplayError(
            f"task: stage must be one of {', '.join(names)} with task.iteration set "
            f"(got stage={task.stage}, iteration={task.iteration})"
        )
    spec = stage(task.stage, table)
    initial = starting_policy(cfg)
    layout = RunLayout.of(cfg)
    save_or_check(layout, cfg, check_only=True)
    t = task.iteration
    policy = initial if t == 0 else str(layout.policy_dir(t - 1))
    partial = layout.partial_dir(t, task.stage)
    if not partial.is_dir():
        raise SelfplayError(
            f"task: {partial} does not exist (the orchestrator creates it before launching workers)"
        )
    ctx = StageContext(cfg, layout, t, partial, policy, initial, task.stage)
    launch.worker_threads(cfg)
    if spec.sharded is not None:
        if task.shard is None or not 0 <= task.shard < cfg.loop.shards:
            raise SelfplayError(f"task.shard={task.shard} must be in [0, loop.shards={cfg.loop.shards})")
        write_placement(partial, shard=task.shard)
        return run_shard(ctx, spec.sharded, task.shard, cfg.loop.shards)
    if spec.ranks is not None:  # one training process; rank 0 reports
        rank = int(rank_environment(os.environ).get("RANK", "0"))
        write_placement(partial, rank=rank)
        stats = spec.ranks(ctx)
        if rank == 0:
            write_stats(partial, stats)
        return partial
    assert spec.run is not None
    write_placement(partial)
    write_stats(partial, spec.run(ctx))
    return partial


def dry_run(
    cfg: Config, relaunch: list[str], table: tuple[Stage, ...] = STAGES, res: Resources | None = None
) -> list[str]:
    """Every command each stage would launch for this cluster config, one line each."""
    res = res or local_resources(cfg)
    lines = [
        f"cluster={res.kind} nodes={len(res.nodes)} ({', '.join(res.nodes)}) gpus_per_node={res.gpus_per_node} "
        f"engines={len(res.slots)} (tensor_parallel_size={cfg.generate.tensor_parallel_size}) "
        f"isolation={res.isolation}"
    ]
    lines += describe_workers(cfg, res, relaunch)
    for t in range(cfg.loop.iterations):
        for name in stages_for(cfg, table):
            lines += describe(name, place(stage(name, table), cfg, res), cfg, res, relaunch, t)
    return lines


def check_finished_outputs(
    layout: RunLayout, stages: list[str], table: tuple[Stage, ...], iterations: int, run_id: dict
) -> None:
    """Before a resume trusts a finished stage's marker, what the next stages read from it must be
    there (a deleted policy folder otherwise surfaces deep in a library); stale partial folders of
    finished stages are removed."""
    for t in range(iterations):
        for name in stages:
            marker = read_marker(layout.marker(t, name))
            if marker is None or marker.get("fingerprint") != fingerprint(run_id, t, name):
                continue
            shutil.rmtree(layout.partial_dir(t, name), ignore_errors=True)
            check_sizes(layout, t, name, marker)  # every file it wrote, at its size
            for out in stage(name, table).declared_outputs:
                path = layout.stage_dir(t, name) / out
                if not path.exists():
                    raise SelfplayError(
                        f"iteration {t} {name} is marked done but {path} is missing (deleted or moved?); rerun "
                        f"with loop.restart_from={t}/{name} to redo it and everything after it"
                    )


def invalidate_from(
    layout: RunLayout, iteration: int, stage: str, stages: list[str], iterations: int
) -> None:
    """Remove the stage and every stage after it (later iterations included)."""
    doomed = [
        (t, s)
        for t in range(iteration, iterations)
        for s in stages
        if t > iteration or stages.index(s) >= stages.index(stage)
    ]
    for t, s in doomed:
        for d in (layout.stage_dir(t, s), layout.partial_dir(t, s)):
            shutil.rmtree(d, ignore_errors=True)
    log.info("restart_from %d/%s: invalidated %d stage(s)", iteration, stage, len(doomed))
