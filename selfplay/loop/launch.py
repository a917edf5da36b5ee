"""Launching the train stage as N processes with torchrun (and DeepSpeed when configured): each
process is `python -m selfplay.run <the run's overrides> task.stage=train task.iteration=<t>`."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

from selfplay.errors import SelfplayError
from selfplay.loop.stages import StageContext

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(ctx: StageContext, port: int) -> list[str]:
    if ctx.relaunch is None:
        raise SelfplayError(
            "train.num_processes > 1 or train.deepspeed needs the run's command line (run via selfplay.run)"
        )
    overrides = ctx.relaunch[3:]  # [python, -m, selfplay.run, *overrides]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={ctx.config.train.num_processes}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "selfplay.run",
        *overrides,
        "task.stage=train",
        f"task.iteration={ctx.iteration}",
    ]


def launch_training(ctx: StageContext) -> None:
    cmd = torchrun_command(ctx, free_port())
    logs = ctx.layout.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"iter_{ctx.iteration:03d}-train.log"
    env = dict(os.environ)
    if ctx.config.train.deepspeed:
        env.setdefault("DS_ACCELERATOR", "cuda" if _cuda() else "cpu")
    log.info(
        "iteration %d train: %d process(es): %s (log %s)",
        ctx.iteration,
        ctx.config.train.num_processes,
        " ".join(cmd),
        log_path,
    )
    with open(log_path, "w") as out:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not (ctx.out / "train_stats.json").is_file():
        raise SelfplayError(
            f"iteration {ctx.iteration} train: training processes failed (exit {rc}); log {log_path}"
        )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
