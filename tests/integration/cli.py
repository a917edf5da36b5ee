"""Run `python -m selfplay.run` as a user would, in a subprocess."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(*overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selfplay.run", *overrides],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*overrides: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "selfplay.run", *overrides],
        cwd=REPO,
        env=cli_env(),
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_inside(*overrides: str, partial: Path, log: Path) -> None:
    """Start a run and SIGKILL its whole process group as soon as `partial` (a stage's partial folder)
    exists: a real kill inside that stage. Fails if the run ends first."""
    proc = start_cli(*overrides, log=log)
    deadline = time.time() + 300
    while not partial.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before reaching {partial.name}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
