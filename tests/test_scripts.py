"""Every script of bench/ and scripts/ still imports against today's code, and answers `--help` at once:
usage and exit 0, without importing torch (heavy imports stay inside the functions that run). What they
call is type-checked by `mypy selfplay bench scripts`; the GPU check itself is rehearsed in tests/slow/."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*REPO.glob("bench/*.py"), *REPO.glob("scripts/*.py")])
IDS = [str(p.relative_to(REPO)) for p in SCRIPTS]


def test_the_scripts_are_found():
    assert {"bench/loop.py", "bench/common.py", "scripts/gpu_check.py"} <= set(IDS)


@pytest.mark.parametrize("path", SCRIPTS, ids=IDS)
def test_imports_without_running(path: Path, monkeypatch):
    """Imported as a module (its `main` not run), as the bench scripts import each other: their folder on
    the path. What an import adds to the path, the environment and the module table is undone."""
    monkeypatch.setattr(sys, "path", [str(path.parent), *sys.path])
    environ = dict(os.environ)  # scripts set library defaults (threads, log levels) when imported
    before = set(sys.modules)
    name = f"_script_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through it
    try:
        spec.loader.exec_module(module)
        assert module.__doc__, f"{path.name}: no docstring saying what it does and how to run it"
        if path.name != "common.py":  # the bench scripts' shared helper is not a command
            assert callable(getattr(module, "main", None)), f"{path.name}: no main()"
    finally:
        os.environ.clear()
        os.environ.update(environ)
        local = {str(path.parent)}
        for added in set(sys.modules) - before:
            origin = getattr(sys.modules[added], "__file__", None) or ""
            if added == name or str(Path(origin).parent) in local:
                del sys.modules[added]


def help_of(path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(path), "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return path, proc


def test_every_script_answers_help_quickly_without_torch():
    """`python <script> --help` for every script (in parallel, one thread each): exit 0, a usage line,
    and torch never imported (`-X importtime` lists every module a process imports)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(help_of, SCRIPTS))
    problems = []
    for path, proc in results:
        name = str(path.relative_to(REPO))
        if proc.returncode != 0:
            problems.append(f"{name}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        if "usage:" not in proc.stdout:
            problems.append(f"{name}: no usage line in {proc.stdout[:200]!r}")
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        heavy = sorted(imported & {"torch", "transformers", "vllm", "trl", "datasets"})
        if heavy:
            problems.append(f"{name}: --help imports {', '.join(heavy)}")
    assert not problems, "\n".join(problems)
