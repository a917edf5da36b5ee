"""The training ranks' rendezvous: rank 0 binds a free port on MASTER_ADDR and publishes it in the
stage's folder (no fixed port); the others read it and join; ranks that never arrive are named
within cluster.rendezvous_timeout instead of a silent 30-minute wait; every rank records its node."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from selfplay.errors import SelfplayError
from selfplay.training.distributed import cuda_device, rendezvous

JOIN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from selfplay.training.distributed import rendezvous
    store = rendezvous("127.0.0.1", 0, int(sys.argv[1]), 2, Path(sys.argv[2]), float(sys.argv[3]))
    print("joined", store.get("selfplay/arrived/0").decode())
    """
)


def test_two_ranks_meet_on_a_published_free_port(tmp_path):
    published = tmp_path / "_rendezvous.json"
    other = subprocess.Popen(
        [sys.executable, "-c", JOIN, "1", str(published), "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SLURMD_NODENAME": "node2"},
    )
    try:
        store = rendezvous("127.0.0.1", 0, 0, 2, published, 60)
        port = json.loads(published.read_text())["port"]
        assert port > 0 and store.get("selfplay/arrived/1") == b"node2"
        out, _ = other.communicate(timeout=60)
        assert other.returncode == 0 and out.strip().startswith("joined"), out
    finally:
        other.kill()


def test_ranks_that_never_arrive_are_named_with_their_nodes(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[1-2]")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(
        SelfplayError,
        match=r"3 of 4 training ranks never joined the rendezvous within cluster.rendezvous_timeout=1s: "
        r"rank\(s\) 1, 2, 3 \(on node1, node2\)",
    ):
        rendezvous("127.0.0.1", 0, 0, 4, tmp_path / "_rendezvous.json", 1.0)


def test_a_rank_without_a_published_port_fails_naming_the_file(tmp_path):
    with pytest.raises(
        SelfplayError, match="rank 0 did not publish its rendezvous port in .*_rendezvous.json"
    ):
        rendezvous("127.0.0.1", 0, 1, 2, tmp_path / "_rendezvous.json", 0.5)


def test_a_rank_that_cannot_reach_rank_0_names_the_address(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        SelfplayError,
        match=f"rank 1 on .* could not reach the rendezvous store of rank 0 at 127.0.0.1:{port}",
    ):
        rendezvous("127.0.0.1", port, 1, 2, None, 1.0)


def test_a_rank_takes_its_local_gpu_or_the_one_it_sees():
    assert [cuda_device(r, 4) for r in range(4)] == [0, 1, 2, 3]
    assert cuda_device(3, 1) == 0  # a step that binds one GPU per task shows it as device 0
