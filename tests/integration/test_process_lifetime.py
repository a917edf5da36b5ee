"""Nothing a run starts outlives it: kill -9 of the orchestrator while it runs a shard worker, a stage
process or training ranks leaves none of them alive 2 s later (a parent-death signal); SIGTERM and
Ctrl-C stop them and exit with 143 / 130 and one line saying how to resume."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.cli import run_cli, start_cli

KINDS = {
    "shard worker": ("loop.shard_workers=1",),
    "stage process": ("loop.isolation=process",),
    "training ranks": ("train.num_processes=2", "generate.backend=hf"),
}


def processes_of(marker: str, exclude: int | None = None) -> list[int]:
    """Live processes whose command line holds `marker` (every launched process repeats the run's
    overrides, loop.output_dir among them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (exclude, os.getpid()):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for_child(proc, marker: str, what: str, timeout: float = 180) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        children = processes_of(marker, exclude=proc.pid)
        if children:
            return children
        assert proc.poll() is None, f"the run ended before it started a {what}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


@pytest.mark.parametrize("kind", list(KINDS))
def test_kill_9_of_the_orchestrator_ends_what_it_launched(tmp_path, kind):
    marker = f"loop.output_dir={tmp_path}"
    proc = start_cli("debug=tiny", *KINDS[kind], marker, log=tmp_path / "run.log")
    try:
        if kind == "training ranks":  # wait for the ranks themselves, not an earlier process
            while not (tmp_path / "default" / "iter_000" / ".train.partial").exists():
                assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
                time.sleep(0.05)
        children = wait_for_child(proc, marker, kind)
        os.kill(proc.pid, signal.SIGKILL)  # the orchestrator alone, not its process group
        proc.wait()
        time.sleep(2)
        assert processes_of(marker) == [], f"{kind} {children} outlived the orchestrator"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in processes_of(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_the_launched_processes_and_say_how_to_resume(tmp_path, sig, code):
    marker = f"loop.output_dir={tmp_path}"
    args = ("debug=tiny", "loop.shard_workers=1", marker)
    proc = start_cli(*args, log=tmp_path / "run.log")
    try:
        wait_for_child(proc, marker, "shard worker")
        start = time.time()
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=30) == code
        assert time.time() - start < 15
        assert processes_of(marker) == []
        lines = (tmp_path / "run.log").read_text().strip().splitlines()
        assert lines[-1].startswith(
            f"selfplay: stopped by {signal.Signals(sig).name}; the processes it started"
        )
        assert "Rerun the same command to resume" in lines[-1]
        assert not (tmp_path / "default" / ".lock").exists()  # released
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
