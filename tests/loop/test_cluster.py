"""Cluster placement: SLURM host lists, resources per cluster kind, and the dry-run commands of a
2-node SLURM run checked line by line (ranks, world size, main address from the SLURM variables)."""

import shlex

import pytest

from selfplay.config import ClusterConfig, Config, GenerateConfig, LoopConfig, PromptsConfig
from selfplay.errors import SelfplayError
from selfplay.loop.cluster import expand_nodelist, resources
from selfplay.loop.orchestrator import dry_run

SLURM = {
    "SLURM_JOB_ID": "777",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_NNODES": "2",
    "SLURM_GPUS_ON_NODE": "4",
}
RELAUNCH = ["python", "-m", "selfplay.run", "experiment=x"]


@pytest.mark.parametrize(
    "nodelist,hosts",
    [
        ("node1", ["node1"]),
        ("gpu[07-09]", ["gpu07", "gpu08", "gpu09"]),
        ("gpu[1,3-4],login2", ["gpu1", "gpu3", "gpu4", "login2"]),
        ("a[01-02]-ib,b7", ["a01-ib", "a02-ib", "b7"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def slurm_config(**loop):
    return Config(
        cluster=ClusterConfig(kind="slurm"),
        generate=GenerateConfig(tensor_parallel_size=2),
        prompts=PromptsConfig(per_iteration=96),
        loop=LoopConfig(iterations=1, **loop),
    )


def test_two_node_slurm_dry_run_line_by_line(monkeypatch):
    for k, v in SLURM.items():
        monkeypatch.setenv(k, v)
    lines = dry_run(slurm_config(), RELAUNCH)
    run = "python -m selfplay.run experiment=x"
    srun = "srun --nodes=1 --ntasks=1 --nodelist={node} --overlap --export=ALL,CUDA_VISIBLE_DEVICES={gpus}"
    expected = [
        "cluster=slurm nodes=2 (gpu07, gpu08) gpus_per_node=4 engines=4 (tensor_parallel_size=2) "
        "isolation=process",
        f"iteration 0 prompts: {run} task.stage=prompts task.iteration=0",
    ]
    for stage in ("generate", "judge"):
        for shard, (node, gpus) in enumerate(
            [("gpu07", "0,1"), ("gpu07", "2,3"), ("gpu08", "0,1"), ("gpu08", "2,3")]
        ):
            expected.append(
                f"iteration 0 {stage}: shard {shard}/4 on {node}: "
                f"{srun.format(node=node, gpus=gpus)} {run} loop.shards=4 task.stage={stage} "
                f"task.iteration=0 task.shard={shard}"
            )
    expected += [
        f"iteration 0 selection: {run} task.stage=selection task.iteration=0",
        "iteration 0 train: ranks 0-7 (world size 8, 2 node(s) x 4, rendezvous gpu07:29500): srun --nodes=2 "
        "--ntasks-per-node=4 --overlap --kill-on-bad-exit=1 --export=ALL,MASTER_ADDR=gpu07,MASTER_PORT=29500 "
        "python -m selfplay.run experiment=x task.stage=train task.iteration=0",
        f"iteration 0 evaluate: {run} task.stage=evaluate task.iteration=0",
    ]
    assert lines == expected
    for line in lines[1:]:
        shlex.split(line.split(": ", 1)[1])  # every command is valid shell


def test_slurm_without_its_variables(monkeypatch):
    for k in SLURM:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(
        SelfplayError, match="cluster=slurm but SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_NNODES not set"
    ):
        resources(slurm_config(), {}, 0, [0, 1])
    with pytest.raises(SelfplayError, match="set cluster.gpus_per_node"):
        resources(slurm_config(), {k: v for k, v in SLURM.items() if k != "SLURM_GPUS_ON_NODE"}, 0, [0, 1])


def test_gpus_cluster_on_a_machine_without_gpus():
    with pytest.raises(SelfplayError, match="cluster=gpus but no CUDA device is visible"):
        resources(Config(cluster=ClusterConfig(kind="gpus")), {}, 0, [0, 1])


def test_single_node_gpus_groups_by_tensor_parallel_size():
    res = resources(
        Config(cluster=ClusterConfig(kind="gpus"), generate=GenerateConfig(tensor_parallel_size=2)),
        {"CUDA_VISIBLE_DEVICES": "2,3,4,5,6,7"},
        6,
        [0],
    )
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in res.slots] == ["2,3", "4,5", "6,7"]
    assert (res.train_world_size, res.isolation) == (6, "process")


def test_local_cpu_workers_get_their_own_cores():
    res = resources(Config(loop=LoopConfig(shard_workers=2)), {}, 0, [0, 1, 2, 3])
    assert [s.env["VLLM_CPU_OMP_THREADS_BIND"] for s in res.slots] == ["0-1", "2-3"]
    assert res.isolation == "in_process"
