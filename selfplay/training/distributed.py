"""The training processes' process group, joined without torchrun and without a listener on every
interface: rank 0 opens the rendezvous store on a socket bound to `MASTER_ADDR` only (127.0.0.1 on one
machine, the first node's cluster address on SLURM) and the other ranks connect to it. torch's own
store (torchrun's, or `init_process_group("env://")`) listens on all interfaces.

The port: `MASTER_PORT` when the config fixes one (cluster.master_port), else 0: rank 0 binds a free
port and publishes it in a file of the stage's folder that the other ranks read (the run directory is
shared by every node of a job), so two jobs never collide on a fixed port. Every rank announces itself
in the store; rank 0 waits `cluster.rendezvous_timeout` seconds for all of them and then fails naming
the ranks that never arrived and their nodes, instead of the store's silent 30-minute wait.

Each rank's place comes from the launcher's environment: RANK / LOCAL_RANK / WORLD_SIZE (set by our
single-node launcher, or by torchrun when a user launches the stage by hand) or SLURM's SLURM_PROCID /
SLURM_LOCALID / SLURM_NTASKS (one `srun` task per rank). They are copied into RANK / LOCAL_RANK /
WORLD_SIZE / LOCAL_WORLD_SIZE so that accelerate, TRL and DeepSpeed see the same world."""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from pathlib import Path

from selfplay.errors import SelfplayError


def rank_environment(env: dict[str, str] | os._Environ) -> dict[str, str]:
    """RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE from a launcher's environment (empty when none
    set them: one process)."""
    if "RANK" in env and "WORLD_SIZE" in env:
        world = env["WORLD_SIZE"]
        return {
            "RANK": env["RANK"],
            "LOCAL_RANK": env.get("LOCAL_RANK", env["RANK"]),
            "WORLD_SIZE": world,
            "LOCAL_WORLD_SIZE": env.get("LOCAL_WORLD_SIZE", world),
        }
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        nodes = max(1, int(env.get("SLURM_NNODES", "1")))
        return {
            "RANK": env["SLURM_PROCID"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
            "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_WORLD_SIZE": str(int(env["SLURM_NTASKS"]) // nodes),
        }
    return {}


def node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def cuda_device(local_rank: int, visible: int) -> int:
    """The GPU a rank takes: its local rank among the node's GPUs it sees (a step that binds one GPU
    per task shows it as device 0)."""
    return local_rank if visible > 1 else 0


def join_process_group(
    on_cuda: bool, rendezvous_file: Path | None = None, timeout: float = 300.0
) -> tuple[int, int]:
    """(rank, world size) of this training process; with more than one process, the default process
    group is initialised here (nccl on GPUs, gloo on CPUs) through a store bound to MASTER_ADDR only."""
    import torch
    import torch.distributed as dist

    os.environ.update(rank_environment(os.environ))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or dist.is_initialized():
        return rank, world
    if on_cuda:
        torch.cuda.set_device(cuda_device(int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()))
    backend = "nccl" if on_cuda else "gloo"
    if "TORCHELASTIC_RUN_ID" in os.environ:  # launched by hand under torchrun: its agent holds the store
        dist.init_process_group(backend)
        return rank, world
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or port is None:
        raise SelfplayError(
            f"train: WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set (launch the train stage "
            "through python -m selfplay.run, which sets them)"
        )
    store = rendezvous(host, int(port), rank, world, rendezvous_file, timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    return rank, world


def rendezvous(host: str, port: int, rank: int, world: int, published: Path | None, timeout: float):
    """The store every rank shares, once all `world` ranks have joined it."""
    import torch.distributed as dist

    wait = datetime.timedelta(seconds=timeout)
    if rank == 0:
        sock = listening_socket(host, port)
        bound = sock.getsockname()[1]
        if port == 0:
            publish(published, host, bound)
        store = dist.TCPStore(
            host, bound, world, is_master=True, timeout=wait, wait_for_workers=False,
            master_listen_fd=sock.detach(),
        )  # fmt: skip
    else:
        if port == 0:
            port = published_port(published, host, timeout)
        try:
            store = dist.TCPStore(host, port, world, is_master=False, timeout=wait)
        except (RuntimeError, dist.DistStoreError) as err:
            raise SelfplayError(
                f"train: rank {rank} on {node_name()} could not reach the rendezvous store of rank 0 at "
                f"{host}:{port} within cluster.rendezvous_timeout={timeout:g}s ({str(err).splitlines()[0]}); "
                "is rank 0 running (its log), and is that address reachable from this node?"
            ) from None
    store.set(f"selfplay/arrived/{rank}", node_name())
    if rank == 0:
        wait_for_ranks(store, world, timeout)
    return store


def wait_for_ranks(store, world: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while True:
        missing = [r for r in range(world) if not store.check([f"selfplay/arrived/{r}"])]
        if not missing:
            return
        if time.time() > deadline:
            shown = ", ".join(map(str, missing[:16])) + (", ..." if len(missing) > 16 else "")
            raise SelfplayError(
                f"train: {len(missing)} of {world} training ranks never joined the rendezvous within "
                f"cluster.rendezvous_timeout={timeout:g}s: rank(s) {shown}"
                f"{expected_nodes(missing)}; see their logs (a rank that cannot start, or cannot reach "
                f"{os.environ.get('MASTER_ADDR')})"
            )
        time.sleep(0.2)


def expected_nodes(ranks: list[int]) -> str:
    """ " (on node2, node3)": where SLURM placed these ranks, when under SLURM."""
    nodelist, per_node = os.environ.get("SLURM_JOB_NODELIST"), os.environ.get("LOCAL_WORLD_SIZE")
    if not nodelist or not per_node:
        return ""
    from selfplay.hostlist import expand_nodelist

    nodes = expand_nodelist(nodelist)
    names = sorted({nodes[min(r // int(per_node), len(nodes) - 1)] for r in ranks})
    return f" (on {', '.join(names)})"


def publish(path: Path | None, host: str, port: int) -> None:
    if path is None:
        raise SelfplayError("train: MASTER_PORT=0 needs the rendezvous file of the stage (internal)")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid(), "node": node_name()}))
    os.replace(tmp, path)


def published_port(path: Path | None, host: str, timeout: float) -> int:
    """The port rank 0 published, waiting for it up to `timeout` seconds."""
    if path is None:
        raise SelfplayError("train: MASTER_PORT=0 needs the rendezvous file of the stage (internal)")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return int(json.loads(path.read_text())["port"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise SelfplayError(
        f"train: rank 0 did not publish its rendezvous port in {path} within "
        f"cluster.rendezvous_timeout={timeout:g}s (see rank 0's log, the stage's log)"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on `host`'s address only (not on every interface); IPv4 first."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as err:
        raise SelfplayError(
            f"train: cannot open the rendezvous store on {host}:{port} ({err.strerror or err}); "
            + ("set cluster.master_port to a free port, or null" if port else "set cluster.master_addr")
        ) from None
    return sock
