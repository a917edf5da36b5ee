"""Where a stage runs and the commands that start its processes: one pure decision used both by the
runner (which launches) and by `loop.dry_run` (which prints), so that what a dry run shows is what a
real run does.

Four placements: in the orchestrator's process; as its own `python -m selfplay.run ... task.stage=<s>`
process; as shards (in this process one after another, or as shard processes, one per engine slot);
as training ranks (one process per rank on this machine; one `srun` task per rank on SLURM), which
join their process group through a store bound to the rendezvous address only (127.0.0.1 on one
machine, the first node on SLURM; see selfplay/training/distributed.py). We only compose existing
launchers; there is no scheduler of our own.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from selfplay.config import Config
from selfplay.loop.cluster import Resources, Slot

IN_PROCESS, PROCESS, SHARDS, RANKS = "in_process", "process", "shards", "ranks"


@dataclass(frozen=True)
class Placement:
    where: str
    """in_process | process | shards | ranks (training processes)."""
    shards: int = 1
    """Shards of a sharded stage."""
    workers: int = 0
    """Shard processes at a time (0 = the shards run one after another in this process)."""
    slots: tuple[Slot, ...] = field(default_factory=tuple)
    """Where shard processes run: one slot per worker (its node and devices)."""
    persistent: bool = False
    """The shards go to the run's long-lived workers (one per slot) instead of a process each."""


def effective_shards(cfg: Config, res: Resources) -> int:
    """loop.shards, or one shard per engine on gpus/slurm when left at 1."""
    return cfg.loop.shards if cfg.loop.shards > 1 or res.kind == "local" else len(res.slots)


def shard_workers(cfg: Config, res: Resources) -> int:
    if res.kind != "local" or res.isolation == "process":
        return len(res.slots)
    return cfg.loop.shard_workers


def use_workers(cfg: Config, res: Resources) -> bool:
    """Whether the run keeps one long-lived worker (and engine) per slot (loop.workers)."""
    if cfg.loop.workers is not None:
        return cfg.loop.workers
    return shard_workers(cfg, res) > 0


def distributed_training(cfg: Config, res: Resources) -> bool:
    """Whether training runs as rank processes (several processes, DeepSpeed, a cluster, or process
    isolation) rather than inside the orchestrator."""
    return (
        cfg.train.num_processes > 1
        or bool(cfg.train.deepspeed)
        or res.kind != "local"
        or res.isolation == "process"
    )


def placement(sharded: bool, has_ranks: bool, cfg: Config, res: Resources) -> Placement:
    """Where a stage runs. `sharded`: the stage splits its prompts into shards; `has_ranks`: the stage
    has a part every training process runs (train)."""
    if sharded:
        workers = shard_workers(cfg, res)
        persistent = use_workers(cfg, res)
        if persistent:
            workers = max(workers, 1)
        return Placement(SHARDS, effective_shards(cfg, res), workers, tuple(res.slots[:workers]), persistent)
    if has_ranks:
        return Placement(RANKS if distributed_training(cfg, res) else IN_PROCESS)
    return Placement(PROCESS if res.isolation == PROCESS else IN_PROCESS)


# Commands. `relaunch` is the run's own command: [python, -m, <selfplay.run or selfplay.train>, *overrides].


def task_args(stage: str, iteration: int, shard: int | None = None) -> list[str]:
    args = [f"task.stage={stage}", f"task.iteration={iteration}"]
    return args + ([f"task.shard={shard}"] if shard is not None else [])


def srun_step(res: Resources, node: str, gpus: int, cpus: int) -> list[str]:
    """One task on `node` in a step of its own that SLURM gives `gpus` GPUs and `cpus` CPUs (`--exact`:
    only those, so steps of a node get disjoint devices; no `--overlap`, which would let them share).
    Counts are always explicit: srun otherwise reads the job's SLURM_NTASKS / SLURM_GPUS_PER_NODE /
    SLURM_CPUS_PER_TASK from its environment and asks for the whole job's share."""
    return [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        f"--nodelist={node}",
        *([f"--gpus-per-node={gpus}"] if gpus else []),
        *([f"--cpus-per-task={cpus}"] if cpus else []),
        "--exact",
        "--kill-on-bad-exit=1",
        *res.srun_args,
    ]


def stage_command(relaunch: list[str], stage: str, iteration: int) -> list[str]:
    """A stage as its own process, beside the orchestrator (on SLURM in the batch step, on the first
    node): the stages that are not sharded and not training use no GPU (prompts, selection, push)."""
    return [*relaunch, *task_args(stage, iteration)]


def worker_command(relaunch: list[str], slot: Slot, index: int, res: Resources) -> list[str]:
    """The long-lived worker of engine slot `index`: here with the slot's devices in its environment,
    or on SLURM a step of its own that SLURM gives the slot's GPUs and CPUs."""
    cmd = [*relaunch, f"task.worker={index}"]
    if slot.node is None:
        return cmd
    return [*srun_step(res, slot.node, slot.gpus, slot.cpus), *cmd]


def shard_command(
    relaunch: list[str],
    slot: Slot,
    stage: str,
    iteration: int,
    shard: int,
    shards: int,
    res: Resources | None = None,
) -> list[str]:
    cmd = [*relaunch, f"loop.shards={shards}", *task_args(stage, iteration, shard)]
    if slot.node is None or res is None:
        return cmd
    return [*srun_step(res, slot.node, slot.gpus, slot.cpus), *cmd]


# Network interfaces of gloo's and NCCL's own connections on one machine: loopback (a user's own
# setting of these variables wins).
LOOPBACK_INTERFACES = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}


def train_launches(
    relaunch: list[str], res: Resources, iteration: int, port: int, stage: str
) -> list[tuple[list[str], dict[str, str]]]:
    """The training processes as (command, environment) pairs. On one machine: one process per rank,
    its place (RANK, LOCAL_RANK, WORLD_SIZE) in its environment and the rendezvous on 127.0.0.1. On
    SLURM: one `srun` step with a task per rank on every node, the node's GPUs bound to the step (each
    task sees them all and takes the one of its SLURM_LOCALID), the rendezvous on the first node.
    `port` 0: rank 0 binds a free port and publishes it to the others (see selfplay/training/distributed.py).
    `stage`: the stage whose ranks these are."""
    cmd = [*relaunch, *task_args(stage, iteration)]
    if res.kind == "slurm":
        world, per_node = res.train_world_size, res.train_procs_per_node
        return [
            (
                [
                    "srun",
                    f"--nodes={res.train_nodes}",
                    f"--ntasks={world}",
                    f"--ntasks-per-node={per_node}",
                    *([f"--gpus-per-node={res.gpus_per_node}"] if res.gpus_per_node else []),
                    *([f"--cpus-per-task={res.train_cpus}"] if res.train_cpus else []),
                    "--exact",
                    "--overlap",  # the GPUs of the run's (asleep) engine workers
                    "--kill-on-bad-exit=1",
                    *res.srun_args,
                    f"--export=ALL,MASTER_ADDR={res.main_addr},MASTER_PORT={port}",
                    *cmd,
                ],
                {},
            )
        ]
    procs = str(res.train_procs_per_node)
    return [
        (
            cmd,
            {
                "MASTER_ADDR": res.main_addr,
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": procs,
                "LOCAL_WORLD_SIZE": procs,
                **LOOPBACK_INTERFACES,
            },
        )
        for rank in range(res.train_procs_per_node)
    ]


def show(cmd: list[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + shlex.join(cmd)


def describe_workers(cfg: Config, res: Resources, relaunch: list[str]) -> list[str]:
    """The dry-run lines of the run's long-lived workers (started once, when shards first need them)."""
    where = placement(True, False, cfg, res)
    if not where.persistent:
        return []
    return [
        f"worker {k} on {slot.node or 'this node'}: "
        f"{show(worker_command(relaunch, slot, k, res), slot.env if slot.node is None else None)}"
        for k, slot in enumerate(where.slots)
    ]


def describe(
    stage: str, where: Placement, cfg: Config, res: Resources, relaunch: list[str], iteration: int
) -> list[str]:
    """The dry-run lines of one stage: every command it launches, or where it runs in-process."""
    head = f"iteration {iteration} {stage}:"
    if where.where == SHARDS and where.persistent:
        return [
            f"{head} shard {i}/{where.shards} on worker {i % where.workers} "
            f"({where.slots[i % where.workers].node or 'this node'})"
            for i in range(where.shards)
        ]
    if where.where == SHARDS and where.workers > 0:
        lines = []
        for i in range(where.shards):
            slot = where.slots[i % where.workers]
            cmd = shard_command(relaunch, slot, stage, iteration, i, where.shards, res)
            lines.append(
                f"{head} shard {i}/{where.shards} on {slot.node or 'this node'}: "
                f"{show(cmd, slot.env if slot.node is None else None)}"
            )
        return lines
    if where.where == RANKS:
        port = cfg.cluster.master_port or 0
        launches = train_launches(relaunch, res, iteration, port, stage)
        head = (
            f"{head} ranks 0-{res.train_world_size - 1} (world size {res.train_world_size}, "
            f"{res.train_nodes} node(s) x {res.train_procs_per_node}, rendezvous "
            f"{res.main_addr}:{port or 'a free port'})"
        )
        if len(launches) == 1:
            return [f"{head}: {show(launches[0][0], launches[0][1])}"]
        return [f"{head} rank {rank}: {show(cmd, env)}" for rank, (cmd, env) in enumerate(launches)]
    if where.where == PROCESS:
        return [f"{head} {show(stage_command(relaunch, stage, iteration))}"]
    suffix = f" ({where.shards} shards)" if where.where == SHARDS else ""
    return [f"{head} in the orchestrator process{suffix}"]
