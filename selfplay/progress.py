"""Progress of long loops (responses generated, judged, sequences scored, training steps): counts,
rate and ETA as plain log lines at a fixed interval, never carriage-return bar frames; and a heartbeat
file that an orchestrator watching a worker process reads to tell progress from a hang.

Settings travel in the environment, so worker processes inherit them: SELFPLAY_PROGRESS=0 silences
the lines (loop.progress=false), SELFPLAY_PROGRESS_EVERY sets their interval in seconds, and
SELFPLAY_HEARTBEAT names the file a launched process writes its progress to.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

HEARTBEAT_ENV = "SELFPLAY_HEARTBEAT"
PER_RANK_ENV = "SELFPLAY_HEARTBEAT_PER_RANK"
"""Set for a launch whose tasks share one heartbeat path (an srun step of every training rank): each
task then beats into `<path>.rank<r>`, and the watcher takes the quietest rank."""
PROGRESS_ENV = "SELFPLAY_PROGRESS"
EVERY_ENV = "SELFPLAY_PROGRESS_EVERY"

log = logging.getLogger("selfplay.progress")


def configure(enabled: bool, every: float) -> None:
    """Set the progress settings for this process and every process it starts."""
    os.environ[PROGRESS_ENV] = "1" if enabled else "0"
    os.environ[EVERY_ENV] = str(every)


def _enabled() -> bool:
    return os.environ.get(PROGRESS_ENV, "1") != "0"


def _every() -> float:
    try:
        return float(os.environ.get(EVERY_ENV, "10"))
    except ValueError:
        return 10.0


def beat(what: str, done: int = 0, total: int | None = None, **extra: Any) -> None:
    """Write this process's heartbeat (when it was started with one): progress is being made."""
    path = os.environ.get(HEARTBEAT_ENV)
    if not path:
        return
    if os.environ.get(PER_RANK_ENV):
        path = rank_heartbeat(path, int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0"))))
    record = {"what": what, "done": done, "total": total, "time": time.time(), **extra}
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:  # a full disk must not stop the work itself; the watcher sees silence
        pass


def rank_heartbeat(path: str | Path, rank: int) -> str:
    return f"{path}.rank{rank}"


def read_beat(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(
    what: str,
    done: int,
    total: int | None,
    unit: str,
    elapsed: float,
    extra: dict | None = None,
    steady_rate: float | None = None,
) -> str:
    """`steady_rate`: the rate since the first unit finished (model loads, compilation and the first
    batch's warm-up left out), which the ETA uses when given; the rate shown is the overall one."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{what}: {done}" + (f"/{total}" if total else "") + (f" {unit}" if unit else "")
    if total:
        text += f" ({100 * done / total:.0f}%)"
    text += f", {rate:.1f}/s"
    pace = rate if steady_rate is None else steady_rate
    if total and pace > 0 and done < total:
        text += f", ETA {_clock((total - done) / pace)}"
    for k, v in (extra or {}).items():
        text += f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}"
    return text


class Progress:
    """`with Progress("iteration 0 generate", total, "responses") as p: ... p.update(n)`"""

    def __init__(self, what: str, total: int | None, unit: str = "", lines: bool = True):
        """`lines=False`: heartbeats only (a training rank other than 0: rank 0 prints the lines)."""
        self.what, self.total, self.unit, self.lines = what, total, unit, lines
        self.done = 0
        self.extra: dict[str, Any] = {}
        self.start = self.last_line = self.last_beat = time.time()
        self.first: tuple[float, int] | None = None
        """When the first units finished, and how many: the ETA's rate is measured from there."""
        beat(what, 0, total)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def steady_rate(self, now: float) -> float | None:
        """Units per second since the first update (None until a second one)."""
        if self.first is None or now <= self.first[0] or self.done <= self.first[1]:
            return None
        return (self.done - self.first[1]) / (now - self.first[0])

    def update(self, n: int = 1, **extra: Any) -> None:
        self.done += n
        self.extra.update(extra)
        now = time.time()
        if self.first is None:
            self.first = (now, self.done)
        if now - self.last_beat >= 1.0:
            self.last_beat = now
            beat(self.what, self.done, self.total, **self.extra)
        if self.lines and _enabled() and now - self.last_line >= _every():
            self.last_line = now
            steady = self.steady_rate(now)
            if steady is None and self.total and self.done < self.total:
                steady = 0.0  # one update so far: its rate includes the warm-up, so no ETA yet
            log.info(
                progress_line(
                    self.what, self.done, self.total, self.unit, now - self.start, self.extra, steady
                )
            )

    def close(self) -> None:
        elapsed = time.time() - self.start
        beat(self.what, self.done, self.total, **self.extra)
        if self.lines and _enabled() and self.done:
            log.info(
                progress_line(self.what, self.done, self.total, self.unit, elapsed, self.extra)
                + f" in {elapsed:.1f}s"
            )


def vllm_tqdm(progress: Progress):
    """A tqdm class for vLLM's `use_tqdm=` that draws nothing and forwards finished requests (times
    the samples each) to `progress`."""
    from tqdm import tqdm

    class Forwarding(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
            kwargs["disable"] = False  # counts must flow even where TQDM_DISABLE is set
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            super().update(n)
            if str(getattr(self, "desc", "")).startswith("Processed"):
                progress.update(n)

        def close(self):
            super().close()
            if not self.fp.closed:
                self.fp.close()

    return Forwarding
