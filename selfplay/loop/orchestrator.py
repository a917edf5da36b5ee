"""The outer loop: for each iteration run each stage unless its marker says it is done."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from selfplay.checks import check_config, check_lora_targets, parse_restart_from
from selfplay.config import Config
from selfplay.data.prompts import load_prompt_pool
from selfplay.errors import SelfplayError
from selfplay.loop import report
from selfplay.loop.launch import STATS_FILE, launch_stage
from selfplay.loop.layout import RunLayout
from selfplay.loop.markers import fingerprint, read_marker, write_marker
from selfplay.loop.run_config import identity, save_or_check
from selfplay.loop.shards import run_shard, run_sharded_stage
from selfplay.loop.stages import SHARDED, STAGE_ORDER, STAGES, StageContext, reference_path, stages_for
from selfplay.models.loading import resolve_policy_path

log = logging.getLogger(__name__)


def run_loop(cfg: Config, relaunch: list[str] | None = None) -> Path | None:
    """Run (or resume) the whole loop; returns the run directory. `relaunch` is the command that
    starts this same run again (used to launch stage, shard and training processes). With
    `loop.dry_run` it prints the commands every stage would launch and returns None."""
    check_config(cfg)
    if cfg.loop.dry_run:
        print("\n".join(dry_run(cfg, relaunch or [sys.executable, "-m", "selfplay.run"])))
        return None
    stages = stages_for(cfg)
    _check_prompt_budget(cfg)
    initial = resolve_policy_path(cfg.model)
    check_lora_targets(cfg.train, initial, cfg.model.trust_remote_code)
    layout = RunLayout((Path(cfg.loop.output_dir) / cfg.loop.run_name).resolve())
    save_or_check(layout, cfg)
    if cfg.loop.restart_from:
        invalidate_from(
            layout,
            *parse_restart_from(cfg.loop.restart_from, stages, cfg.loop.iterations),
            stages,
            cfg.loop.iterations,
        )
    if cfg.loop.threads:
        import torch

        torch.set_num_threads(cfg.loop.threads)
    run_id = identity(cfg)
    for t in range(cfg.loop.iterations):
        policy = initial if t == 0 else str(layout.policy_dir(t - 1))
        for stage in stages:
            ctx = StageContext(cfg, layout, t, layout.partial_dir(t, stage), policy, initial, relaunch)
            run_stage(ctx, stage, fingerprint(run_id, t, stage), relaunch)
            rows = report.collect(layout, cfg.loop.iterations, stages)
            report.write_metrics(layout, rows)
        report.write_manifest(layout, manifest(cfg, layout, stages, initial))
    rows = report.collect(layout, cfg.loop.iterations, stages)
    text = report.write_results(layout, rows, f"selfplay run {cfg.loop.run_name}")
    print(text)
    return layout.root


def run_stage(ctx: StageContext, stage: str, fp: str, relaunch: list[str] | None = None) -> dict[str, Any]:
    layout, t = ctx.layout, ctx.iteration
    marker = read_marker(layout.marker(t, stage))
    if marker is not None and marker.get("fingerprint") == fp:
        log.info("iteration %d %s: done before, skipped", t, stage)
        return marker
    final, partial = layout.stage_dir(t, stage), layout.partial_dir(t, stage)
    shutil.rmtree(final, ignore_errors=True)  # unfinished or stale
    if stage not in SHARDED:  # a sharded stage keeps its finished parts across a crash
        shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    log.info("iteration %d %s: running", t, stage)
    start = time.time()
    if stage in SHARDED:
        stats = run_sharded_stage(ctx, stage)
    elif stage != "train" and isolated(ctx.config):
        stats = launch_stage(ctx, stage)
    else:
        stats = STAGES[stage](ctx)
    seconds = time.time() - start
    os.replace(partial, final)
    marker = {
        "fingerprint": fp,
        "stage": stage,
        "iteration": t,
        "seconds": round(seconds, 3),
        "stats": stats,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_marker(layout.marker(t, stage), marker)
    log.info("iteration %d %s: done in %.1fs %s", t, stage, seconds, _short(stats))
    return marker


def isolated(cfg: Config) -> bool:
    from selfplay.loop.cluster import local_resources

    return local_resources(cfg).isolation == "process"


def run_task(cfg: Config) -> Path:
    """Worker mode: one stage (or one shard of a sharded stage, or one rank of training) of a run."""
    task = cfg.task
    if task.stage not in STAGE_ORDER or task.iteration is None:
        raise SelfplayError(
            f"task: stage must be one of {', '.join(STAGE_ORDER)} with task.iteration set "
            f"(got stage={task.stage}, iteration={task.iteration})"
        )
    initial = resolve_policy_path(cfg.model)
    layout = RunLayout((Path(cfg.loop.output_dir) / cfg.loop.run_name).resolve())
    save_or_check(layout, cfg, check_only=True)
    t = task.iteration
    policy = initial if t == 0 else str(layout.policy_dir(t - 1))
    partial = layout.partial_dir(t, task.stage)
    if not partial.is_dir():
        raise SelfplayError(
            f"task: {partial} does not exist (the orchestrator creates it before launching workers)"
        )
    ctx = StageContext(cfg, layout, t, partial, policy, initial)
    if task.stage == "train":
        from selfplay.train.trainer import train_policy

        train_policy(partial / "data", policy, reference_path(ctx), cfg.train, cfg.model, partial)
        return partial
    if task.stage in SHARDED:
        if task.shard is None or not 0 <= task.shard < cfg.loop.shards:
            raise SelfplayError(f"task.shard={task.shard} must be in [0, loop.shards={cfg.loop.shards})")
        return run_shard(ctx, task.stage, task.shard, cfg.loop.shards)
    stats = STAGES[task.stage](ctx)
    (partial / STATS_FILE).write_text(json.dumps(stats))
    return partial


def dry_run(cfg: Config, relaunch: list[str]) -> list[str]:
    """Every command each stage would launch for this cluster config, one line each."""
    from selfplay.loop.cluster import (
        effective_shards,
        local_resources,
        shard_command,
        shard_workers,
        show,
        stage_command,
        train_command,
    )

    res = local_resources(cfg)
    lines = [
        f"cluster={res.kind} nodes={len(res.nodes)} ({', '.join(res.nodes)}) gpus_per_node={res.gpus_per_node} "
        f"engines={len(res.slots)} (tensor_parallel_size={cfg.generate.tensor_parallel_size}) "
        f"isolation={res.isolation}"
    ]
    shards = effective_shards(cfg, res)
    workers = shard_workers(cfg, res)
    for t in range(cfg.loop.iterations):
        for stage in stages_for(cfg):
            head = f"iteration {t} {stage}:"
            if stage in SHARDED and workers > 0:
                for i in range(shards):
                    slot = res.slots[i % workers]
                    cmd = shard_command([*relaunch, f"loop.shards={shards}"], slot, stage, t, i)
                    lines.append(
                        f"{head} shard {i}/{shards} on {slot.node or 'this node'}: "
                        f"{show(cmd, slot.env if slot.node is None else None)}"
                    )
            elif stage == "train" and (
                res.kind != "local"
                or res.isolation == "process"
                or cfg.train.num_processes > 1
                or cfg.train.deepspeed
            ):
                port = cfg.cluster.master_port
                lines.append(
                    f"{head} ranks 0-{res.train_world_size - 1} (world size {res.train_world_size}, "
                    f"{res.train_nodes} node(s) x {res.train_procs_per_node}, main address "
                    f"{res.main_addr}:{port}): {show(train_command(relaunch, res, t, port))}"
                )
            elif res.isolation == "process":
                lines.append(f"{head} {show(stage_command(relaunch, stage, t))}")
            else:
                lines.append(
                    f"{head} in the orchestrator process"
                    + (f" ({shards} shards)" if stage in SHARDED else "")
                )
    return lines


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


def _check_prompt_budget(cfg: Config) -> None:
    pool = load_prompt_pool(cfg.prompts)
    need = cfg.loop.iterations * cfg.prompts.per_iteration
    if need > len(pool.pool):
        raise SelfplayError(
            f"prompts: {cfg.loop.iterations} iterations x {cfg.prompts.per_iteration} prompts need {need} "
            f"but the pool has {len(pool.pool)} (lower prompts.per_iteration or loop.iterations, or add prompts)"
        )
    if cfg.evaluate.enabled and not pool.heldout:
        raise SelfplayError(
            "prompts: no held-out prompts for evaluation (set prompts.heldout_size > 0 or "
            "prompts.heldout_path, or evaluate.enabled=false)"
        )


def manifest(cfg: Config, layout: RunLayout, stages: list[str], initial: str) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}
    try:
        import vllm

        versions["vllm"] = vllm.__version__
    except Exception:
        pass
    iterations = {}
    for t in range(cfg.loop.iterations):
        markers = {s: read_marker(layout.marker(t, s)) for s in stages}
        if not any(markers.values()):
            continue
        gen = (markers.get("generate") or {}).get("stats", {})
        iterations[f"{t:03d}"] = {
            "policy": initial if t == 0 else str(layout.policy_dir(t - 1)),
            "next_policy": str(layout.policy_dir(t)),
            "reference": initial
            if cfg.train.reference == "initial" or t == 0
            else str(layout.policy_dir(t - 1)),
            "reference_kind": str(cfg.train.reference),
            "generate_seed": cfg.generate.seed,
            "train_seed": cfg.train.seed,
            "backend": gen.get("backend"),
            "fingerprints": {s: m["fingerprint"] for s, m in markers.items() if m},
        }
    return {
        "run": cfg.loop.run_name,
        "initial_policy": initial,
        "versions": versions,
        "iterations": iterations,
    }


def _short(stats: dict[str, Any]) -> str:
    keys = ("responses", "kept", "pool", "reward_mean", "train_loss", "heldout_reward_after")
    parts = [
        f"{k}={stats[k]:.3f}" if isinstance(stats[k], float) else f"{k}={stats[k]}"
        for k in keys
        if k in stats
    ]
    return " ".join(parts)
