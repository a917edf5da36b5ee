"""Each tracking backend other than TensorBoard, run offline where its package is installed (skipped
otherwise; none is a dependency): stages, training steps forwarded live, the completion table and a
reopened (resumed) tracker, read back from the backend's own local store."""

import json

import pytest

from selfplay.config import TrackingConfig
from selfplay.reporting.tracking import open_tracker
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.stats import EvaluateStats, Finished, TrainStats

RUN_CONFIG = {"loop": {"run_name": "sweep/job"}, "judge": {"kind": "rule", "labels": ["1", "2"]}}


def drive(tmp_path, backend: str) -> RunLayout:
    """Iteration 0 (three training steps live, train, evaluate with its table), then a resumed
    tracker: iteration 0's evaluate again (already logged), iteration 1's first step and evaluate."""
    layout = RunLayout(tmp_path / "sweep" / "job")
    cfg = TrackingConfig(backend=backend, project="selfplay-test")
    folder = layout.stage_dir(0, "evaluate")
    folder.mkdir(parents=True)
    row = {"prompt_id": "p0", "prompt": "q", "pi_0": "a", "pi_0_reward": 0.1, "policy": "b",
           "policy_reward": 0.3, "winner": "policy"}  # fmt: skip
    (folder / "completions.jsonl").write_text(json.dumps(row) + "\n")
    live = tmp_path / "live.jsonl"
    live.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s, "epoch": 0.1}) + "\n" for s in (1, 2, 3)))
    tracker = open_tracker(layout, cfg, RUN_CONFIG)
    tracker.follow_training(0, live)
    tracker.stage_done(Finished(0, "train", 1.5, TrainStats(optimizer_steps=3, train_loss=0.4)))
    tracker.stage_done(Finished(0, "evaluate", 2.0, EvaluateStats(heldout_reward_after=0.3)))
    tracker.close()
    tracker = open_tracker(layout, cfg, RUN_CONFIG)
    tracker.stage_done(Finished(0, "evaluate", 2.0, EvaluateStats(heldout_reward_after=0.3)))
    live.write_text(json.dumps({"step": 1, "loss": 0.2}) + "\n")
    tracker.follow_training(1, live)
    tracker.stage_done(Finished(1, "evaluate", 2.0, EvaluateStats(heldout_reward_after=0.6)))
    tracker.close()
    state = json.loads((layout.tracking_dir / "state.json").read_text())
    assert state["logged"] == ["0/train", "0/evaluate", "1/evaluate"]
    return layout


def test_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")  # MLflow's local store (SQLite)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    layout = drive(tmp_path, "mlflow")
    state = json.loads((layout.tracking_dir / "state.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{layout.tracking_dir / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    run = client.get_run(state["mlflow_run_id"])
    assert run.info.run_name == "job" and run.data.tags["sweep"] == "sweep"
    assert run.data.params["judge.labels"] == "['1', '2']"
    assert len(client.search_runs([run.info.experiment_id])) == 1  # the reopening resumed it

    def history(key):
        return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]

    assert history("train_step/loss") == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.2)]
    assert history("evaluate/heldout_reward_after") == [(0, 0.3), (1, 0.6)]


def test_trackio(tmp_path):
    """In a process of its own: Trackio reads TRACKIO_DIR (its local store) when imported."""
    pytest.importorskip("trackio")
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    child = (
        "import json, sys; from pathlib import Path; from tests.loop.test_tracking_backends import drive; "
        "from trackio.sqlite_storage import SQLiteStorage; layout = drive(Path(sys.argv[1]), 'trackio'); "
        "state = json.loads((layout.tracking_dir / 'state.json').read_text()); "
        "logs = SQLiteStorage.get_logs('selfplay-test', 'job-' + state['run_id']); "
        "(Path(sys.argv[1]) / 'logs.json').write_text(json.dumps(logs))"
    )
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = json.loads((tmp_path / "logs.json").read_text())
    steps = [(e["train/global_step"], e["train_step/loss"]) for e in logs if "train_step/loss" in e]
    assert steps == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.2)]
    assert [
        (e["iteration"], e["evaluate/heldout_reward_after"]) for e in logs if "evaluate/seconds" in e
    ] == [
        (0, 0.3),
        (1, 0.6),
    ]
    assert [e["iteration"] for e in logs if "evaluate/completions" in e] == [0]
    assert (tmp_path / "trackio" / "selfplay-test.db").is_file()


def test_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for key, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true")):
        monkeypatch.setenv(key, value)
    for key in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    layout = drive(tmp_path, "wandb")
    state = json.loads((layout.tracking_dir / "state.json").read_text())
    runs = sorted((layout.tracking_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(state["run_id"]) for r in runs)  # one run, resumed
    assert list(runs[0].glob("files/media/table/evaluate/completions_*.table.json"))
