"""Cluster placement: SLURM host lists, resources per cluster kind, the dry-run commands of a 2-node
SLURM run checked line by line (devices bound by SLURM per step, never an exported
CUDA_VISIBLE_DEVICES; ranks, world size, main address from the SLURM variables), and the rendezvous
address checks."""

import shlex

import pytest

from selfplay.config import ClusterConfig, Config, GenerateConfig, LoopConfig, PromptsConfig
from selfplay.errors import SelfplayError
from selfplay.hostlist import expand_nodelist
from selfplay.loop import cluster
from selfplay.loop.cluster import rendezvous_address, resources
from selfplay.loop.orchestrator import dry_run

SLURM = {
    "SLURM_JOB_ID": "777",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_NNODES": "2",
    "SLURM_GPUS_ON_NODE": "4",
    "SLURM_CPUS_ON_NODE": "32",
}
RELAUNCH = ["python", "-m", "selfplay.run", "experiment=x"]


@pytest.mark.parametrize(
    "nodelist,hosts",
    [
        ("node1", ["node1"]),
        ("gpu[07-09]", ["gpu07", "gpu08", "gpu09"]),
        ("gpu[1,3-4],login2", ["gpu1", "gpu3", "gpu4", "login2"]),
        ("a[01-02]-ib,b7", ["a01-ib", "a02-ib", "b7"]),
        ("rack[1-2]-node[01-02]", ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]),
        ("r[1-2]n[1,3],x[9-10]", ["r1n1", "r1n3", "r2n1", "r2n3", "x9", "x10"]),
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


@pytest.mark.parametrize("workers", [True, False])
def test_two_node_slurm_dry_run_line_by_line(monkeypatch, workers):
    for k, v in SLURM.items():
        monkeypatch.setenv(k, v)
    cfg = slurm_config(workers=None if workers else False)  # null: workers on with cluster=slurm
    lines = dry_run(cfg, RELAUNCH)
    run = "python -m selfplay.run experiment=x"
    # 4 GPUs x 32 CPUs per node, 2 GPUs per engine: 2 engine steps per node, 16 CPUs each; SLURM binds
    # the GPUs of each step (--gpus-per-node ... --exact), nothing exports CUDA_VISIBLE_DEVICES.
    step = "srun --nodes=1 --ntasks=1 --nodelist={node} --gpus-per-node=2 --cpus-per-task=16 --exact --kill-on-bad-exit=1"
    nodes = ["gpu07", "gpu07", "gpu08", "gpu08"]
    expected = [
        "cluster=slurm nodes=2 (gpu07, gpu08) gpus_per_node=4 engines=4 (tensor_parallel_size=2) "
        "isolation=process",
    ]
    if workers:  # one long-lived step per engine slot, started once for the run
        expected += [
            f"worker {k} on {n}: {step.format(node=n)} {run} task.worker={k}" for k, n in enumerate(nodes)
        ]
    expected.append(f"iteration 0 prompts: {run} task.stage=prompts task.iteration=0")

    def sharded(stage):
        for shard, node in enumerate(nodes):
            if workers:
                expected.append(f"iteration 0 {stage}: shard {shard}/4 on worker {shard} ({node})")
            else:
                expected.append(
                    f"iteration 0 {stage}: shard {shard}/4 on {node}: {step.format(node=node)} {run} "
                    f"loop.shards=4 task.stage={stage} task.iteration=0 task.shard={shard}"
                )

    sharded("generate")
    sharded("judge")
    expected += [
        f"iteration 0 selection: {run} task.stage=selection task.iteration=0",
        "iteration 0 train: ranks 0-7 (world size 8, 2 node(s) x 4, rendezvous gpu07:a free port): srun "
        "--nodes=2 --ntasks=8 --ntasks-per-node=4 --gpus-per-node=4 --cpus-per-task=8 --exact --overlap "
        "--kill-on-bad-exit=1 --export=ALL,MASTER_ADDR=gpu07,MASTER_PORT=0 "
        "python -m selfplay.run experiment=x task.stage=train task.iteration=0",
    ]
    sharded("evaluate")
    assert lines == expected
    for line in lines[1:]:
        if ": " in line:
            shlex.split(line.split(": ", 1)[1])  # every command is valid shell
    assert not any("CUDA_VISIBLE_DEVICES" in line for line in lines)


def test_site_srun_arguments_and_a_fixed_port_reach_every_step(monkeypatch):
    for k, v in SLURM.items():
        monkeypatch.setenv(k, v)
    cfg = slurm_config()
    cfg.cluster.srun_args = ["--mem-per-gpu=64G"]
    cfg.cluster.master_port = 29600
    lines = [line for line in dry_run(cfg, RELAUNCH)[1:] if "srun" in line]
    assert len(lines) == 5  # the 4 workers' steps and training's
    assert all("--kill-on-bad-exit=1 --mem-per-gpu=64G " in line for line in lines)
    assert "MASTER_PORT=29600" in next(line for line in lines if "train" in line)


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


def test_resources_inside_a_step_use_the_jobs_node_count(monkeypatch):
    env = {**SLURM, "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "2"}  # what a step of the job sees
    res = resources(slurm_config(), env, 0, [0])
    assert res.nodes == ["gpu07", "gpu08"] and res.train_world_size == 8


def test_rendezvous_on_a_loopback_alias_of_a_multi_node_job_is_refused(monkeypatch):
    res = resources(slurm_config(), SLURM, 0, [0])
    names = {"gpu07": ["127.0.1.1"], "gpu08": ["10.0.0.8"]}
    monkeypatch.setattr(cluster, "_addresses", lambda name: names.get(name, []))
    with pytest.raises(SelfplayError, match="'gpu07' resolves to 127.0.1.1, a loopback address, on itself"):
        rendezvous_address(res)
    names["gpu07"] = []
    with pytest.raises(
        SelfplayError, match="'gpu07' .* does not resolve on this node; set cluster.master_addr"
    ):
        rendezvous_address(res)
    names.update(gpu07=["fe80::1", "10.0.0.7"])  # IPv6 first: rank 0 binds the IPv4 address
    assert rendezvous_address(res) == "10.0.0.7"
    names.update(gpu07=["127.0.0.1"], gpu08=["127.0.0.1"])  # every node on this machine (a local cluster)
    assert rendezvous_address(res) == "127.0.0.1"
