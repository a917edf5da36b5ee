"""Long-lived workers, one per engine slot (`loop.workers`): started once per run, each holds its
generation engine for the whole run and runs every shard the orchestrator sends it (generate, judge,
logprobs, evolve, evaluate, of every iteration), so a run starts one engine per slot instead of one per
shard process and stage.

Why not vLLM's OpenAI server or Ray: a worker runs our own stage cores (records byte-identical to a
shard process's, with the same seeds, rendering and CPU engine fixes), judges and teacher-forced passes
too, not only sampling; and it needs nothing that listens. The orchestrator and its workers talk through
two small files per worker in the run directory, which every node of a job already shares (the task,
written by the orchestrator; the answer, written by the worker; each written atomically), so there is
no socket, port or secret for anyone to reach, and a worker is placed like any shard process: a local
process with its slot's devices, or a SLURM step whose GPUs SLURM binds. A worker dies with the run
(parent-death signal; srun ends its step), and a worker that dies is started again, only its
unfinished shard redone.

Memory: a worker's engine sleeps (GPUs) before it runs a shard that does not sample, and every worker's
engine sleeps before training; torch's cache is emptied before an engine wakes or a model loads."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.config import Config
from selfplay.errors import SelfplayError, sigterm_raises
from selfplay.loop import launch
from selfplay.loop.cluster import Resources
from selfplay.loop.placement import Placement, show, worker_command
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import RunLayout

log = logging.getLogger(__name__)

TASK, ANSWER = "task.json", "answer.json"
RELEASE_TIMEOUT = 600.0
DEATHS_PER_SHARD = 2
"""A shard whose worker died this many times fails its stage (a crash that would repeat forever)."""


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# The worker process.


def run_worker(cfg: Config, slot: int, table=None) -> None:
    """`python -m selfplay.run <overrides> task.worker=<slot>`: serve tasks until told to stop (or the
    orchestrator dies: the parent-death signal)."""
    from selfplay import progress
    from selfplay.generate.engine_pool import POOL
    from selfplay.loop.launch import worker_threads, write_placement
    from selfplay.loop.preflight import starting_policy
    from selfplay.loop.run_config import save_or_check
    from selfplay.loop.shards import run_shard
    from selfplay.stages.table import STAGES, stage

    table = table or STAGES

    layout = RunLayout.of(cfg)
    save_or_check(layout, cfg, check_only=True)
    initial = starting_policy(cfg)
    worker_threads(cfg)
    folder = layout.worker_dir(slot)
    done = -1
    answer = _read(folder / ANSWER)
    if answer is not None:
        done = int(answer["id"])
    last_beat = 0.0
    with sigterm_raises():
        try:
            while True:
                now = time.time()
                if now - last_beat >= 1.0:
                    progress.beat(f"worker {slot}: waiting for work")
                    last_beat = now
                task = _read(folder / TASK)
                if task is None or int(task["id"]) <= done:
                    time.sleep(0.05)
                    continue
                done = int(task["id"])
                reply: dict[str, Any] = {"id": done, "ok": True}
                if task["kind"] == "stop":
                    _write(folder / ANSWER, reply)
                    return
                if task["kind"] == "release":
                    POOL.release_memory()
                else:
                    spec = stage(task["stage"], table)
                    assert spec.sharded is not None
                    t, shard, shards = int(task["iteration"]), int(task["shard"]), int(task["shards"])
                    partial = layout.partial_dir(t, spec.name)
                    policy = initial if t == 0 else str(layout.policy_dir(t - 1))
                    ctx = StageContext(cfg, layout, t, partial, policy, initial, spec.name)
                    if not spec.samples:
                        POOL.release_memory()  # a judge or a teacher-forced pass needs the GPU
                    POOL.free_cache()
                    write_placement(partial, shard=shard)
                    try:
                        run_shard(ctx, spec.sharded, shard, shards)
                    except SelfplayError as err:  # bad input: report it, keep serving
                        RunLayout.error_file(partial, shard).write_text(str(err) + "\n")
                        reply = {"id": done, "ok": False, "error": str(err)}
                reply["engine_starts"] = POOL.starts
                _write(folder / ANSWER, reply)
        finally:
            POOL.close()


# The orchestrator's side.


@dataclass
class Worker:
    slot: int
    watched: launch.Watched
    task: dict[str, Any] | None = None
    assigned: float = 0.0


class WorkerPool:
    """The run's workers, started at their first task; one task at a time each."""

    def __init__(self, layout: RunLayout, res: Resources, where: Placement, relaunch: list[str] | None):
        self.layout, self.res, self.where, self.relaunch = layout, res, where, relaunch
        self.workers: dict[int, Worker] = {}
        self.next_id = 0
        self.starts = 0

    def _start(self, slot: int, watch: launch.Watch) -> Worker:
        if self.relaunch is None:
            raise SelfplayError(
                "loop.workers: workers need the run's command line (run through python -m selfplay.run)"
            )
        s = self.where.slots[slot]
        folder = self.layout.worker_dir(slot)
        folder.mkdir(parents=True, exist_ok=True)
        for f in (TASK, ANSWER):
            (folder / f).unlink(missing_ok=True)
        argv = worker_command(self.relaunch, s, slot, self.res)
        log_path = self.layout.worker_log(slot)
        proc = launch.spawn(argv, s.env, log_path)
        self.starts += 1
        log.info("worker %d started (pid %d, log %s): %s", slot, proc.pid, log_path, show(argv))
        # A worker lives for the run: only silence (hang_timeout) kills it; stage_timeout is per shard.
        lasting = launch.Watch(watch.hang_timeout, None, watch.interval, watch.progress)
        worker = Worker(slot, launch.Watched(proc, log_path, f"worker {slot}", lasting))
        self.workers[slot] = worker
        return worker

    def _send(self, worker: Worker, task: dict[str, Any]) -> None:
        self.next_id += 1
        worker.task = {**task, "id": self.next_id}
        worker.assigned = time.time()
        _write(self.layout.worker_dir(worker.slot) / TASK, worker.task)

    def _answer(self, worker: Worker) -> dict[str, Any] | None:
        answer = _read(self.layout.worker_dir(worker.slot) / ANSWER)
        if answer is not None and worker.task is not None and answer["id"] == worker.task["id"]:
            return answer
        return None

    def run_shards(
        self, ctx: StageContext, stage: str, shard_ids: list[int], shards: int, watch: launch.Watch
    ) -> None:
        """Run these shards on the workers (each slot takes the next one when it is free); a worker
        that dies is started again and its shard redone. Fails naming every failed shard."""
        queue, deaths, failed = list(shard_ids), dict.fromkeys(shard_ids, 0), []
        slots = list(range(self.where.workers))
        for slot in slots:
            if slot not in self.workers or self.workers[slot].watched.poll() is not None:
                self._start(slot, watch)
        busy: dict[int, int] = {}  # slot -> shard
        while queue or busy:
            for slot in slots:
                worker = self.workers[slot]
                if slot not in busy and queue:
                    shard = queue.pop(0)
                    busy[slot] = shard
                    ctx.layout.error_file(ctx.out, shard).unlink(missing_ok=True)
                    self._send(worker, {"kind": "shard", "stage": stage, "iteration": ctx.iteration,
                                        "shard": shard, "shards": shards})  # fmt: skip
                    log.info(
                        "iteration %d %s: shard %d/%d on worker %d", ctx.iteration, stage, shard, shards, slot
                    )
                if slot not in busy:
                    continue
                shard = busy[slot]
                answer = self._answer(worker)
                if answer is not None:
                    del busy[slot]
                    if not answer["ok"]:
                        failed.append(
                            f"shard {shard}/{shards} ({answer.get('error')}; log {worker.watched.log_path})"
                        )
                    continue
                killed = worker.watched.check() if worker.watched.poll() is None else None
                if watch.stage_timeout is not None and time.time() - worker.assigned > watch.stage_timeout:
                    killed = worker.watched.kill(f"ran past loop.stage_timeout={watch.stage_timeout:g}s")
                if worker.watched.poll() is None:
                    continue
                del busy[slot]  # the worker is gone: it will be started again
                why = killed or f"exit {worker.watched.proc.returncode}"
                deaths[shard] += 1
                if killed is not None:
                    failed.append(
                        f"shard {shard}/{shards} killed on worker {slot}: {killed} (log {worker.watched.log_path})"
                    )
                elif deaths[shard] >= DEATHS_PER_SHARD:
                    failed.append(
                        f"shard {shard}/{shards} (worker {slot} died {deaths[shard]} times, last {why}; "
                        f"log {worker.watched.log_path})"
                    )
                else:
                    log.warning(
                        "iteration %d %s: worker %d died (%s) in shard %d; starting it again, the shard is redone",
                        ctx.iteration, stage, slot, why, shard,
                    )  # fmt: skip
                    queue.insert(0, shard)
                self._start(slot, watch)
            time.sleep(0.05)
        if failed:
            raise SelfplayError(
                f"iteration {ctx.iteration} {stage}: {len(failed)} shard(s) failed: {'; '.join(failed)}. "
                "Finished shards are kept; rerun the same command to redo only the missing ones"
            )

    def release(self) -> None:
        """Every live worker frees its engine's GPU memory (before training); waits for them."""
        live = [w for w in self.workers.values() if w.watched.poll() is None]
        for w in live:
            self._send(w, {"kind": "release"})
        deadline = time.time() + RELEASE_TIMEOUT
        for w in live:
            while self._answer(w) is None and w.watched.poll() is None:
                if time.time() > deadline:
                    raise SelfplayError(
                        f"worker {w.slot} did not free its engine's memory within {RELEASE_TIMEOUT:g}s (log {w.watched.log_path})"
                    )
                time.sleep(0.05)
            w.task = None

    def close(self, grace: float = 30.0) -> None:
        """Tell the workers to stop (their engines shut down), then end any that did not."""
        live = [w for w in self.workers.values() if w.watched.poll() is None]
        for w in live:
            self._send(w, {"kind": "stop"})
        deadline = time.time() + grace
        for w in live:
            while w.watched.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            launch.stop(w.watched.proc)
        self.workers.clear()
