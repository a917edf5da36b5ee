"""Driving the local SLURM cluster of scripts/local_slurm.sh from tests: submit, wait, requeue, read a
job's state. The cluster is real (slurmctld + one slurmd per node on this machine, fake GPUs that
SLURM binds and exports as on a GPU cluster); nothing here imitates it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_slurm.sh"
NODES, GPUS = 2, 4  # the shape the slurm tests are written for


@dataclass
class Cluster:
    env: dict[str, str]

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def sbatch(self, *args: str, cwd: Path = REPO) -> str:
        out = subprocess.run(
            ["sbatch", "--parsable", *args], env=self.env, capture_output=True, text=True, cwd=cwd, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split(";")[0]

    def job(self, job: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, NodeList, ExitCode, ...)."""
        text = self.run("scontrol", "show", "job", job, "-o", check=False)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def state(self, job: str) -> str:
        return self.job(job).get("JobState", "GONE")

    def wait_for(self, job: str, states: set[str], timeout: float = 900) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.state(job)
            if state in states:
                return state
            time.sleep(1)
        raise AssertionError(f"job {job} not in {states} after {timeout}s (state {self.state(job)})")

    def wait_until(self, job: str, path: Path, timeout: float = 600) -> None:
        """Until `path` exists (the job still running)."""
        deadline = time.time() + timeout
        while not path.exists():
            assert self.state(job) in ("PENDING", "RUNNING", "CONFIGURING"), (
                f"job {job} ended ({self.state(job)}) before {path} appeared"
            )
            assert time.time() < deadline, f"{path} did not appear within {timeout}s"
            time.sleep(0.1)

    def release(self, job: str, exclude: str | None = None) -> None:
        """A requeued job waits about 2 minutes before it may start again: start it now (and away
        from `exclude`, so its first node changes)."""
        self.wait_for(job, {"PENDING"}, timeout=120)
        extra = [f"ExcNodeList={exclude}"] if exclude else []
        self.run("scontrol", "update", f"JobId={job}", "StartTime=now", *extra)

    def finish(self, job: str, timeout: float = 900) -> dict[str, str]:
        state = self.wait_for(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"}, timeout)
        info = self.job(job)
        assert state == "COMPLETED", f"job {job} ended {state}: {info}"
        return info


def running(env: dict[str, str]) -> bool:
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %G"], env=env, capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    lines = out.stdout.split("\n")
    return out.returncode == 0 and sum(f"gpu:{GPUS}" in line for line in lines) >= NODES


def start_cluster() -> tuple[Cluster | None, bool, str]:
    """(cluster, started here, why not) for the slurm tests: the running local cluster, or one started
    now with scripts/local_slurm.sh (needs root and apt)."""
    folder = Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/selfplay-slurm"))
    env = {
        **os.environ,
        "SLURM_CONF": str(folder / "slurm.conf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    env["SELFPLAY_VENV"] = sys.prefix  # launch/slurm.sbatch activates the environment that runs the tests
    if running(env):
        return Cluster(env), False, ""
    try:
        out = subprocess.run(
            [str(SCRIPT), "start", str(NODES), str(GPUS)], capture_output=True, text=True, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, False, f"scripts/local_slurm.sh start failed: {err}"
    if out.returncode != 0 or not running(env):
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, False, f"no local SLURM cluster ({last})"
    return Cluster(env), True, ""


def stop_cluster() -> None:
    subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=120)
