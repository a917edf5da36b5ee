"""Starting the processes a placement asks for (stage processes, shard workers, torchrun) with their
output in a log file, and reading back the stats they leave. Only the runner uses this module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from selfplay.errors import SelfplayError
from selfplay.loop.layout import STATS, RunLayout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start one process with `env` added to ours, stdout and stderr into `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def run_process(argv: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run one process to the end; its exit code."""
    return spawn(argv, env, log_path).wait()


def read_stats(folder: Path, what: str, rc: int, log_path: Path) -> dict[str, Any]:
    """The stats a finished stage process left in `folder` (then removed), or a one-line error naming
    the process's exit code and log."""
    stats_file = folder / STATS
    if rc != 0 or not stats_file.is_file():
        raise SelfplayError(
            f"{what} failed (exit {rc}{reason(RunLayout.error_file(folder))}); log {log_path}"
        )
    stats = json.loads(stats_file.read_text())
    stats_file.unlink()
    return stats


def reason(error_file: Path) -> str:
    """ ": <the process's one-line error>" when it left one, else nothing."""
    if not error_file.is_file():
        return ""
    return ": " + error_file.read_text().strip()


def write_stats(folder: Path, stats: dict[str, Any]) -> None:
    (folder / STATS).write_text(json.dumps(stats))
