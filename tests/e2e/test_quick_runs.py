"""The default tier's whole runs (`pytest`): two iterations through vLLM, the rule judge, selection and
TRL, a rerun that skips everything and refuses a changed config, a killed run resumed equal to an
uninterrupted one, typos refused before anything runs, and a dry run on a SLURM allocation."""

import pytest

from tests.integration.cli import kill_inside, run_cli
from tests.integration.runs import STAGES, assert_same_records, check_finished_run


@pytest.mark.vllm
def test_two_iterations_through_vllm_and_trl(vllm_run):
    run_dir, proc = vllm_run
    check_finished_run(run_dir, proc, 2, "vllm")


@pytest.mark.vllm
def test_rerun_skips_everything_and_changed_config_is_refused(vllm_run):
    run_dir, first = vllm_run
    assert first.returncode == 0
    again = run_cli("debug=tiny", "generate.backend=vllm", f"loop.output_dir={run_dir.parent}")
    assert again.returncode == 0 and again.stderr.count("skipped") == 2 * len(STAGES)
    changed = run_cli(
        "debug=tiny", "generate.backend=vllm", f"loop.output_dir={run_dir.parent}", "train.beta=0.9"
    )
    assert changed.returncode == 2
    assert changed.stderr.strip().count("\n") == 0 and "train.beta: 0.2 -> 0.9" in changed.stderr


@pytest.mark.vllm
def test_killed_run_resumes_and_equals_the_uninterrupted_run(vllm_run, tmp_path):
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0
    args = ("debug=tiny", "generate.backend=vllm", f"loop.output_dir={tmp_path}")
    run_dir = tmp_path / "default"
    kill_inside(*args, partial=run_dir / "iter_001" / ".generate.partial", log=tmp_path / "killed.log")
    assert not (run_dir / "iter_001" / "generate" / "_SUCCESS").exists()
    finished = {s: (run_dir / "iter_000" / s / "_SUCCESS").read_text() for s in STAGES}
    finished_mtimes = {s: (run_dir / "iter_000" / s / "_SUCCESS").stat().st_mtime_ns for s in STAGES}

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("skipped") == len(STAGES) + 1  # iteration 0 and iteration 1's prompts
    for s in STAGES:
        marker = run_dir / "iter_000" / s / "_SUCCESS"
        assert marker.read_text() == finished[s] and marker.stat().st_mtime_ns == finished_mtimes[s]
    assert not (run_dir / "iter_001" / ".generate.partial").exists()
    assert_same_records(run_dir, reference, 2)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("selection.metric=bogus", "selection.metric=bogus: unknown (known: alignment_potential"),
        ("generate.backend=tgi", "Invalid value 'tgi'"),
        (
            "selecton.ratio=0.5",
            "unknown key 'selecton.ratio' in 'selecton.ratio=0.5' (did you mean selection.ratio?)",
        ),
    ],
)
def test_unknown_names_and_typos_fail_before_running(tmp_path, override, needle):
    """Hydra's own compose-time message (or, for a plug-in name, our one line) names the bad key or
    value; nothing starts."""
    proc = run_cli(override, f"loop.output_dir={tmp_path}", timeout=120)
    assert proc.returncode != 0 and not (tmp_path / "default").exists()
    assert needle in proc.stderr, proc.stderr


def test_dry_run_prints_commands_and_runs_nothing(tmp_path):
    env_args = (
        "cluster=slurm",
        "generate.tensor_parallel_size=2",
        "loop.dry_run=true",
        f"loop.output_dir={tmp_path}",
    )
    import subprocess
    import sys

    from tests.integration.cli import REPO, cli_env

    env = {
        **cli_env(),
        "SLURM_JOB_ID": "9",
        "SLURM_JOB_NODELIST": "n[1-2]",
        "SLURM_NNODES": "2",
        "SLURM_GPUS_PER_NODE": "h100:4",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "selfplay.run", *env_args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("cluster=slurm nodes=2 (n1, n2) gpus_per_node=4 engines=4")
    assert sum("MASTER_ADDR=n1,MASTER_PORT=0 " in line for line in lines) == 3  # one train line per iteration
    assert not any(tmp_path.iterdir())
    missing = run_cli("cluster=slurm", "loop.dry_run=true", f"loop.output_dir={tmp_path}", timeout=120)
    assert missing.returncode == 2 and "SLURM_JOB_ID" in missing.stderr
