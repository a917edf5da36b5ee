"""What a run has to work with, for cluster=local|gpus|slurm: nodes, GPUs per node, one slot per vLLM
engine (its node and devices), training processes. Pure functions of the config and the environment
(`local_resources` reads this machine's), so placement and `loop.dry_run` are testable anywhere."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from selfplay.config import Config
from selfplay.errors import SelfplayError


@dataclass(frozen=True)
class Slot:
    """Where one shard worker (one vLLM engine) runs: a node (None = here) and its devices."""

    node: str | None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    kind: str
    nodes: list[str]
    gpus_per_node: int
    main_addr: str
    slots: list[Slot]
    train_nodes: int
    train_procs_per_node: int
    isolation: str
    job_id: str = "local"

    @property
    def train_world_size(self) -> int:
        return self.train_nodes * self.train_procs_per_node


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compact host list ("gpu[01-03,07],login1") as host names, in order."""
    hosts: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", nodelist):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not m:
            hosts.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for r in ranges.split(","):
            lo, _, hi = r.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{i:0{len(lo)}d}{suffix}")
    return hosts


def _gpu_groups(gpus: list[str], per_engine: int) -> list[str]:
    return [",".join(gpus[i : i + per_engine]) for i in range(0, len(gpus) - per_engine + 1, per_engine)]


def _cpu_slots(workers: int, cores: list[int]) -> list[Slot]:
    per = max(1, len(cores) // max(1, workers))
    slots = []
    for w in range(max(1, workers)):
        mine = cores[(w * per) % len(cores) :][:per]
        slots.append(
            Slot(
                None,
                {"VLLM_CPU_OMP_THREADS_BIND": f"{mine[0]}-{mine[-1]}", "OMP_NUM_THREADS": str(len(mine))},
            )
        )
    return slots


def resources(cfg: Config, environ: dict[str, str], cuda_devices: int, cores: list[int]) -> Resources:
    """Engines, nodes and training processes for this config on this machine / allocation."""
    kind, tp = str(cfg.cluster.kind), cfg.generate.tensor_parallel_size
    isolation = str(cfg.loop.isolation)
    if isolation == "auto":
        isolation = "in_process" if kind == "local" else "process"
    host = socket.gethostname()
    if kind == "local":
        if cuda_devices:
            visible = environ.get("CUDA_VISIBLE_DEVICES")
            gpus = visible.split(",") if visible else [str(i) for i in range(cuda_devices)]
            workers = max(1, cfg.loop.shard_workers)
            if workers * tp > len(gpus) and cfg.loop.shard_workers > 0:
                raise SelfplayError(
                    f"loop.shard_workers={workers} x generate.tensor_parallel_size={tp} needs "
                    f"{workers * tp} GPUs; {len(gpus)} visible"
                )
            slots = [Slot(None, {"CUDA_VISIBLE_DEVICES": g}) for g in _gpu_groups(gpus, tp)[:workers]]
        else:
            slots = _cpu_slots(cfg.loop.shard_workers, cores)
        return Resources(
            kind, [host], cuda_devices, "127.0.0.1", slots, 1, cfg.train.num_processes, isolation
        )
    if kind == "gpus":
        gpus_n = cfg.cluster.gpus_per_node or cuda_devices
        if not gpus_n:
            raise SelfplayError("cluster=gpus but no CUDA device is visible (use cluster=local on a CPU)")
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",")[:gpus_n] if visible else [str(i) for i in range(gpus_n)]
        groups = _gpu_groups(gpus, tp)
        if not groups:
            raise SelfplayError(f"generate.tensor_parallel_size={tp} is more than the node's {gpus_n} GPUs")
        slots = [Slot(None, {"CUDA_VISIBLE_DEVICES": g}) for g in groups]
        return Resources(kind, [host], gpus_n, "127.0.0.1", slots, 1, gpus_n, isolation)
    missing = [v for v in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NNODES") if not environ.get(v)]
    if missing:
        raise SelfplayError(
            f"cluster=slurm but {', '.join(missing)} not set: run inside an allocation "
            "(sbatch launch/slurm.sbatch or salloc)"
        )
    nodes = expand_nodelist(environ["SLURM_JOB_NODELIST"])
    if len(nodes) != int(environ["SLURM_NNODES"]):
        raise SelfplayError(
            f"SLURM_JOB_NODELIST names {len(nodes)} nodes but SLURM_NNODES={environ['SLURM_NNODES']}"
        )
    slurm_gpus = cfg.cluster.gpus_per_node
    if slurm_gpus is None:
        raw = environ.get("SLURM_GPUS_ON_NODE") or environ.get("SLURM_GPUS_PER_NODE", "")
        digits = raw.rsplit(":", 1)[-1]
        if not digits.isdigit():
            raise SelfplayError("cluster=slurm: set cluster.gpus_per_node or request GPUs (--gpus-per-node)")
        slurm_gpus = int(digits)
    gpus_n = slurm_gpus
    groups = _gpu_groups([str(i) for i in range(gpus_n)], tp)
    if not groups:
        raise SelfplayError(f"generate.tensor_parallel_size={tp} is more than the node's {gpus_n} GPUs")
    slots = [Slot(node, {"CUDA_VISIBLE_DEVICES": g}) for node in nodes for g in groups]
    return Resources(
        kind, nodes, gpus_n, nodes[0], slots, len(nodes), gpus_n, isolation, environ["SLURM_JOB_ID"]
    )


def local_resources(cfg: Config) -> Resources:
    import torch

    return resources(cfg, dict(os.environ), torch.cuda.device_count(), sorted(os.sched_getaffinity(0)))
