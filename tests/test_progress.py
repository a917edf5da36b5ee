"""Progress lines: the ETA is measured from the first finished unit on (a model load or compilation
before it would otherwise make the first lines' ETA wildly long)."""

import logging

from selfplay import progress
from selfplay.progress import Progress, progress_line


def test_the_eta_leaves_the_warm_up_out(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    monkeypatch.setattr(progress, "_every", lambda: 0.0)
    monkeypatch.setattr(progress, "_enabled", lambda: True)
    monkeypatch.setattr(progress, "beat", lambda *a, **k: None)
    with caplog.at_level(logging.INFO, logger="selfplay.progress"):
        p = Progress("generate", 100, "responses")
        clock[0] += 60.0  # a minute of model load and warm-up before the first responses
        p.update(10)
        clock[0] += 1.0
        p.update(10)  # 10 responses a second from here on
    lines = [r.getMessage() for r in caplog.records]
    assert "ETA" not in lines[0]  # one update: its rate includes the warm-up
    assert lines[1].endswith("ETA 0:00:08")  # 80 left at 10/s, not at the overall 20/61 s


def test_without_a_steady_rate_the_line_is_as_before():
    assert progress_line("x", 5, 10, "u", 5.0) == "x: 5/10 u (50%), 1.0/s, ETA 0:00:05"
