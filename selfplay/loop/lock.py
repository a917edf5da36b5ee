"""One orchestrator per run directory: a lock file (`<run>/.lock`: pid, host, start time, SLURM job, the
pids of the processes the run launched) taken with an exclusive create and refreshed every few seconds
while the run lives. A second `python -m selfplay.run` on the same run (a run started twice, a requeued
SLURM job overlapping its predecessor) is refused in one line naming the holder; a lock whose holder is
gone is taken over: on this host and in this pid namespace when its pid is dead, or now belongs to
another process (told apart by the kernel's start time of the pid and the boot id, as after a
container restart that recycles pids); a requeued SLURM job's own earlier run (same job id, lower
restart count: SLURM starts the new run only after the old one ended) at once, whichever node holds
it; elsewhere when it has not been refreshed for `STALE_SECONDS`. A lock file that exists but is still
empty gets `EMPTY_GRACE_SECONDS` (its writer may be between creating and writing it).

A taken-over lock's launched processes (shard workers, stage processes, training ranks) end with
their orchestrator (parent-death signal), but a new run never works beside one: it waits up to
`CHILD_WAIT_SECONDS` for those on this host to end, and is refused, naming them, if they do not."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from selfplay.errors import SelfplayError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0
STALE_SECONDS = 120.0
EMPTY_GRACE_SECONDS = 10.0
CHILD_WAIT_SECONDS = 30.0


def _slurm() -> dict:
    env = os.environ
    if not env.get("SLURM_JOB_ID"):
        return {}
    return {
        "slurm_job": env["SLURM_JOB_ID"],
        "slurm_restart": int(env.get("SLURM_RESTART_COUNT", "0") or 0),
        "node": env.get("SLURMD_NODENAME"),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _process_start(pid: int) -> int | None:
    """When the kernel started process `pid` (clock ticks since boot; Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22; the name may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _same_process(holder: dict) -> bool:
    """Whether the holder's pid still runs the process that wrote the lock (this host, same pid
    namespace)."""
    pid = int(holder.get("pid", -1))
    if not _alive(pid):
        return False
    boot, started = holder.get("boot_id"), holder.get("process_start")
    here = _boot_id()
    if boot is not None and here is not None and boot != here:
        return False  # written before a reboot: its pid now names some other process
    now = _process_start(pid)
    return started is None or now is None or started == now


class RunLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "process_start": _process_start(os.getpid()),
            "boot_id": _boot_id(),
            "pid_namespace": _pid_namespace(),
            **_slurm(),
            "children": [],
        }

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _here(self, holder: dict) -> bool:
        """Whether the holder's pids mean something here (this host, this pid namespace)."""
        theirs, mine = holder.get("pid_namespace"), self.me["pid_namespace"]
        return holder.get("host") == self.me["host"] and (theirs is None or mine is None or theirs == mine)

    def stale(self, holder: dict | None) -> bool:
        if holder is None:  # unreadable: a crash while it was written, or a writer about to write it
            try:
                return time.time() - self.path.stat().st_mtime > EMPTY_GRACE_SECONDS
            except OSError:
                return True
        mine = self.me.get("slurm_job")
        if (
            mine is not None
            and holder.get("slurm_job") == mine
            and int(holder.get("slurm_restart", 0)) < int(self.me.get("slurm_restart", 0))
        ):
            return True  # this requeued job's earlier run: SLURM ended it before starting this one
        if self._here(holder):
            return not _same_process(holder)
        # Another host, or another pid namespace on this one (containers sharing the host's name):
        # its pids mean nothing here, only whether it still refreshes the lock.
        try:
            return time.time() - self.path.stat().st_mtime > STALE_SECONDS
        except OSError:
            return True

    def wait_for_children(self, holder: dict | None) -> None:
        """The stale holder's launched processes on this host must be gone before this run works."""
        if not holder or not self._here(holder):
            return
        deadline = time.time() + CHILD_WAIT_SECONDS
        while True:
            alive = [c for c in holder.get("children", []) if _same_process(c)]
            if not alive:
                return
            if time.time() > deadline:
                pids = ", ".join(str(c["pid"]) for c in alive)
                raise SelfplayError(
                    f"run '{self.path.parent}': processes of an earlier run of it are still alive (pid {pids}, "
                    f"{CHILD_WAIT_SECONDS:g}s after its orchestrator died); end them (kill {pids}) and rerun"
                )
            time.sleep(0.2)

    def record_children(self, pids: list[int]) -> None:
        """Keep the pids of the processes this run launched in the lock (see `wait_for_children`)."""
        self.me["children"] = [
            {"pid": pid, "process_start": _process_start(pid), "boot_id": self.me["boot_id"]} for pid in pids
        ]
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.me))
            os.replace(tmp, self.path)
        except OSError:  # a full disk: the pids are a safeguard, the run goes on
            tmp.unlink(missing_ok=True)

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            probe = self.path.parent / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as err:  # a path under a regular file, a read-only folder, a full disk
            raise SelfplayError(
                f"loop.output_dir: cannot write the run directory '{self.path.parent}' ({err.strerror or err})"
            ) from None
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if not self.stale(holder):
                    who = (
                        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                        if holder
                        else "?"
                    )
                    raise SelfplayError(
                        f"run '{self.path.parent}' is in use by another selfplay process ({who}); wait for it, "
                        f"or remove {self.path} if that process is gone"
                    ) from None
                if self.holder() != holder:  # another starter took it over meanwhile: look again
                    continue
                log.warning("taking over the stale lock of %s (%s)", self.path.parent, holder)
                self.wait_for_children(holder)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.me))
            self.thread = threading.Thread(target=self._refresh, daemon=True)
            self.thread.start()
            return
        raise SelfplayError(f"run '{self.path.parent}': could not take its lock {self.path}")

    def _refresh(self) -> None:
        while not self.stop.wait(REFRESH_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=1)
        holder = self.holder()
        if (
            holder is not None
            and holder.get("pid") == self.me["pid"]
            and holder.get("host") == self.me["host"]
        ):
            self.path.unlink(missing_ok=True)
