"""Run inside a SLURM job by the binding test: builds the steps a run with cluster=slurm launches (the
product's own resources and command builders), runs each with this file as its program, all engine
steps at once, then the training step, and writes what every step saw as JSON.

    python tests/integration/slurm_probe.py drive <out.json> [overrides...]   (in the batch step)
    python tests/integration/slurm_probe.py probe ...                          (each step's task)
"""

import json
import os
import subprocess
import sys
import time


def probe() -> None:
    keys = ("SLURMD_NODENAME", "SLURM_STEP_ID", "SLURM_PROCID", "SLURM_LOCALID", "CUDA_VISIBLE_DEVICES",
            "SLURM_STEP_GPUS", "SLURM_CPUS_PER_TASK")  # fmt: skip
    start = time.time()
    time.sleep(3)  # long enough for every engine step to run at the same time
    print(
        json.dumps({**{k: os.environ.get(k) for k in keys}, "start": start, "end": time.time()}), flush=True
    )


def drive(out: str, overrides: list[str]) -> None:
    from hydra import compose, initialize_config_module

    from selfplay.loop.cluster import local_resources
    from selfplay.loop.placement import shard_command, train_launches
    from selfplay.run import to_config

    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        cfg = to_config(compose(config_name="config", overrides=["cluster=slurm", *overrides]))
    res = local_resources(cfg)
    me = [sys.executable, os.path.abspath(__file__), "probe"]
    shards = [
        shard_command(me, slot, "generate", 0, i, len(res.slots), res) for i, slot in enumerate(res.slots)
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for cmd in shards]
    engines = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    ((cmd, _),) = train_launches(me, res, 0, 0, "train")
    ranks = [
        json.loads(line)
        for line in subprocess.run(cmd, stdout=subprocess.PIPE, text=True).stdout.splitlines()
    ]
    with open(out, "w") as f:
        json.dump({"engines": engines, "ranks": ranks, "shard_commands": shards, "train_command": cmd}, f)


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe()
    else:
        drive(sys.argv[2], sys.argv[3:])
