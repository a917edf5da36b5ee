"""Starting the processes a placement asks for (stage processes, shard workers, training ranks) with their
output in a log file, watching them (heartbeat lines while they run; a process silent for
`loop.hang_timeout` or running past `loop.stage_timeout` is killed with its whole process group), and
reading back the stats they leave. Only the runner (and its shard pool) uses this module.

Nothing outlives the run that started it: every launched process gets a parent-death signal (Linux
`PR_SET_PDEATHSIG`: SIGKILL for our own workers, SIGTERM for `srun`, which then ends its step on every
node), so a kill -9 of the orchestrator ends them too; on Ctrl-C or SIGTERM the orchestrator stops
them itself (`stop_all`: SIGTERM to each process group, SIGKILL after a grace period). The pids of the
live processes are kept in the run's lock (`on_change`), so a new start can wait for them."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.data.jsonl import finite
from selfplay.errors import SelfplayError
from selfplay.progress import HEARTBEAT_ENV, PER_RANK_ENV, progress_line, rank_heartbeat, read_beat
from selfplay.rundir.layout import STATS, RunLayout
from selfplay.rundir.stats import StageStats

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 5.0

LIVE: dict[int, subprocess.Popen] = {}
"""Every process this process launched that has not been reaped, by pid."""
on_change: Callable[[list[int]], None] | None = None
"""Told the live pids whenever they change (the run lock records them)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal(sig: int, parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: ask the kernel for `sig` when our parent dies, and
    give up at once if it already has (the race before the request)."""

    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def _changed() -> None:
    if on_change is not None:
        with contextlib.suppress(Exception):
            on_change(sorted(LIVE))


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start one process (its own process group) with `env` added to ours, stdout and stderr into
    `log_path`, and its heartbeat file beside the log. It dies with this process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    heartbeat = heartbeat_file(log_path)
    heartbeat.unlink(missing_ok=True)
    for stale in heartbeat.parent.glob(heartbeat.name + ".rank*"):
        stale.unlink(missing_ok=True)
    death = signal.SIGTERM if argv and Path(argv[0]).name == "srun" else signal.SIGKILL
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env, HEARTBEAT_ENV: str(heartbeat)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(int(death), os.getpid()),  # noqa: PLW1509
        )
    LIVE[proc.pid] = proc
    _changed()
    return proc


def reap(proc: subprocess.Popen) -> None:
    if proc.poll() is not None and LIVE.pop(proc.pid, None) is not None:
        _changed()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group of a process we launched (its own session: the group is its pid)."""
    if LIVE.get(proc.pid) is not proc or proc.pid <= 1:
        return  # not ours (or already reaped and forgotten): never signal a stranger's group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """End a launched process and its process group: SIGTERM (srun passes it to its tasks), then
    SIGKILL after `grace` seconds; what its leader left behind in the group is killed too."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    _signal_group(proc, signal.SIGKILL)  # still in LIVE until reaped below: its group, not a stranger's
    reap(proc)


def stop_all(grace: float = STOP_GRACE_SECONDS) -> None:
    """End every process this process launched (Ctrl-C, SIGTERM, an error): SIGTERM to all at once,
    then SIGKILL to those still alive after `grace` seconds."""
    procs = list(LIVE.values())
    for p in procs:
        if p.poll() is None:
            _signal_group(p, signal.SIGTERM)
    deadline = time.time() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.time()))
        stop(p, 0.0)
    if procs:
        log.info("stopped %d launched process(es)", len(procs))


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

    def __init__(self, proc: subprocess.Popen, log_path: Path, name: str, watch: Watch, ranks: int = 0):
        """`ranks` > 0: the process is an srun step of that many training ranks, each beating into
        its own file; the quietest one decides."""
        self.proc, self.log_path, self.name, self.watch, self.ranks = proc, log_path, name, watch, ranks
        self.started = self.last_line = time.time()

    def _beat_time(self, path: Path | str) -> float:
        try:
            return max(self.started, Path(path).stat().st_mtime)
        except OSError:
            return self.started

    def last_sign_of_life(self) -> float:
        beat = heartbeat_file(self.log_path)
        if not self.ranks:
            return self._beat_time(beat)
        return min(self._beat_time(rank_heartbeat(beat, r)) for r in range(self.ranks))

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
            path = heartbeat_file(self.log_path)
            beat = read_beat(Path(rank_heartbeat(path, 0)) if self.ranks else path)
            if beat:
                text = progress_line(
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
        stop(self.proc, grace=STOP_GRACE_SECONDS if self.ranks else 0.0)
        return why

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None:
            reap(self.proc)
        return rc


def run_process(argv: list[str], env: dict[str, str], log_path: Path, name: str, watch: Watch) -> int:
    """Run one process to the end, watched; its exit code. A killed (hung or timed-out) process is a
    one-line error naming it, why, and its log."""
    watched = Watched(spawn(argv, env, log_path), log_path, name, watch)
    try:
        while watched.poll() is None:
            why = watched.check()
            if why is not None:
                raise SelfplayError(f"{name} was killed: {why}; log {log_path}")
            time.sleep(0.2)
    finally:
        stop(watched.proc)  # an exception here (Ctrl-C, SIGTERM) ends it too
    return watched.proc.returncode


def run_processes(
    launches: list[tuple[list[str], dict[str, str], Path]],
    name: str,
    watch: Watch,
    ranks: int = 0,
    tick: Callable[[], None] | None = None,
) -> tuple[int, Path]:
    """Run processes that work together (training ranks) to the end, watched: (0, first log) when all
    succeed, else (exit code, log) of the first that failed; the others are then stopped, as torchrun
    and srun --kill-on-bad-exit do, so that no rank waits forever for a dead peer. `ranks`: a single
    launch that is an srun step of that many ranks (each beats into its own heartbeat file). `tick`:
    called about once a second while they run (the tracker's live forwarding)."""
    procs = []
    last_tick = 0.0
    for argv, env, log_path in launches:
        extra = {**env, PER_RANK_ENV: "1"} if ranks else env
        procs.append(Watched(spawn(argv, extra, log_path), log_path, name, watch, ranks))
    try:
        while True:
            running = 0
            for p in procs:
                rc = p.poll()
                if rc is None:
                    why = p.check()
                    if why is not None:
                        raise SelfplayError(f"{name} was killed: {why}; log {p.log_path}")
                    running += 1
                elif rc != 0:
                    return rc, p.log_path
            if running == 0:
                if tick is not None:
                    tick()
                return 0, procs[0].log_path
            if tick is not None and time.time() - last_tick >= 1.0:
                last_tick = time.time()
                tick()
            time.sleep(0.2)
    finally:
        for p in procs:
            stop(p.proc)


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


def worker_threads(cfg: Any) -> None:
    """A launched process uses `loop.threads` CPU threads, or the CPUs its SLURM step was given (torch
    would otherwise start a thread per core of the node in every process: processes side by side then
    slow each other down many times). Where SLURM does not pin the step to its CPUs, vLLM's CPU engine
    is told not to bind its threads to cores of its own choosing."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    threads = cfg.loop.threads or (int(cpus) if cpus.isdigit() else None)
    if not threads:
        return
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if cpus and not torch.cuda.is_available() and len(os.sched_getaffinity(0)) > threads:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


def write_placement(folder: Path, shard: int | None = None, rank: int | None = None) -> None:
    """Record where this launched process runs (node, devices as the scheduler bound them), for the
    stage's stats: `placement` lists one entry per shard, stage process or training rank."""
    env = os.environ
    record: dict[str, Any] = {
        "node": env.get("SLURMD_NODENAME") or socket.gethostname(),
        "pid": os.getpid(),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }
    for key, name in (("SLURM_STEP_GPUS", "slurm_step_gpus"), ("SLURM_STEP_ID", "slurm_step"),
                      ("SLURM_JOB_ID", "slurm_job"), ("SLURM_LOCALID", "local_rank")):  # fmt: skip
        if env.get(key) is not None:
            record[name] = env[key]
    if shard is not None:
        record["shard"] = shard
    if rank is not None:
        record["rank"] = rank
    with contextlib.suppress(OSError):
        RunLayout.where_file(folder, shard, rank).write_text(json.dumps(record))


def write_stats(folder: Path, stats: StageStats) -> None:
    (folder / STATS).write_text(json.dumps(finite(stats.to_dict()), allow_nan=False))
