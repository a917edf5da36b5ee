"""Starting the processes a placement asks for (stage processes, shard workers, training ranks) with their
output in a log file, watching them (heartbeat lines while they run; a process silent for
`loop.hang_timeout` or running past `loop.stage_timeout` is killed with its whole process group), and
reading back the stats they leave. Only the runner (and its shard pool) uses this module."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.data.jsonl import finite
from selfplay.errors import SelfplayError
from selfplay.loop.layout import STATS, RunLayout
from selfplay.progress import HEARTBEAT_ENV, describe, read_beat

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start one process (its own process group) with `env` added to ours, stdout and stderr into
    `log_path`, and its heartbeat file beside the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    heartbeat = heartbeat_file(log_path)
    heartbeat.unlink(missing_ok=True)
    with open(log_path, "w") as out:
        return subprocess.Popen(
            argv,
            env={**os.environ, **env, HEARTBEAT_ENV: str(heartbeat)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def heartbeat_file(log_path: Path) -> Path:
    return log_path.with_suffix(".heartbeat")


@dataclass(frozen=True)
class Watch:
    """How launched processes are watched (from `loop.*`)."""

    hang_timeout: float | None = None
    stage_timeout: float | None = None
    interval: float = 10.0
    progress: bool = True


class Watched:
    """A launched process, its log and what it last reported."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, name: str, watch: Watch):
        self.proc, self.log_path, self.name, self.watch = proc, log_path, name, watch
        self.started = self.last_line = time.time()

    def last_sign_of_life(self) -> float:
        try:
            return max(self.started, heartbeat_file(self.log_path).stat().st_mtime)
        except OSError:
            return self.started

    def check(self) -> str | None:
        """None while it is fine; else the reason it was killed (it is killed here)."""
        now = time.time()
        w = self.watch
        if w.stage_timeout is not None and now - self.started > w.stage_timeout:
            return self.kill(f"ran past loop.stage_timeout={w.stage_timeout:g}s")
        silent = now - self.last_sign_of_life()
        if w.hang_timeout is not None and silent > w.hang_timeout:
            return self.kill(f"silent for {silent:.0f}s (no progress; loop.hang_timeout={w.hang_timeout:g}s)")
        if w.progress and now - self.last_line >= w.interval:
            self.last_line = now
            beat = read_beat(heartbeat_file(self.log_path))
            if beat:
                text = describe(
                    beat.get("what", self.name),
                    int(beat.get("done", 0)),
                    beat.get("total"),
                    "",
                    now - self.started,
                )
                log.info("%s (pid %d): %s", self.name, self.proc.pid, text)
            else:
                log.info(
                    "%s (pid %d): running for %.0fs, no progress reported yet",
                    self.name,
                    self.proc.pid,
                    now - self.started,
                )
        return None

    def kill(self, why: str) -> str:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return why


def run_process(argv: list[str], env: dict[str, str], log_path: Path, name: str, watch: Watch) -> int:
    """Run one process to the end, watched; its exit code. A killed (hung or timed-out) process is a
    one-line error naming it, why, and its log."""
    watched = Watched(spawn(argv, env, log_path), log_path, name, watch)
    while watched.proc.poll() is None:
        why = watched.check()
        if why is not None:
            raise SelfplayError(f"{name} was killed: {why}; log {log_path}")
        time.sleep(0.2)
    return watched.proc.returncode


def run_processes(
    launches: list[tuple[list[str], dict[str, str], Path]], name: str, watch: Watch
) -> tuple[int, Path]:
    """Run processes that work together (training ranks) to the end, watched: (0, first log) when all
    succeed, else (exit code, log) of the first that failed; the others are then killed, as torchrun
    and srun --kill-on-bad-exit do, so that no rank waits forever for a dead peer."""
    procs = [Watched(spawn(argv, env, log_path), log_path, name, watch) for argv, env, log_path in launches]
    try:
        while True:
            running = 0
            for p in procs:
                rc = p.proc.poll()
                if rc is None:
                    why = p.check()
                    if why is not None:
                        raise SelfplayError(f"{name} was killed: {why}; log {p.log_path}")
                    running += 1
                elif rc != 0:
                    return rc, p.log_path
            if running == 0:
                return 0, procs[0].log_path
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.kill("a peer failed")


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
    (folder / STATS).write_text(json.dumps(finite(stats), allow_nan=False))
