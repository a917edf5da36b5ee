"""What a run has to work with, for cluster=local|gpus|slurm: nodes, GPUs and CPUs per node, one slot
per vLLM engine (its node and what binds its devices), training processes, the rendezvous address.
Pure functions of the config and the environment (`local_resources` reads this machine's), so placement
and `loop.dry_run` are testable anywhere.

Devices are bound by whoever owns them: on one machine we give each slot its own
`CUDA_VISIBLE_DEVICES` (nothing else hands out GPUs there); on SLURM the scheduler binds them (each
step asks for its GPUs with `--gpus-per-node ... --exact`, and SLURM sets `CUDA_VISIBLE_DEVICES`):
SLURM overwrites an exported `CUDA_VISIBLE_DEVICES` with all of the job's GPUs, so exporting one
would put every engine of a node on its first GPU."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field

from selfplay.config import Config
from selfplay.errors import SelfplayError
from selfplay.hostlist import expand_nodelist


@dataclass(frozen=True)
class Slot:
    """Where one shard worker (one vLLM engine) runs: a node (None = here), environment to add (devices
    and threads on one machine), and on SLURM the GPUs and CPUs its step asks the scheduler for."""

    node: str | None
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    cpus: int = 0


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
    cpus_per_node: int = 0
    """CPUs SLURM gave the job on each node (0 = not known / not SLURM)."""
    srun_args: tuple[str, ...] = ()

    @property
    def train_world_size(self) -> int:
        return self.train_nodes * self.train_procs_per_node

    @property
    def train_cpus(self) -> int:
        """CPUs per training rank on SLURM (the node's CPUs shared among its ranks)."""
        return max(1, self.cpus_per_node // max(1, self.train_procs_per_node)) if self.cpus_per_node else 0

    def rank_node(self, rank: int) -> str:
        """The node of a training rank (SLURM places ranks node by node, --ntasks-per-node at a time)."""
        return self.nodes[min(rank // max(1, self.train_procs_per_node), len(self.nodes) - 1)]


def hostnames(nodelist: str) -> list[str]:
    """The job's host names: `scontrol show hostnames` where SLURM's tools are installed (SLURM's own
    reading of its syntax), else `expand_nodelist`."""
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(
                ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30
            )
            if out.returncode == 0 and out.stdout.split():
                return out.stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return expand_nodelist(nodelist)


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


def _count(raw: str | None) -> int | None:
    """A SLURM count such as "8", "gpu:4" or "8(x2)" as a number (None when absent or unreadable)."""
    if not raw:
        return None
    digits = raw.rsplit(":", 1)[-1].split("(", 1)[0]
    return int(digits) if digits.isdigit() else None


def resources(cfg: Config, environ: dict[str, str], cuda_devices: int, cores: list[int]) -> Resources:
    """Engines, nodes and training processes for this config on this machine / allocation."""
    kind, tp = str(cfg.cluster.kind), cfg.generate.tensor_parallel_size
    isolation = str(cfg.loop.isolation)
    if isolation == "auto":
        isolation = "in_process" if kind == "local" else "process"
    host = socket.gethostname()
    addr = cfg.cluster.master_addr or "127.0.0.1"
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
        return Resources(kind, [host], cuda_devices, addr, slots, 1, cfg.train.num_processes, isolation)
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
        return Resources(kind, [host], gpus_n, addr, slots, 1, gpus_n, isolation)
    return slurm_resources(cfg, environ, isolation)


def slurm_resources(cfg: Config, environ: dict[str, str], isolation: str) -> Resources:
    tp = cfg.generate.tensor_parallel_size
    missing = [v for v in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NNODES") if not environ.get(v)]
    if missing:
        raise SelfplayError(
            f"cluster=slurm but {', '.join(missing)} not set: run inside an allocation "
            "(sbatch launch/slurm.sbatch or salloc)"
        )
    nodes = hostnames(environ["SLURM_JOB_NODELIST"])
    count = environ.get("SLURM_JOB_NUM_NODES") or environ["SLURM_NNODES"]  # the job's, not a step's
    if len(nodes) != int(count):
        raise SelfplayError(
            f"SLURM_JOB_NODELIST={environ['SLURM_JOB_NODELIST']} names {len(nodes)} nodes but the job has "
            f"{count} (SLURM_JOB_NUM_NODES / SLURM_NNODES)"
        )
    gpus_n = cfg.cluster.gpus_per_node
    if gpus_n is None:
        gpus_n = _count(environ.get("SLURM_GPUS_ON_NODE")) or _count(environ.get("SLURM_GPUS_PER_NODE"))
        if not gpus_n:
            raise SelfplayError(
                "cluster=slurm: set cluster.gpus_per_node or request GPUs (sbatch --gpus-per-node=G)"
            )
    engines = gpus_n // tp
    if not engines:
        raise SelfplayError(f"generate.tensor_parallel_size={tp} is more than the node's {gpus_n} GPUs")
    cpus = _count(environ.get("SLURM_CPUS_ON_NODE")) or 0
    per_slot = max(1, cpus // engines) if cpus else 0
    slots = [Slot(node, {}, tp, per_slot) for node in nodes for _ in range(engines)]
    return Resources(
        "slurm",
        nodes,
        gpus_n,
        cfg.cluster.master_addr or nodes[0],
        slots,
        len(nodes),
        gpus_n,
        isolation,
        environ["SLURM_JOB_ID"],
        cpus,
        tuple(cfg.cluster.srun_args),
    )


def local_resources(cfg: Config) -> Resources:
    import torch

    return resources(cfg, dict(os.environ), torch.cuda.device_count(), sorted(os.sched_getaffinity(0)))


def _addresses(name: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)]
    except OSError:
        return []


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def rendezvous_address(res: Resources) -> str:
    """The address rank 0 binds and every rank connects to, as an IP address: the main node's name
    resolved here (the orchestrator runs on it), IPv4 first. Refused in one line when it does not
    resolve, or when it is a loopback address while other nodes of the job are not (the Debian
    "127.0.1.1 <hostname>" line: rank 0 would listen where no other node can reach it)."""
    found = _addresses(res.main_addr)
    if not found:
        raise SelfplayError(
            f"cluster: the rendezvous host '{res.main_addr}' (the first node of the job) does not resolve on "
            "this node; set cluster.master_addr=<its address on the cluster network>"
        )
    chosen = next((a for a in found if ":" not in a), found[0])  # IPv4 where there is one
    if res.kind == "slurm" and _loopback(chosen) and res.train_nodes > 1:
        elsewhere = [n for n in res.nodes[1:] if any(not _loopback(a) for a in _addresses(n))]
        if elsewhere:
            raise SelfplayError(
                f"cluster: the rendezvous host '{res.main_addr}' resolves to {chosen}, a loopback address, on "
                f"itself, while {elsewhere[0]} is another machine: ranks there could never reach rank 0. Set "
                f"cluster.master_addr=<{res.main_addr}'s address on the cluster network> (or remove the "
                f"'127.0.1.1 {res.main_addr}' line of its /etc/hosts)"
            )
    return chosen
