"""Rule judges for tests: `judge.rule=tests.integration.rules:<name>`."""

import time


def sleepy(prompt: str, response: str) -> float:
    """A judge that hangs (for the hang-detection test)."""
    time.sleep(600)
    return 0.0
