"""Kill anywhere, rerun, get the same run: SIGKILL of a real run's whole process group at seeded moments
(inside a shard process, inside training, at the instant a record file is renamed into place, at random
times), a rerun after each, then every record and the weights compared byte for byte with an
uninterrupted run, and no stage that had finished before a kill run again. Also `restart_from`, a change
of `loop.shards` between a kill and its rerun, and (slow tier) evolve and >= 20 random kills.

Each test prints where its kills landed (`pytest -s` shows it; it is also in the failure report)."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli import REPO, cli_env, run_cli, start_cli
from tests.integration.runs import assert_same_records

pytestmark = pytest.mark.vllm

ARGS = ("debug=tiny", "generate.backend=vllm", "tracking.backend=tensorboard", "train.save_steps=1")
STAGE_LINE = re.compile(r"iteration (\d+) (\w+): (running|done in|done before)")


def stage_hit(log: Path) -> str:
    """Where a kill landed, from the killed run's own progress lines."""
    where = "startup (no stage running yet)"
    for t, stage, what in STAGE_LINE.findall(log.read_text(errors="replace")):
        where = f"{t}/{stage}" if what == "running" else f"between stages (after {t}/{stage})"
    return where


def finished_markers(run_dir: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(run_dir)): (p.read_text(), p.stat().st_mtime_ns)
        for p in run_dir.glob("iter_*/*/_SUCCESS")
    }


def wait_for(condition, proc, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def shard_process_running(stage: str):
    def check() -> bool:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
            except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError):
                continue
            if f"task.stage={stage}".encode() in cmdline and any(
                a.startswith(b"task.shard=") for a in cmdline
            ):
                return True
        return False

    return check


class KillLog:
    """Kills so far, the markers that existed at each, and a printable table."""

    def __init__(self, run_dir: Path, logs: Path):
        self.run_dir, self.logs = run_dir, logs
        self.rows: list[dict] = []
        self.done_before: dict[str, tuple[str, int]] = {}

    def kill(self, proc: subprocess.Popen, how: str, log: Path) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        landed = proc.returncode == -signal.SIGKILL
        self.rows.append({"kill": how, "stage": stage_hit(log) if landed else "run had finished"})
        self.done_before.update(finished_markers(self.run_dir))

    def assert_nothing_redone(self) -> None:
        now = finished_markers(self.run_dir)
        redone = [k for k, v in self.done_before.items() if now.get(k) != v]
        assert not redone, f"stages finished before a kill were run again: {redone}"

    def report(self, capsys, title: str) -> None:
        text = "\n".join(f"  kill {i + 1:2d} ({r['kill']}): {r['stage']}" for i, r in enumerate(self.rows))
        (self.logs / "kills.json").write_text(json.dumps(self.rows, indent=1))
        with capsys.disabled():
            print(f"\n{title}: {len(self.rows)} kills\n{text}")


def start(args, log: Path, kill_at_write: int | None = None) -> subprocess.Popen:
    if kill_at_write is None:
        return start_cli(*args, log=log)
    env = cli_env()
    env["SELFPLAY_TEST_KILL_AT_WRITE"] = str(kill_at_write)
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "integration" / "kill_at_write.py"), *args],
        cwd=REPO,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def assert_same_weights(run_dir: Path, reference: Path, iterations: int) -> None:
    for t in range(iterations):
        rel = Path(f"iter_{t:03d}") / "train" / "model" / "model.safetensors"
        assert (run_dir / rel).read_bytes() == (reference / rel).read_bytes(), f"{rel} differs"


def finish(args, kills: KillLog, reference: Path, iterations: int = 2) -> None:
    final = run_cli(*args)
    assert final.returncode == 0, final.stderr[-3000:]
    kills.assert_nothing_redone()
    assert not list(kills.run_dir.glob("iter_*/.*.partial")), "a partial stage folder was left behind"
    assert not list(kills.run_dir.rglob(".*.tmp-*")), "a temporary record file was left behind"
    assert_same_records(kills.run_dir, reference, iterations)
    assert_same_weights(kills.run_dir, reference, iterations)


def test_kills_in_a_shard_in_training_at_a_write_and_at_random_then_restart_from(vllm_run, tmp_path, capsys):
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0
    rng = random.Random(16)
    args = (*ARGS, f"loop.output_dir={tmp_path}")
    kills = KillLog(tmp_path / "default", tmp_path)

    # 1. inside a shard process of a 2-shard run (a process per shard: workers are killed in
    #    test_workers.py); the rerun is unsharded (loop.shards changed)
    log = tmp_path / "kill-1.log"
    proc = start((*args, "loop.shards=2", "loop.shard_workers=2", "loop.workers=false"), log)
    wait_for(shard_process_running("generate"), proc, "a generate shard process started")
    time.sleep(rng.uniform(0.2, 1.5))
    kills.kill(proc, "inside generate shard processes, rerun with loop.shards=1", log)

    # 2. inside training, once a trainer checkpoint exists (the rerun resumes from it)
    log = tmp_path / "kill-2.log"
    proc = start(args, log)
    wait_for(
        lambda: any(kills.run_dir.glob("iter_*/.train.partial/**/checkpoint-*/trainer_state.json")),
        proc,
        "a complete trainer checkpoint was written",
    )
    kills.kill(proc, "inside training", log)
    assert kills.rows[-1]["stage"].endswith("/train"), kills.rows[-1]

    # 3. at the instant a record file is complete but not yet renamed into place (this start first
    #    resumes the killed training from its checkpoint)
    log = tmp_path / "kill-3.log"
    proc = start(args, log, kill_at_write=rng.randint(8, 14))
    proc.wait(timeout=600)
    kills.kill(proc, "at a record write", log)
    text = log.read_text()
    assert "kill_at_write: killing at write" in text and ": resuming from " in text

    # 4. at a random moment
    log = tmp_path / "kill-4.log"
    proc = start(args, log)
    time.sleep(rng.uniform(2.0, 12.0))
    kills.kill(proc, "random", log)

    kills.report(capsys, "kill anywhere (default tier)")
    finish(args, kills, reference)

    # restart_from redoes iteration 1 from selection on and gets the same records; iteration 0 is kept
    kept = {k: v for k, v in finished_markers(kills.run_dir).items() if k.startswith("iter_000")}
    again = run_cli(*args, "loop.restart_from=1/selection")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {k: v for k, v in finished_markers(kills.run_dir).items() if k.startswith("iter_000")} == kept
    assert "iteration 1 selection: running" in again.stderr
    assert_same_records(kills.run_dir, reference, 2)
    assert_same_weights(kills.run_dir, reference, 2)


def random_kill_chain(args, kills: KillLog, rng: random.Random, budget: int, lo: float, hi: float) -> None:
    """Kill at random moments (and now and then at a record write) until the budget is spent or a
    start runs to the end."""
    for _ in range(budget):
        log = kills.logs / f"kill-{len(kills.rows) + 1}.log"
        if rng.random() < 0.25:
            proc = start(args, log, kill_at_write=rng.randint(1, 12))
            proc.wait(timeout=600)
            how = "at a record write"
        else:
            proc = start(args, log)
            time.sleep(rng.uniform(lo, hi))
            how = "random"
        kills.kill(proc, how, log)
        if kills.rows[-1]["stage"] == "run had finished":
            return
