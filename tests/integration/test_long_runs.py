"""What long runs at scale need, on the tiny policy: a killed training stage resumes from its newest
checkpoint and ends with the weights of an uninterrupted run; a hung shard process is killed after
`loop.hang_timeout` seconds of silence, naming the shard, the silence and its log."""

import json
import os
import signal
import time

import pytest
from safetensors.torch import load_file

from tests.integration.cli import run_cli, start_cli

TRAIN = (
    "debug=tiny",
    "generate.backend=hf",
    "loop.iterations=1",
    "evaluate.enabled=false",
    "train.epochs=20",
    "train.save_steps=10",
    "train.save_total_limit=2",
)


def weights(run_dir):
    return load_file(str(run_dir / "iter_000" / "train" / "model" / "model.safetensors"))


def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    reference = run_cli(*TRAIN, f"loop.output_dir={tmp_path / 'ref'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    out = tmp_path / "killed"
    proc = start_cli(*TRAIN, f"loop.output_dir={out}", log=tmp_path / "killed.log")
    checkpoint = (
        out / "default" / "iter_000" / ".train.partial" / "trainer" / "checkpoint-10" / "trainer_state.json"
    )
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its first checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # inside training, after a checkpoint
    proc.wait()
    assert not (out / "default" / "iter_000" / "train" / "_SUCCESS").exists()
    rerun = run_cli(*TRAIN, f"loop.output_dir={out}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stderr and "checkpoint-" in rerun.stderr
    ours, theirs = weights(out / "default"), weights(tmp_path / "ref" / "default")
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)
    # The statistics cover the whole training, not the steps after the checkpoint.
    stats = [
        json.loads((d / "default" / "iter_000" / "train" / "_SUCCESS").read_text())["stats"]
        for d in (out, tmp_path / "ref")
    ]
    assert stats[0]["resumed_from_step"] >= 10
    assert abs(stats[0]["train_loss"] - stats[1]["train_loss"]) < 1e-3 * max(1.0, abs(stats[1]["train_loss"]))
    history = [
        [
            json.loads(line)
            for line in (d / "default" / "iter_000" / "train" / "history.jsonl").read_text().splitlines()
        ]
        for d in (out, tmp_path / "ref")
    ]
    per_step = [[(h["step"], h.get("num_tokens")) for h in hist if "loss" in h] for hist in history]
    assert per_step[0] == per_step[1]  # every step once, tokens counted on from the checkpoint
    train_dir = out / "default" / "iter_000" / "train"
    assert not (train_dir / "trainer").exists()  # checkpoints deleted when the stage finished
    assert not (train_dir / "model" / "training_args.bin").exists()


@pytest.mark.parametrize("workers", [True, False], ids=["worker", "shard-process"])
def test_a_hung_shard_process_is_killed_and_named(tmp_path, workers):
    start = time.time()
    proc = run_cli(
        "debug=tiny",
        "generate.backend=hf",
        "loop.shard_workers=1",
        f"loop.workers={str(workers).lower()}",
        "loop.hang_timeout=15",
        "judge.rule=tests.integration.rules:sleepy",
        f"loop.output_dir={tmp_path}",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    killed = "killed on worker 0: silent for" if workers else "killed: silent for"
    assert f"iteration 0 judge: 1 shard(s) failed: shard 0/1 {killed}" in last, last
    log_name = "worker-000.log" if workers else "iter_000-judge-shard-00000-of-00001.log"
    assert "loop.hang_timeout=15s" in last and log_name in last
    assert time.time() - start < 200  # not the judge's 600 s
    assert not (tmp_path / "default" / "iter_000" / "judge" / "_SUCCESS").exists()
