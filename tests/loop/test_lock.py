"""One orchestrator per run directory: a second `python -m selfplay.run` on a run in use is refused in one
line naming the holder; a stale lock (dead pid on this host, or not refreshed for long on another host)
is taken over."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from selfplay.errors import SelfplayError
from selfplay.loop import lock as lock_module
from selfplay.loop.lock import RunLock
from tests.integration.cli import start_cli


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "run" / ".lock"
    with RunLock(path):
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(
            SelfplayError, match=f"is in use by another selfplay process \\(pid {os.getpid()} on "
        ):
            RunLock(path).acquire()
    assert not path.exists()  # released


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, caplog):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "started": "then"}))
    with RunLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "taking over the stale lock" in caplog.text


def test_a_half_written_lock_is_taken_over_after_a_grace_period(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("")  # created, not yet written: its writer may be between the two
    with pytest.raises(SelfplayError, match=r"is in use by another selfplay process \(\?\)"):
        RunLock(path).acquire()
    path.write_text('{"pid": 12')  # a crash while the lock was written
    old = time.time() - lock_module.EMPTY_GRACE_SECONDS - 1
    os.utime(path, (old, old))
    with RunLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_requeued_slurm_jobs_earlier_run_is_taken_over_from_any_node(tmp_path, monkeypatch):
    # The requeued job may start on another first node: the holder's pid means nothing here and its
    # lock was refreshed moments ago, but SLURM starts a requeued job only after the old run ended.
    path = tmp_path / ".lock"
    held = {"pid": 1, "host": "node-elsewhere", "started": "then", "slurm_job": "42", "slurm_restart": 0}
    path.write_text(json.dumps(held))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")  # the same run of the job: a live holder, refused
    with pytest.raises(SelfplayError, match="pid 1 on node-elsewhere"):
        RunLock(path).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "43")  # another job: refused too
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with pytest.raises(SelfplayError, match="pid 1 on node-elsewhere"):
        RunLock(path).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with RunLock(path):
        held_now = json.loads(path.read_text())
        assert (held_now["slurm_job"], held_now["slurm_restart"]) == ("42", 1)


def test_a_stale_holders_live_children_are_waited_for_then_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "CHILD_WAIT_SECONDS", 0.5)
    path = tmp_path / ".lock"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        entry = {"pid": child.pid, "process_start": lock_module._process_start(child.pid)}
        held = {"pid": dead_pid(), "host": socket.gethostname(), "started": "then", "children": [entry]}
        path.write_text(json.dumps(held))
        with pytest.raises(
            SelfplayError, match=f"processes of an earlier run of it are still alive \\(pid {child.pid}"
        ):
            RunLock(path).acquire()
        child.kill()
        child.wait()
        with RunLock(path) as lock:
            lock.record_children([os.getpid()])
            assert json.loads(path.read_text())["children"][0]["pid"] == os.getpid()
    finally:
        child.kill()


def test_another_hosts_lock_is_stale_only_when_no_longer_refreshed(tmp_path, monkeypatch):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": 1, "host": "node-elsewhere", "started": "then"}))
    with pytest.raises(SelfplayError, match="pid 1 on node-elsewhere"):
        RunLock(path).acquire()
    old = time.time() - lock_module.STALE_SECONDS - 5
    os.utime(path, (old, old))
    with RunLock(path):
        assert json.loads(path.read_text())["host"] == socket.gethostname()


def test_the_holder_refreshes_its_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "REFRESH_SECONDS", 0.05)
    path = tmp_path / ".lock"
    with RunLock(path):
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5


def test_two_runs_on_one_directory(tmp_path):
    """The real thing: a run in progress, then the same command again in another process."""
    # 3 iterations: the first run must outlast the second's start (imports, composing) on a busy machine
    args = ("debug=tiny", "generate.backend=hf", "loop.iterations=3", f"loop.output_dir={tmp_path}")
    first = start_cli(*args, log=tmp_path / "first.log")
    try:
        lock_file = tmp_path / "default" / ".lock"
        deadline = time.time() + 120
        while not lock_file.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None and lock_file.exists()
        second = subprocess.run(
            [sys.executable, "-m", "selfplay.run", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert second.returncode == 2
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"pid {first.pid} on {socket.gethostname()}" in lines[0], lines
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-2000:]
        assert not lock_file.exists()
    finally:
        if first.poll() is None:
            first.kill()


def test_a_recycled_pid_on_this_host_is_taken_over(tmp_path, caplog):
    # The holder's pid is alive but names another process now (a restarted container recycles pids;
    # the lock's own process may even get the same pid): the kernel's start time tells them apart.
    path = tmp_path / ".lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = lock_module._process_start(other.pid)
        assert start is not None
        for pid, started in (
            (other.pid, start - 1),
            (os.getpid(), lock_module._process_start(os.getpid()) - 1),
        ):
            held = {"pid": pid, "host": socket.gethostname(), "started": "then", "process_start": started}
            path.write_text(json.dumps(held))
            with RunLock(path):
                assert json.loads(path.read_text())["pid"] == os.getpid()
        # The same pid with its own start time is the live holder: refused.
        held = {"pid": other.pid, "host": socket.gethostname(), "started": "now", "process_start": start}
        path.write_text(json.dumps(held))
        with pytest.raises(SelfplayError, match=f"pid {other.pid} on "):
            RunLock(path).acquire()
        # Written before a reboot (another boot id): taken over though the pid is alive.
        path.write_text(json.dumps({**held, "boot_id": "an-earlier-boot"}))
        with RunLock(path):
            pass
    finally:
        other.kill()
        other.wait()
    assert caplog.text.count("taking over the stale lock") == 3


def test_a_holder_in_another_pid_namespace_is_judged_by_its_refreshes(tmp_path, monkeypatch):
    # Containers sharing the host's name (host networking) but not its pids: a pid there means nothing
    # here, so a dead-looking pid is not taken over while the lock is refreshed.
    path = tmp_path / ".lock"
    held = {"pid": dead_pid(), "host": socket.gethostname(), "started": "now", "pid_namespace": "pid:[1]"}
    path.write_text(json.dumps(held))
    with pytest.raises(SelfplayError, match="is in use by another selfplay process"):
        RunLock(path).acquire()
    old = time.time() - lock_module.STALE_SECONDS - 5
    os.utime(path, (old, old))
    with RunLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
