"""Launching stage processes: the train stage through torchrun (N processes, DeepSpeed when
configured, srun + multi-node torchrun on SLURM) and, with loop.isolation=process, every other stage
as `python -m selfplay.run <the run's overrides> task.stage=<s> task.iteration=<t>`."""

from __future__ import annotations

import logging
import os
import socket
import subprocess

from selfplay.errors import SelfplayError
from selfplay.loop.stages import StageContext

STATS_FILE = "_stats.json"
"""Where a stage process leaves its stats for the orchestrator."""

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_training(ctx: StageContext) -> None:
    from selfplay.loop.cluster import local_resources, show, train_command

    if ctx.relaunch is None:
        raise SelfplayError("training processes need the run's command line (run via selfplay.run)")
    res = local_resources(ctx.config)
    port = ctx.config.cluster.master_port if res.kind == "slurm" else free_port()
    cmd = train_command(ctx.relaunch, res, ctx.iteration, port)
    logs = ctx.layout.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"iter_{ctx.iteration:03d}-train.log"
    env = dict(os.environ)
    if ctx.config.train.deepspeed:
        env.setdefault("DS_ACCELERATOR", "cuda" if res.gpus_per_node else "cpu")
    log.info(
        "iteration %d train: %d process(es): %s (log %s)",
        ctx.iteration,
        res.train_world_size,
        show(cmd),
        log_path,
    )
    with open(log_path, "w") as out:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not (ctx.out / "train_stats.json").is_file():
        raise SelfplayError(
            f"iteration {ctx.iteration} train: training processes failed (exit {rc}); log {log_path}"
        )


def launch_stage(ctx: StageContext, stage: str) -> dict:
    """loop.isolation=process: run an unsharded stage as its own process; returns its stats."""
    import json

    from selfplay.loop.cluster import stage_command

    if ctx.relaunch is None:
        raise SelfplayError("loop.isolation=process needs the run's command line (run via selfplay.run)")
    logs = ctx.layout.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"iter_{ctx.iteration:03d}-{stage}.log"
    with open(log_path, "w") as out:
        rc = subprocess.run(
            stage_command(ctx.relaunch, stage, ctx.iteration), stdout=out, stderr=subprocess.STDOUT
        ).returncode
    stats_file = ctx.out / STATS_FILE
    if rc != 0 or not stats_file.is_file():
        raise SelfplayError(
            f"iteration {ctx.iteration} {stage}: the stage process failed (exit {rc}); log {log_path}"
        )
    stats = json.loads(stats_file.read_text())
    stats_file.unlink()
    return stats
