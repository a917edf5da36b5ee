"""One placement decision for the runner and the dry run: for local, gpus and slurm configs, the
commands a real run launches (captured at the process boundary, each run as the worker process it
starts would run it) are exactly the commands `loop.dry_run` prints, in the same order."""

import dataclasses

import pytest

from selfplay.config import ClusterConfig, GenerateConfig
from selfplay.loop import launch
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
            fake_config(tmp_path / "local2", shards=2, shard_workers=2),
            train=dataclasses.replace(local.train, num_processes=2),
        ),
        {},
    )
    yield "local-isolated", fake_config(tmp_path / "iso", isolation="process"), {}
    gpus = dataclasses.replace(
        fake_config(tmp_path / "gpus"), cluster=ClusterConfig(kind="gpus", gpus_per_node=4)
    )
    yield "gpus", dataclasses.replace(gpus, generate=GenerateConfig(tensor_parallel_size=2)), {}
    yield (
        "slurm",
        dataclasses.replace(fake_config(tmp_path / "slurm"), cluster=ClusterConfig(kind="slurm")),
        SLURM,
    )


@pytest.mark.parametrize("which", ["local-defaults", "local-processes", "local-isolated", "gpus", "slurm"])
def test_runner_launches_what_the_dry_run_prints(tmp_path, monkeypatch, which):
    name, cfg, env = next(c for c in configs(tmp_path) if c[0] == which)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(launch, "free_port", lambda: cfg.cluster.master_port)
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
