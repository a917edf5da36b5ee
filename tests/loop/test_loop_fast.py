"""The loop itself in seconds: two iterations of the real orchestrator and runner over instant fake
stage cores: stage order, markers, skip-on-resume, a crash resumed at the failed stage, restart_from."""

import json
import os

import pytest

from selfplay.loop.orchestrator import run_loop
from tests.loop import fake_stages
from tests.loop.fake_stages import CALLS, FAIL, FAKE_TABLE, fake_config

ORDER = ["prompts", "generate", "judge", "selection", "train", "train_ranks", "evaluate"]


@pytest.fixture(autouse=True)
def _clean():
    CALLS.clear()
    FAIL.clear()
    yield
    CALLS.clear()
    FAIL.clear()


def names(calls):
    return [(c[0], c[1]) for c in calls]


def test_two_iterations_in_order_with_markers(tmp_path):
    cfg = fake_config(tmp_path)
    run_dir = run_loop(cfg, table=FAKE_TABLE)
    assert names(CALLS) == [(t, s) for t in range(2) for s in ORDER]
    for t in range(2):
        for s in ("prompts", "generate", "judge", "selection", "train", "evaluate"):
            marker = json.loads((run_dir / f"iter_{t:03d}" / s / "_SUCCESS").read_text())
            assert marker["stage"] == s and marker["iteration"] == t
        assert not list((run_dir / f"iter_{t:03d}").glob(".*.partial"))
    generate = json.loads((run_dir / "iter_001" / "generate" / "_SUCCESS").read_text())
    assert generate["stats"] == {"responses": 8, "prompts_too_long": 0}
    train = json.loads((run_dir / "iter_000" / "train" / "_SUCCESS").read_text())
    assert train["stats"] == {"pairs": 8, "train_loss": 0.5}  # prepare's and the ranks' stats merged
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["iterations"]["001"]["policy"] == str(run_dir / "iter_000" / "train" / "model")
    # <run>/final: a relative link to the newest trained policy, named in the manifest
    assert os.readlink(run_dir / "final") == "iter_001/train/model"
    assert (manifest["final_policy"], manifest["final_iteration"]) == (
        str(run_dir / "iter_001/train/model"),
        1,
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12

    CALLS.clear()
    run_loop(cfg, table=FAKE_TABLE)
    assert CALLS == []  # everything done before: skipped


def test_a_crash_resumes_at_the_failed_stage(tmp_path):
    cfg = fake_config(tmp_path, shards=2)
    FAIL.update(stage="judge", iteration=1)
    with pytest.raises(RuntimeError, match="judge died"):
        run_loop(cfg, table=FAKE_TABLE)
    assert names(CALLS)[-1] == (1, "judge")
    CALLS.clear()
    run_loop(cfg, table=FAKE_TABLE)
    # The failed shard (the first of two) is redone, then the rest of the run; nothing before it.
    assert CALLS[0] == (1, "judge", "p1-0")
    assert names(CALLS) == [
        (1, "judge"),
        (1, "judge"),
        (1, "selection"),
        (1, "train"),
        (1, "train_ranks"),
        (1, "evaluate"),
    ]


def test_restart_from_redoes_the_stage_and_everything_after(tmp_path):
    cfg = fake_config(tmp_path)
    run_loop(cfg, table=FAKE_TABLE)
    CALLS.clear()
    FAIL.update(stage="train", iteration=1)
    with pytest.raises(RuntimeError, match="train died"):
        run_loop(fake_config(tmp_path, restart_from="1/selection"), table=FAKE_TABLE)
    # while iteration 1's policy is being redone, final points at the one before it
    assert os.readlink(tmp_path / "runs" / "default" / "final") == "iter_000/train/model"
    FAIL.clear()
    run_loop(fake_config(tmp_path), table=FAKE_TABLE)
    assert os.readlink(tmp_path / "runs" / "default" / "final") == "iter_001/train/model"
    assert names(CALLS) == [(1, "selection"), (1, "train"), (1, "train"), (1, "train_ranks"), (1, "evaluate")]


def test_more_iterations_extend_a_finished_run(tmp_path):
    run_loop(fake_config(tmp_path), table=FAKE_TABLE)
    CALLS.clear()
    run_loop(fake_config(tmp_path, iterations=3), table=FAKE_TABLE)
    assert names(CALLS) == [(2, s) for s in ORDER]


def test_the_table_drives_which_stages_run(tmp_path):
    cfg = fake_config(tmp_path)
    cfg.evaluate.enabled = False
    run_loop(cfg, table=FAKE_TABLE)
    assert "evaluate" not in {c[1] for c in CALLS}
    assert fake_stages.FAKE_TABLE[-1].enabled(cfg) is False


def test_stop_after_ends_the_last_iteration_there(tmp_path):
    run_loop(fake_config(tmp_path, stop_after="selection"), table=FAKE_TABLE)
    assert names(CALLS) == [(0, s) for s in ORDER] + [
        (1, "prompts"),
        (1, "generate"),
        (1, "judge"),
        (1, "selection"),
    ]
    CALLS.clear()
    run_loop(fake_config(tmp_path), table=FAKE_TABLE)  # the same run, carried on (stop_after only steers)
    assert names(CALLS) == [(1, "train"), (1, "train_ranks"), (1, "evaluate")]


def test_a_killed_writers_temporary_file_is_not_left_in_the_finished_stage(tmp_path):
    """A kill between a record's write and its rename leaves `.<file>.tmp-<pid>` in a resumable stage's
    partial folder (kept for its finished shards); the rerun removes it before the stage goes on."""
    cfg = fake_config(tmp_path)
    partial = tmp_path / "runs" / "default" / "iter_000" / ".generate.partial"
    partial.mkdir(parents=True)
    (partial / ".part-00000-of-00001.parquet.tmp-999999").write_bytes(b"half")
    run_dir = run_loop(cfg, table=FAKE_TABLE)
    assert run_dir == partial.parent.parent and (run_dir / "iter_000" / "generate" / "_SUCCESS").is_file()
    assert list(run_dir.rglob(".*.tmp-*")) == []
