"""One placement decision for the runner and the dry run: for local, gpus and slurm configs, the
commands a real run launches (captured at the process boundary, each run as the worker process it
starts would run it) are exactly the commands `loop.dry_run` prints, in the same order."""

import dataclasses

import pytest

from selfplay.config import ClusterConfig, GenerateConfig
from selfplay.loop import cluster, launch
from selfplay.loop.orchestrator import dry_run, run_loop, run_task
from selfplay.loop.placement import show
from tests.loop.fake_stages import CALLS, FAKE_TABLE, as_task, fake_config

RELAUNCH = ["python", "-m", "selfplay.run", "experiment=x"]
SLURM = {"SLURM_JOB_ID": "5", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "2"}


class Done:
    pid, returncode = 1, 0

    def wait(self):
        return 0

    def poll(self):
        return 0


def configs(tmp_path):
    local = fake_config(tmp_path / "local")
    yield "local-defaults", local, {}
    yield (
        "local-processes",
        dataclasses.replace(
            fake_config(tmp_path / "local2", shards=2, shard_workers=2, workers=False),
            train=dataclasses.replace(local.train, num_processes=2),
        ),
        {},
    )
    yield "local-isolated", fake_config(tmp_path / "iso", isolation="process", workers=False), {}
    gpus = dataclasses.replace(
        fake_config(tmp_path / "gpus", workers=False), cluster=ClusterConfig(kind="gpus", gpus_per_node=4)
    )
    yield "gpus", dataclasses.replace(gpus, generate=GenerateConfig(tensor_parallel_size=2)), {}
    yield (
        "slurm",
        dataclasses.replace(
            fake_config(tmp_path / "slurm", workers=False), cluster=ClusterConfig(kind="slurm")
        ),
        SLURM,
    )


@pytest.mark.parametrize("which", ["local-defaults", "local-processes", "local-isolated", "gpus", "slurm"])
def test_runner_launches_what_the_dry_run_prints(tmp_path, monkeypatch, which):
    name, cfg, env = next(c for c in configs(tmp_path) if c[0] == which)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(cluster, "_addresses", lambda name: ["10.0.0.1"])  # the fake nodes resolve
    launched: list[str] = []

    def fake_spawn(argv, extra_env, log_path):
        launched.append(show(argv, extra_env if "srun" not in argv else None))
        run_task(as_task(cfg, argv), FAKE_TABLE)  # what the started process would do
        return Done()

    monkeypatch.setattr(launch, "spawn", fake_spawn)
    CALLS.clear()
    run_loop(cfg, relaunch=RELAUNCH, table=FAKE_TABLE)
    printed = dry_run(cfg, RELAUNCH, FAKE_TABLE)[1:]
    commands = [line.rsplit(": ", 1)[1] for line in printed if "in the orchestrator process" not in line]
    assert launched == commands
    if which == "local-defaults":
        assert launched == [] and all("in the orchestrator process" in line for line in printed)
    if which in ("gpus", "slurm"):  # every stage is a process, generate/judge one shard per engine
        engines = {"gpus": 4 // 2, "slurm": 2 * 2}[which]
        assert len(commands) == len(printed)
        assert sum("task.shard=" in c for c in commands) == 2 * 2 * engines  # 2 iterations x 2 stages
    CALLS.clear()


def test_training_ranks_on_one_machine_rendezvous_on_loopback():
    from selfplay.loop.cluster import Resources
    from selfplay.loop.placement import train_launches

    res = Resources("local", ["here"], 0, "127.0.0.1", [], 1, 2, "inprocess")
    launches = train_launches(RELAUNCH, res, 3, 29611, "train")
    assert [env["RANK"] for _, env in launches] == ["0", "1"]
    for cmd, env in launches:
        assert cmd == [*RELAUNCH, "task.stage=train", "task.iteration=3"]
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "29611"
        assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == "2" and env["GLOO_SOCKET_IFNAME"] == "lo"


def test_rank_environment_from_a_launcher_or_slurm():
    from selfplay.training.distributed import rank_environment

    assert rank_environment({}) == {}
    assert rank_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == {
        "RANK": "3",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
    }
    slurm = {"SLURM_PROCID": "13", "SLURM_LOCALID": "5", "SLURM_NTASKS": "32", "SLURM_NNODES": "4"}
    assert rank_environment(slurm) == {
        "RANK": "13",
        "LOCAL_RANK": "5",
        "WORLD_SIZE": "32",
        "LOCAL_WORLD_SIZE": "8",
    }


def test_the_rendezvous_socket_listens_on_its_address_only():
    from selfplay.training.distributed import listening_socket
    from tests.sockets import listening_sockets

    sock = listening_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        import os

        assert ("0100007F", port) in listening_sockets(os.getpid())
    finally:
        sock.close()
