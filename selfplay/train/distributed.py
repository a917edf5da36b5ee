"""The training processes' process group, joined without torchrun and without a listener on every
interface: rank 0 opens the rendezvous store on a socket bound to `MASTER_ADDR` only (127.0.0.1 on one
machine, the first node's cluster address on SLURM) and the other ranks connect to it. torch's own
store (torchrun's, or `init_process_group("env://")`) listens on all interfaces.

Each rank's place comes from the launcher's environment: RANK / LOCAL_RANK / WORLD_SIZE (set by our
single-node launcher, or by torchrun when a user launches the stage by hand) or SLURM's SLURM_PROCID /
SLURM_LOCALID / SLURM_NTASKS (one `srun` task per rank). They are copied into RANK / LOCAL_RANK /
WORLD_SIZE / LOCAL_WORLD_SIZE so that accelerate, TRL and DeepSpeed see the same world."""

from __future__ import annotations

import datetime
import os
import socket

from selfplay.errors import SelfplayError

STORE_TIMEOUT = datetime.timedelta(minutes=30)  # ranks of a large job may start minutes apart


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


def join_process_group(on_cuda: bool) -> tuple[int, int]:
    """(rank, world size) of this training process; with more than one process, the default process
    group is initialised here (nccl on GPUs, gloo on CPUs) through a store bound to MASTER_ADDR only."""
    import torch
    import torch.distributed as dist

    os.environ.update(rank_environment(os.environ))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or dist.is_initialized():
        return rank, world
    if on_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if on_cuda else "gloo"
    if "TORCHELASTIC_RUN_ID" in os.environ:  # launched by hand under torchrun: its agent holds the store
        dist.init_process_group(backend)
        return rank, world
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or not port:
        raise SelfplayError(
            f"train: WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set (launch the train stage "
            "through python -m selfplay.run, which sets them)"
        )
    if rank == 0:
        store = dist.TCPStore(
            host,
            int(port),
            world,
            is_master=True,
            timeout=STORE_TIMEOUT,
            master_listen_fd=listening_socket(host, int(port)).detach(),
        )
    else:
        store = dist.TCPStore(host, int(port), world, is_master=False, timeout=STORE_TIMEOUT)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    return rank, world


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on `host`'s address only (not on every interface)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as err:
        raise SelfplayError(
            f"train: cannot open the rendezvous store on {host}:{port} ({err.strerror or err}); "
            "set cluster.master_port to a free port"
        ) from None
    return sock
