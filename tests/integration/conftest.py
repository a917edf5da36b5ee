"""The whole-run fixture several test modules read (one 2-iteration vLLM run per session)."""

import pytest

from tests.integration.cli import run_cli


@pytest.fixture(scope="session")
def vllm_run(tmp_path_factory):
    """`debug=tiny` through vLLM + TRL with TensorBoard tracking: run directory and finished process."""
    out = tmp_path_factory.mktemp("vllm_run")
    proc = run_cli(
        "debug=tiny", "generate.backend=vllm", "tracking.backend=tensorboard", f"loop.output_dir={out}"
    )
    return out / "default", proc
