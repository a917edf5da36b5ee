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
