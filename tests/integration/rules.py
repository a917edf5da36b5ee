"""Rule judges for tests: `judge.rule=tests.integration.rules:<name>`."""

import time


def sleepy(prompt: str, response: str) -> float:
    """A judge that hangs (for the hang-detection test)."""
    time.sleep(600)
    return 0.0


def raises(prompt: str, response: str) -> float:
    raise ValueError("the judge broke")


def nan_sometimes(prompt: str, response: str) -> float:
    return float("nan") if len(response) % 3 == 0 else float(len(set(response.split())))


def words(prompt: str, response: str):
    return "high"


def constant(prompt: str, response: str) -> float:
    return 0.5


def slow_once(prompt: str, response: str) -> float:
    """topical_variety, but the first call of the run waits 60 s (a judge shard long enough to kill
    its worker in): the marker file named by SELFPLAY_TEST_SLOW_ONCE says it has happened."""
    import os
    from pathlib import Path

    from selfplay.judge.rules import resolve_rule

    marker = Path(os.environ["SELFPLAY_TEST_SLOW_ONCE"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return resolve_rule("topical_variety")(prompt, response)
