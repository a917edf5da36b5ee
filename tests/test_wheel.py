"""The installed package stands alone: a wheel built from this checkout, installed into a fresh virtual
environment, composes the Hydra configs (shipped from conf/ as `selfplay.conf`) from outside the
source tree, through the compose API and through `python -m selfplay.run --cfg job`."""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("selfplay-*.whl")
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies come from this environment's site-packages (a plain path entry: its .pth files,
    # among them this checkout's editable install, are not processed, so only the wheel's selfplay exists).
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run_outside(python, code_or_args, tmp_path):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([str(python), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_the_wheel_composes_the_configs_outside_the_source_tree(wheel_python, tmp_path):
    code = """
import selfplay, pathlib
from hydra import compose, initialize_config_module
from selfplay.run import to_config
from selfplay.training.trl_args import deepspeed_config
import sys
assert selfplay.__file__.startswith(sys.prefix), (selfplay.__file__, sys.prefix)
with initialize_config_module(config_module="selfplay.conf", version_base=None):
    cfg = to_config(compose(config_name="config", overrides=["experiment=llama3_8b_dpo"]))
print(cfg.model.path, cfg.train.deepspeed, pathlib.Path(deepspeed_config("zero3")).is_file())
"""
    proc = run_outside(wheel_python, code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["meta-llama/Meta-Llama-3-8B-Instruct", "zero3", "True"]


def test_the_wheel_runs_the_cli(wheel_python, tmp_path):
    proc = run_outside(wheel_python, ["-m", "selfplay.run", "--cfg", "job", "debug=tiny"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "per_iteration: 12" in proc.stdout and "iterations: 2" in proc.stdout
