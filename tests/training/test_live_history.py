"""The training process's live history across a resume from a trainer checkpoint: a step the killed
attempt logged is not written twice, the token count continues from the checkpoint's, and a line the
kill cut short never swallows the next entry."""

import json

from selfplay.training.trainer import live_history_callback


class State:
    is_world_process_zero = True

    def __init__(self, step):
        self.global_step = step


def test_a_resumed_training_continues_the_live_history(tmp_path):
    path = tmp_path / "history.live.jsonl"
    path.write_text(
        json.dumps({"step": 1, "loss": 1.0, "num_tokens": 100.0}) + "\n"
        + json.dumps({"step": 2, "loss": 0.9, "num_tokens": 200.0}) + "\n"
        + json.dumps({"step": 3, "loss": 0.8, "num_tokens": 300.0}) + "\n"
        + '{"step": 4, "lo'  # the kill, mid-line
    )  # fmt: skip
    callback = live_history_callback(path, None, resumed_at=2)  # resumed from the checkpoint at step 2
    for step, tokens in ((3, 100.0), (4, 200.0)):  # the trainer counts tokens from 0 again
        callback.on_log(None, State(step), None, logs={"loss": 0.5, "num_tokens": tokens})
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.endswith("}")]
    assert [e["step"] for e in entries if "loss" in e] == [1, 2, 3, 4]  # step 3 once: the killed attempt's
    assert entries[-1]["num_tokens"] == 400.0  # continued from the checkpoint's 200
    assert lines[3] == '{"step": 4, "lo'  # the cut line stays on its own line


def test_a_fresh_training_writes_every_entry(tmp_path):
    path = tmp_path / "history.live.jsonl"
    callback = live_history_callback(path)
    for step in (1, 2):
        callback.on_log(None, State(step), None, logs={"loss": 1.0 / step})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
