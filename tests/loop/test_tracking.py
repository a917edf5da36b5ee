"""Completion tables (what each iteration shows of pi_0's and the new policy's held-out answers) and
where they go: the evaluate stage's file, a TensorBoard text once per iteration (also when the
tracker is reopened after a resume), W&B's sweep group. Tracking through accelerate's TensorBoard
tracker, read back with TensorBoard's own reader: each stage and training step logged once across
reopenings, on disk before the state says so, and two openings within a second keep both files."""

import json

from selfplay.config import TrackingConfig
from selfplay.data.records import Prompt
from selfplay.evaluate.heldout import completion_table
from selfplay.reporting.tracking import (
    markdown_table,
    open_tracker,
    read_tensorboard_scalars,
    read_tensorboard_texts,
    sweep_group,
)
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.markers import write_marker
from selfplay.rundir.stats import EvaluateStats, Finished, TrainStats


def rows(policy, rewards):
    return [
        {"policy": policy, "prompt_id": f"p{i}", "sample_index": k, "text": f"{policy} {i}.{k}", "reward": r}
        for i, r in enumerate(rewards)
        for k in (0, 1)
    ]


def test_the_table_pairs_each_prompts_first_samples_and_names_the_winner():
    heldout = [Prompt(f"p{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(4)]
    table = completion_table(
        heldout, rows("before", [0.1, 0.5, 0.3, None]), rows("after", [0.2, 0.4, 0.3, 1.0]), 3
    )
    assert [r["winner"] for r in table] == ["policy", "pi_0", "tie"]  # only the first 3 prompts
    assert table[0] == {
        "prompt_id": "p0",
        "prompt": "question 0",
        "pi_0": "before 0.0",
        "pi_0_reward": 0.1,
        "policy": "after 0.0",
        "policy_reward": 0.2,
        "winner": "policy",
    }
    assert (
        completion_table(heldout, rows("before", [0.1] * 4), rows("after", [None] * 4), 9)[3]["winner"] == "-"
    )
    assert completion_table(heldout, [], [], 4) == []


def test_markdown_cells_stay_on_one_line():
    text = markdown_table([{"a": "x | y\nz", "b": 0.123456}])
    assert text == "| a | b |\n|---|---|\n| x \\| y z | 0.1235 |"


def test_sweep_jobs_share_a_group():
    assert sweep_group({"loop": {"run_name": "default/selection.metric=random"}}) == "default"
    assert sweep_group({"loop": {"run_name": "default"}}) is None


def test_tensorboard_logs_each_iterations_table_once_across_reopening(tmp_path):
    layout = RunLayout(tmp_path / "run")
    for t in (0, 1):
        folder = layout.stage_dir(t, "evaluate")
        folder.mkdir(parents=True)
        table = [{"prompt_id": "p0", "prompt": "q", "pi_0": "a", "pi_0_reward": 0.1, "policy": "b",
                  "policy_reward": 0.2 + t, "winner": "policy"}]  # fmt: skip
        (folder / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table))
        write_marker(layout.marker(t, "evaluate"), {"stats": {"heldout_reward_after": 0.2 + t}})
    cfg = TrackingConfig(backend="tensorboard")
    tracker = open_tracker(layout, cfg, {})
    tracker.stage_done(Finished(0, "evaluate", 1.0, EvaluateStats(heldout_reward_after=0.2)))
    tracker.close()
    tracker = open_tracker(layout, cfg, {})  # a resumed run reopens the tracker
    tracker.stage_done(Finished(0, "evaluate", 1.0, EvaluateStats(heldout_reward_after=0.2)))  # logged
    tracker.stage_done(Finished(1, "evaluate", 1.0, EvaluateStats(heldout_reward_after=1.2)))
    tracker.close()
    logdir = layout.tracking_dir / "tensorboard"
    texts = read_tensorboard_texts(logdir)
    assert [(tag, step) for tag, step, _ in texts] == [
        ("evaluate/completions/text_summary", 0),
        ("evaluate/completions/text_summary", 1),
    ]
    assert "| p0 | q | a | 0.1 | b | 1.2 | policy |" in texts[1][2]
    assert [
        s for tag, s, _ in read_tensorboard_scalars(logdir) if tag == "evaluate/heldout_reward_after"
    ] == [0, 1]


def test_live_training_entries_are_forwarded_once_across_a_resumed_training(tmp_path):
    """The orchestrator forwards the training process's live history as it grows; a resumed training
    logs the steps after its checkpoint again (skipped); the history file after the stage adds only
    what was never forwarded (the final summary); iteration 1 continues the global step axis."""
    layout = RunLayout(tmp_path / "run")
    live = tmp_path / "history.live.jsonl"
    tracker = open_tracker(layout, TrackingConfig(backend="tensorboard"), {})

    def entry(step, **extra):
        return (
            json.dumps({"step": step, "loss": 1.0 / step, "learning_rate": 0.1, "epoch": 0.1, **extra}) + "\n"
        )

    live.write_text(entry(1) + entry(2) + '{"step": 3, "lo')  # the last line is still being written
    tracker.follow_training(0, live)
    live.write_text(entry(1) + entry(2) + entry(3) + entry(4))  # the killed attempt reached step 4
    tracker.follow_training(0, live)
    tracker.close()
    tracker = open_tracker(layout, TrackingConfig(backend="tensorboard"), {})  # the run resumed
    with live.open("a") as f:  # the resumed training restarts at its checkpoint, step 2
        f.write(entry(3) + entry(4) + entry(5))
    tracker.follow_training(0, live)
    history = layout.stage_dir(0, "train") / "history.jsonl"
    history.parent.mkdir(parents=True)
    summary = json.dumps({"step": 5, "train_loss": 0.3, "train_runtime": 2.0}) + "\n"
    history.write_text("".join(entry(s) for s in range(1, 6)) + summary)
    tracker.stage_done(Finished(0, "train", 1.0, TrainStats(optimizer_steps=5, train_loss=0.3)))
    tracker.follow_training(1, tmp_path / "no such file")  # nothing yet: no error
    live1 = tmp_path / "live1.jsonl"
    live1.write_text(entry(1))
    tracker.follow_training(1, live1)
    tracker.close()
    scalars = read_tensorboard_scalars(layout.tracking_dir / "tensorboard")
    assert [s for tag, s, _ in scalars if tag == "train_step/loss"] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]  # 6 = iteration 1's step 1
    assert [s for tag, s, _ in scalars if tag == "train_step/train_loss"] == [5]
    assert "train_step/epoch" not in {tag for tag, _, _ in scalars}


def test_a_stage_recorded_as_logged_is_already_in_the_event_file(tmp_path, monkeypatch):
    """A kill right after `stage_done` returns must not lose what state.json calls logged: the event
    file holds it before the tracker is closed (read in the same process, the writer still open), even
    when the writer's background thread writes slowly (a slow disk)."""
    import time

    from tensorboard.summary.writer.record_writer import RecordWriter

    write = RecordWriter.write

    def slow_write(self, data):
        time.sleep(0.05)
        write(self, data)

    monkeypatch.setattr(RecordWriter, "write", slow_write)
    layout = RunLayout(tmp_path / "run")
    tracker = open_tracker(layout, TrackingConfig(backend="tensorboard"), {})
    for t in range(3):
        tracker.stage_done(Finished(t, "evaluate", 2.0, EvaluateStats(heldout_reward_after=0.5 + t)))
        state = json.loads((layout.tracking_dir / "state.json").read_text())
        scalars = read_tensorboard_scalars(layout.tracking_dir / "tensorboard")
        assert f"{t}/evaluate" in state["logged"]
        assert [(s, v) for tag, s, v in scalars if tag == "evaluate/heldout_reward_after"] == [
            (i, 0.5 + i) for i in range(t + 1)
        ]
        assert [s for tag, s, _ in scalars if tag == "evaluate/seconds"] == list(range(t + 1))
    tracker.close()


def test_two_openings_within_a_second_keep_both_event_files(tmp_path):
    layout = RunLayout(tmp_path / "run")
    cfg = TrackingConfig(backend="tensorboard")
    for t in (0, 1):  # a quick resume: the second opening follows the first at once
        tracker = open_tracker(layout, cfg, {})
        tracker.stage_done(Finished(t, "evaluate", 1.0, EvaluateStats(heldout_reward_after=float(t))))
        tracker.close()
    logdir = layout.tracking_dir / "tensorboard"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2
    steps = sorted(
        s for tag, s, _ in read_tensorboard_scalars(logdir) if tag == "evaluate/heldout_reward_after"
    )
    assert steps == [0, 1]


def test_a_backend_that_is_not_installed_is_one_line(monkeypatch):
    import pytest

    from selfplay.errors import SelfplayError
    from selfplay.reporting import tracking

    monkeypatch.setitem(
        tracking.BACKENDS, "tensorboard", tracking.Backend("no_such_package_here", tracking._tensorboard)
    )
    with pytest.raises(
        SelfplayError, match=r"^tracking.backend=tensorboard: the 'no_such_package_here' package"
    ):
        tracking.check_backend(TrackingConfig(backend="tensorboard"))
