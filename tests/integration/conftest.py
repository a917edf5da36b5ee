"""The whole-run fixture several test modules read (one 2-iteration vLLM run per session), and the
tier of each whole-program test: everything here is `integration` (pytest -m integration) except the
few whole runs the default tier keeps, so that `pytest` still covers vLLM, selection, TRL training
and resume end to end once (the reward-model judge and the final policy: tests/test_api.py)."""

from pathlib import Path

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


DEFAULT_TIER = {
    "test_runs.py": {
        "test_two_iterations_through_vllm_and_trl",  # vLLM + rule judge + AP selection + TRL DPO, 2 iterations
        "test_rerun_skips_everything_and_changed_config_is_refused",
        "test_killed_run_resumes_and_equals_the_uninterrupted_run",  # a kill and a resume, records equal
        "test_unknown_names_and_typos_fail_before_running",
        "test_dry_run_prints_commands_and_runs_nothing",
    },
    "test_bad_input.py": None,  # all: in-process, seconds each
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent != here or item.get_closest_marker("slow") or item.get_closest_marker("slurm"):
            continue
        keep = DEFAULT_TIER.get(path.name, set())
        if keep is None or item.originalname in keep:
            continue
        item.add_marker(pytest.mark.integration)
