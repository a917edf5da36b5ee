"""Long-lived workers (loop.workers): one per engine slot for the whole run, records and weights
byte-identical to a run with one engine per stage in the orchestrator, one engine start per worker per
run, a worker killed inside its shard started again with only that shard redone, and no worker socket
listening outside loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli import REPO, cli_env, run_cli
from tests.integration.runs import assert_same_records, stage_stats
from tests.integration.test_process_lifetime import processes_of
from tests.sockets import listening_sockets, outside_loopback

pytestmark = pytest.mark.vllm
WORKERS = ("debug=tiny", "generate.backend=vllm", "loop.shards=2", "loop.shard_workers=2")


def same_weights(a, b, iterations=2):
    for t in range(iterations):
        rel = f"iter_{t:03d}/train/model/model.safetensors"
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_workers_write_what_per_stage_engines_write_with_one_engine_each(vllm_run, tmp_path):
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0
    proc = run_cli(*WORKERS, f"loop.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "default"
    assert_same_records(run_dir, reference, 2)
    same_weights(run_dir, reference)
    logs = {p.name: p.read_text() for p in (run_dir / "logs").glob("worker-*.log")}
    assert sorted(logs) == ["worker-000.log", "worker-001.log"]
    for text in logs.values():  # 2 iterations x (generate, judge, evaluate), one engine for all of it
        assert text.count("vLLM engine started") == 1, text[-2000:]
    assert "vLLM engine started" not in proc.stderr  # none in the orchestrator
    assert not list((run_dir / "logs").glob("*-shard-*.log"))  # no shard process was started
    for t in range(2):
        for stage in ("generate", "judge", "evaluate"):
            placed = stage_stats(run_dir, t, stage)["placement"]
            assert sorted(p["shard"] for p in placed) == [0, 1] and len({p["pid"] for p in placed}) == 2


def test_a_worker_killed_inside_its_shard_is_started_again_and_only_that_shard_redone(vllm_run, tmp_path):
    reference, _ = vllm_run
    marker = tmp_path / "slow-once"
    out = tmp_path / "run"
    env = {**cli_env(), "SELFPLAY_TEST_SLOW_ONCE": str(marker)}
    args = [*WORKERS, "judge.rule=tests.integration.rules:slow_once", f"loop.output_dir={out}"]
    log = tmp_path / "run.log"
    with open(log, "w") as out_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "selfplay.run", *args], cwd=REPO, env=env, stdout=out_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        worker = int(marker.read_text())  # the worker inside its judge shard
        os.kill(worker, signal.SIGKILL)
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "died (exit -9) in shard" in text and "starting it again, the shard is redone" in text
    assert text.count("iteration 0 judge: shard") == 3  # 2 shards, the killed one sent again
    run_dir = out / "default"
    judgments = (run_dir / "iter_000" / "judge" / "judgments.jsonl").read_text()
    assert judgments == (reference / "iter_000" / "judge" / "judgments.jsonl").read_text().replace(
        "rule:topical_variety", "rule:tests.integration.rules:slow_once"
    )


def test_worker_processes_listen_on_nothing_outside_loopback(tmp_path):
    marker = f"loop.output_dir={tmp_path}"
    from tests.integration.cli import start_cli

    proc = start_cli(*WORKERS, marker, log=tmp_path / "run.log")
    seen, workers = set(), set()
    while proc.poll() is None:
        for pid in processes_of(marker, exclude=proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"task.worker=" in cmdline:
                workers.add(pid)
                seen |= listening_sockets(pid)
        time.sleep(0.1)
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert len(workers) == 2 and outside_loopback(seen) == set(), seen
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["iterations"]
