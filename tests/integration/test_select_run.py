"""`python -m selfplay.select` computing a dataset's missing scores on the loop's machinery, as a user
runs it: killed inside its scoring run and rerun (finished shards kept, records equal to an
uninterrupted run), and sharded over long-lived worker processes (equal records)."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from tests.integration.cli import REPO, cli_env

ROWS = [
    {
        "prompt": f"Tell me about bees {i}.",
        "chosen": "bees make honey in the hive " * (1 + i % 4),
        "rejected": f"bees {i}",
    }
    for i in range(48)
]


def dataset(tmp_path):
    import datasets

    path = tmp_path / "in.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(path))
    return path


def command(data, out, *extra):
    return [
        sys.executable, "-m", "selfplay.select", f"input={data}", f"output={out}", "judge.kind=rule",
        "model.path=tiny", "selection.ratio=0.5", *extra,
    ]  # fmt: skip


def run(argv, log=None):
    proc = subprocess.run(argv, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def same_outputs(ours, theirs):
    for rel in ("work/iter_000/score/row_scores.jsonl", "work/iter_000/import/rows.jsonl"):
        assert (ours / rel).read_text() == (theirs / rel).read_text(), rel
    for name in ("scored.parquet", "selected.parquet"):
        assert pq.read_table(ours / name).to_pylist() == pq.read_table(theirs / name).to_pylist(), name


def test_a_killed_scoring_run_resumes_by_shard_and_equals_an_uninterrupted_one(tmp_path):
    data = dataset(tmp_path)
    run(command(data, tmp_path / "reference", "loop.shards=8"))
    out = tmp_path / "killed"
    partial = out / "work" / "iter_000" / ".score.partial"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            command(data, out, "loop.shards=8"), cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 300
        while not list(partial.glob("part-*")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the scoring run ended before a shard finished: nothing was killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(partial.glob("part-*")))
    assert 1 <= done < 8 and not (out / "selected.parquet").exists()
    rerun = run(command(data, out, "loop.shards=8"))
    assert "import: done before, skipped" in rerun.stderr
    assert f"{done} of 8 shards already done" in rerun.stderr, rerun.stderr[-3000:]
    same_outputs(out, tmp_path / "reference")


def test_scoring_shards_on_worker_processes_equal_the_in_process_run(tmp_path):
    data = dataset(tmp_path)
    run(command(data, tmp_path / "here", "loop.shards=2", "loop.threads=1"))  # the same numerics as a worker
    workers = run(
        command(data, tmp_path / "workers", "loop.shards=2", "loop.shard_workers=2", "loop.threads=1")
    )
    assert "worker" in workers.stderr  # the long-lived workers (one per slot) ran the shards
    same_outputs(tmp_path / "workers", tmp_path / "here")
