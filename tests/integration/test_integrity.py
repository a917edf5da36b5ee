"""Nothing corrupt is read silently: a finished stage's marker records the size and checksum of every
file it wrote; a resume refuses a truncated or missing file at start, and a stage refuses a file whose
bytes changed before it reads it (records and weights), each in one line naming the file and the
loop.restart_from that redoes the stage."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.cli import run_cli

BASE = ("debug=tiny", "generate.backend=hf", "loop.progress=false")


@pytest.fixture(scope="module")
def stopped_after_generate(tmp_path_factory):
    """Iteration 0 through generate; iteration 0 through train in a second folder."""
    out = tmp_path_factory.mktemp("integrity")
    gen = run_cli(*BASE, "loop.iterations=1", "loop.stop_after=generate", f"loop.output_dir={out / 'gen'}")
    assert gen.returncode == 0, gen.stderr[-3000:]
    trained = run_cli(
        *BASE, "loop.iterations=1", "evaluate.enabled=false", f"loop.output_dir={out / 'train'}"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    return out


def copy(src, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(src, dst / "default")
    return dst


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("selfplay: error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_markers_record_every_file_with_its_size_and_checksum(stopped_after_generate):
    run = stopped_after_generate / "train" / "default" / "iter_000"
    files = json.loads((run / "train" / "_SUCCESS").read_text())["files"]
    assert {"model/model.safetensors", "model/config.json", "model/README.md"} <= set(files)
    weights = files["model/model.safetensors"]
    assert weights["size"] == (run / "train" / "model" / "model.safetensors").stat().st_size
    assert len(weights["xxh3_128"]) == 32
    assert "completions.parquet" in json.loads((run / "generate" / "_SUCCESS").read_text())["files"]


def test_corrupted_bytes_in_a_finished_record_file_are_refused_before_reading(
    stopped_after_generate, tmp_path
):
    out = copy(stopped_after_generate / "gen" / "default", tmp_path)
    completions = out / "default" / "iter_000" / "generate" / "completions.parquet"
    data = bytearray(completions.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 256] = bytes(256)  # same size: only a checksum tells
    completions.write_bytes(bytes(data))
    line = one_line(run_cli(*BASE, "loop.iterations=1", f"loop.output_dir={out}"))
    assert str(completions) in line and "does not match the checksum iteration 0 generate recorded" in line
    assert "loop.restart_from=0/generate" in line
    fixed = run_cli(*BASE, "loop.iterations=1", "loop.restart_from=0/generate", f"loop.output_dir={out}")
    assert fixed.returncode == 0, fixed.stderr[-3000:]


def test_a_truncated_record_file_is_refused_at_start(stopped_after_generate, tmp_path):
    out = copy(stopped_after_generate / "gen" / "default", tmp_path)
    completions = out / "default" / "iter_000" / "generate" / "completions.parquet"
    completions.write_bytes(completions.read_bytes()[:100])
    line = one_line(run_cli(*BASE, "loop.iterations=1", f"loop.output_dir={out}"))
    assert f"{completions} is 100 bytes but iteration 0 generate wrote" in line
    assert "loop.restart_from=0/generate" in line


@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_damaged_policy_weights_are_refused(stopped_after_generate, tmp_path, damage):
    out = copy(stopped_after_generate / "train" / "default", tmp_path)
    weights = out / "default" / "iter_000" / "train" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[-64:] = bytes(reversed(data[-64:]))
    weights.write_bytes(bytes(data))
    line = one_line(run_cli(*BASE, "loop.iterations=2", "evaluate.enabled=false", f"loop.output_dir={out}"))
    assert str(weights) in line and "loop.restart_from=0/train" in line


@pytest.fixture(scope="module")
def stopped_after_train(tmp_path_factory):
    """Iteration 0 through train (evaluate still to run): the same config as a full run, so a rerun
    without loop.stop_after resumes into evaluate."""
    out = tmp_path_factory.mktemp("integrity_train")
    proc = run_cli(*BASE, "loop.iterations=1", "loop.stop_after=train", f"loop.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_a_same_size_corruption_of_the_new_policy_is_refused_before_evaluate_loads_it(
    stopped_after_train, tmp_path
):
    out = copy(stopped_after_train / "default", tmp_path)
    weights = out / "default" / "iter_000" / "train" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(reversed(data[-64:]))  # same size: only the checksum can tell
    weights.write_bytes(bytes(data))
    line = one_line(run_cli(*BASE, "loop.iterations=1", f"loop.output_dir={out}"))
    assert str(weights) in line and "checksum" in line and "loop.restart_from=0/train" in line
    assert not (out / "default" / "iter_000" / "evaluate" / "_SUCCESS").exists()


def test_a_corrupted_kept_pairs_file_is_refused_by_export(stopped_after_train, tmp_path):
    import subprocess
    import sys

    from tests.integration.cli import REPO, cli_env

    out = copy(stopped_after_train / "default", tmp_path)
    kept = out / "default" / "iter_000" / "selection" / "kept_pairs.parquet"
    data = bytearray(kept.read_bytes())
    data[100:110] = bytes(10)
    kept.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "selfplay.report", "export", str(out / "default"), "--to", str(tmp_path / "pairs")],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert str(kept) in proc.stderr and "checksum" in proc.stderr and not (tmp_path / "pairs").exists()
