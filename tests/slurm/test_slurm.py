"""The cluster path on a real SLURM cluster (scripts/local_slurm.sh: 2 nodes x 4 fake GPUs on this
machine; compute on the CPU): devices bound by SLURM per step, the documented sbatch command run to
the end on 2 nodes with records equal to a local run of the same maths, and requeues (scontrol
requeue, SIGTERM to the batch step, the time-limit signal, a requeue inside training) that resume
where the run stopped, also on another first node. Skipped, with the reason, where no cluster can
start (no root, no apt). Run with `pytest -m slurm` (CI starts the cluster first)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.integration.cli import run_cli
from tests.integration.runs import assert_same_records
from tests.integration.slurm import REPO, Cluster, start_cluster, stop_cluster

pytestmark = pytest.mark.vllm

SBATCH = str(REPO / "launch" / "slurm.sbatch")
TINY = ("debug=tiny", "generate.backend=vllm", "loop.progress=false")
# One fake GPU per engine step and one CPU per GPU (--oversubscribe: the local cluster's nodes are
# shared by the jobs of the tests; a real job would take its nodes --exclusive, as the script does).
ONE_GPU_PER_NODE = ("--nodes=2", "--gpus-per-node=1", "--oversubscribe", "--cpus-per-gpu=1")
ONE_NODE_TWO_GPUS = ("--nodes=1", "--gpus-per-node=2", "--oversubscribe", "--cpus-per-gpu=1")


@pytest.fixture(scope="session")
def slurm():
    cluster, started, why = start_cluster()
    if cluster is None:
        pytest.skip(why)
    yield cluster
    if started:
        stop_cluster()


def submit(slurm: Cluster, out: Path, resources: tuple[str, ...], *overrides: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    return slurm.sbatch(
        *resources, f"--output={out}/job-%j.out", SBATCH, *TINY, f"loop.output_dir={out}", *overrides
    )


def stats(run_dir: Path, t: int, stage: str) -> dict:
    return json.loads((run_dir / f"iter_{t:03d}" / stage / "_SUCCESS").read_text())["stats"]


def same_weights(a: Path, b: Path, iterations: int) -> None:
    for t in range(iterations):
        ours = load_file(str(a / f"iter_{t:03d}" / "train" / "model" / "model.safetensors"))
        theirs = load_file(str(b / f"iter_{t:03d}" / "train" / "model" / "model.safetensors"))
        assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours), t


@pytest.fixture(scope="session")
def two_node_run(slurm, tmp_path_factory):
    """The documented command on 2 nodes x 1 GPU: 2 shards, 2 training ranks (one per node)."""
    out = tmp_path_factory.mktemp("two_node")
    start = time.time()
    job = submit(slurm, out, ONE_GPU_PER_NODE)
    info = slurm.finish(job)
    return out / "default", job, info, time.time() - start


@pytest.fixture(scope="session")
def local_twin(tmp_path_factory):
    """The same maths with cluster=local: 2 shards, 2 training ranks on this machine."""
    out = tmp_path_factory.mktemp("local_twin")
    proc = run_cli(
        *TINY, "loop.shards=2", "loop.shard_workers=2", "train.num_processes=2", f"loop.output_dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "default"


def test_every_engine_and_training_step_gets_its_own_gpus_from_slurm(slurm, tmp_path):
    """8 engine steps (2 nodes x 4 GPUs, one GPU each) at once, then the training step: every engine
    step sees one GPU that no other step of its node sees; the training step's ranks see their node's
    GPUs; nothing is exported by us (SLURM overwrites an exported CUDA_VISIBLE_DEVICES)."""
    out = tmp_path / "probe.json"
    job = slurm.sbatch(
        "--nodes=2", "--gpus-per-node=4", "--exclusive", f"--output={tmp_path}/job-%j.out",
        "--wrap", f"{slurm.env['SELFPLAY_VENV']}/bin/python {REPO}/tests/integration/slurm_probe.py drive {out}",
    )  # fmt: skip
    slurm.finish(job, timeout=300)
    seen = json.loads(out.read_text())
    engines = seen["engines"]
    assert len(engines) == 8 and not any(
        "CUDA_VISIBLE_DEVICES" in " ".join(c) for c in seen["shard_commands"]
    )
    for node in ("node1", "node2"):
        mine = [e for e in engines if e["SLURMD_NODENAME"] == node]
        devices = [e["SLURM_STEP_GPUS"] for e in mine]
        assert len(mine) == 4 and sorted(devices) == ["0", "1", "2", "3"], mine  # disjoint, one each
        assert all(e["CUDA_VISIBLE_DEVICES"] == e["SLURM_STEP_GPUS"] for e in mine)
        assert all(e["SLURM_CPUS_PER_TASK"] == "1" for e in mine)
    assert max(e["start"] for e in engines) < min(e["end"] for e in engines)  # they ran side by side
    ranks = sorted(seen["ranks"], key=lambda r: int(r["SLURM_PROCID"]))
    assert [r["SLURM_PROCID"] for r in ranks] == [str(i) for i in range(8)]
    assert [r["SLURMD_NODENAME"] for r in ranks] == ["node1"] * 4 + ["node2"] * 4
    assert all(r["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" for r in ranks)  # the step owns its nodes' GPUs
    assert [r["SLURM_LOCALID"] for r in ranks] == ["0", "1", "2", "3"] * 2  # each takes its local GPU


def test_two_node_run_equals_a_local_run_of_the_same_maths(two_node_run, local_twin):
    run_dir, job, info, seconds = two_node_run
    log = (run_dir.parent / f"job-{job}.out").read_text()
    assert "selfplay: finished with exit code 0" in log, log[-3000:]
    for t in range(2):
        for stage in ("generate", "judge"):
            placed = stats(run_dir, t, stage)["placement"]
            assert [(p["shard"], p["node"]) for p in placed] == [(0, "node1"), (1, "node2")]
            assert all(p["slurm_job"] == job for p in placed)
        ranks = stats(run_dir, t, "train")["placement"]
        assert [(r["rank"], r["node"]) for r in ranks] == [(0, "node1"), (1, "node2")]
        assert len({r["slurm_step"] for r in ranks}) == 1  # one step, a task per rank
    # Same shards, same world size, same seeds: every record and every weight equal (gloo sums the
    # two ranks' gradients the same way whether the ranks share a machine or not).
    assert_same_records(run_dir, local_twin, 2)
    same_weights(run_dir, local_twin, 2)
    print(f"two-node SLURM run: {seconds:.0f}s")


def resumed_alike(slurm: Cluster, out: Path, job: str, reference: Path, before: dict[str, str]) -> None:
    """The requeued job finished, ran twice, redid nothing finished before the requeue, and wrote
    what the uninterrupted reference wrote."""
    info = slurm.finish(job)
    assert int(info["Restarts"]) >= 1, info
    run_dir = out / "default"
    log = (out / f"job-{job}.out").read_text()
    assert "selfplay: job" in log and " run 1 on " in log, log[-3000:]
    for marker, text in before.items():
        assert (run_dir / marker).read_text() == text, f"{marker} was redone"
    assert_same_records(run_dir, reference, 2)
    same_weights(run_dir, reference, 2)


def finished_markers(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): p.read_text() for p in run_dir.glob("iter_*/*/_SUCCESS")}


def test_scontrol_requeue_after_a_hard_kill_resumes_on_another_first_node(slurm, tmp_path, two_node_run):
    """The batch script and the orchestrator die by SIGKILL (as on a node that fails: no signal to
    handle, nothing cleaned up), the job is requeued: the dead run's lock stays behind, and the
    requeued job takes it over on its new first node (no wait for the lock to go stale)."""
    reference = two_node_run[0]
    job = submit(slurm, tmp_path, ONE_NODE_TWO_GPUS)
    lock = tmp_path / "default" / ".lock"
    slurm.wait_until(job, tmp_path / "default" / "iter_001" / ".generate.partial")
    holder = json.loads(lock.read_text())
    assert (holder["slurm_job"], holder["slurm_restart"]) == (job, 0)
    first = slurm.job(job)["BatchHost"]
    stat = Path(f"/proc/{holder['pid']}/stat").read_text()
    batch_script = int(stat[stat.rindex(")") + 2 :].split()[1])
    os.kill(batch_script, signal.SIGKILL)
    os.kill(holder["pid"], signal.SIGKILL)
    slurm.wait_for(job, {"FAILED", "COMPLETED", "CANCELLED"}, timeout=120)
    slurm.run("scontrol", "requeue", job)
    before = finished_markers(tmp_path / "default")
    slurm.release(job, exclude=first)
    assert json.loads(lock.read_text())["pid"] == holder["pid"]  # left behind by the killed run
    resumed_alike(slurm, tmp_path, job, reference, before)
    assert "taking over the stale lock" in (tmp_path / f"job-{job}.out").read_text()
    assert slurm.job(job)["BatchHost"] != first
    placed = stats(tmp_path / "default", 1, "judge")["placement"]  # after the requeue: the other node
    assert {p["node"] for p in placed} == {"node1", "node2"} - {first}
    log = (tmp_path / f"job-{job}.out").read_text()
    assert "requeueing" not in log  # scontrol requeued it; the script saw COMPLETING and did not


def test_sigterm_to_the_batch_step_requeues_and_resumes(slurm, tmp_path, two_node_run):
    job = submit(slurm, tmp_path, ONE_NODE_TWO_GPUS)
    slurm.wait_until(job, tmp_path / "default" / "iter_000" / ".evaluate.partial")
    slurm.run("scancel", "--signal=TERM", "--batch", job)
    slurm.release(job)
    before = finished_markers(tmp_path / "default")
    resumed_alike(slurm, tmp_path, job, two_node_run[0], before)
    log = (tmp_path / f"job-{job}.out").read_text()
    assert "SIGTERM (job state RUNNING): stopping the run" in log and "requeueing job" in log
    assert "selfplay: stopped by SIGTERM" in log


def test_the_time_limit_signal_requeues_and_resumes(slurm, tmp_path, two_node_run):
    # USR1 130 s before a 3-minute limit: at most 50 s into the run (SLURM may send it up to 60 s
    # early), well before the run's end (about 80 s with workers on this machine).
    job = submit(slurm, tmp_path, (*ONE_NODE_TWO_GPUS, "--time=3", "--signal=B:USR1@130"))
    deadline = time.time() + 400
    while slurm.state(job) != "PENDING" or int(slurm.job(job).get("Restarts", 0)) == 0:
        assert slurm.state(job) != "COMPLETED", "the run finished before the time-limit signal came"
        assert slurm.state(job) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING"), (
            slurm.job(job)
        )
        assert time.time() < deadline, "no requeue before the time limit"
        time.sleep(1)
    before = finished_markers(tmp_path / "default")
    slurm.release(job)
    while slurm.state(job) != "COMPLETED":  # a short rerun may meet the signal again: release again
        state = slurm.state(job)
        assert state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING"), slurm.job(job)
        if state == "PENDING" and slurm.job(job).get("Reason") == "BeginTime":
            slurm.release(job)
        assert time.time() < deadline + 600
        time.sleep(1)
    resumed_alike(slurm, tmp_path, job, two_node_run[0], before)
    log = (tmp_path / f"job-{job}.out").read_text()
    assert "time limit near (USR1)" in log and "requeueing job" in log


TRAIN = ("loop.iterations=1", "evaluate.enabled=false", "train.epochs=20", "train.save_steps=10")


def test_a_requeue_inside_training_resumes_from_its_checkpoint(slurm, tmp_path):
    ref = tmp_path / "local"
    proc = run_cli(
        *TINY,
        *TRAIN,
        "loop.shards=2",
        "loop.shard_workers=2",
        "train.num_processes=2",
        f"loop.output_dir={ref}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "slurm"
    job = submit(slurm, out, ONE_NODE_TWO_GPUS, *TRAIN)
    checkpoint = (
        out / "default" / "iter_000" / ".train.partial" / "trainer" / "checkpoint-10" / "trainer_state.json"
    )
    slurm.wait_until(job, checkpoint)
    slurm.run("scontrol", "requeue", job)
    slurm.release(job)
    slurm.finish(job)
    train = stats(out / "default", 0, "train")
    assert train["resumed_from_step"] >= 10, train
    same_weights(out / "default", ref / "default", 1)
    assert re.search(
        r"resuming from .*checkpoint-\d+", (out / "default" / "logs" / "iter_000-train.log").read_text()
    )
