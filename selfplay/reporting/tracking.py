"""Experiment tracking: one tracked run per selfplay run (TensorBoard, W&B or Trackio, whichever is
installed and chosen), logged from the stage markers as stages finish.

Two step axes, both monotonic across iterations and resumes: `iteration` for each stage's stats
(`<stage>/<stat>`: held-out reward, win rates, margins, kept and dropped counts, train loss and reward
accuracy, seconds, ...), and `train/global_step` for TRL's per-step history (`train_step/<key>`: loss,
rewards, learning rate; the optimizer steps of earlier iterations are added, so it never restarts). What
was logged is remembered in `<run>/tracking/state.json`: a resumed run continues the same tracked run and
never logs a stage or a step twice.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from pathlib import Path
from typing import Any

from selfplay.config import TrackingConfig
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.layout import COMPLETION_TABLE, TRAIN_HISTORY, RunLayout
from selfplay.rundir.stats import Finished, TrainStats, typed

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboardX", "wandb": "wandb", "trackio": "trackio"}


def check_backend(cfg: TrackingConfig) -> None:
    """A chosen backend must be installed (one line naming the package otherwise)."""
    backend = str(cfg.backend)
    if backend == "none":
        return
    import importlib

    try:
        importlib.import_module(PACKAGES[backend])
    except ImportError:
        raise SelfplayError(
            f"tracking.backend={backend}: the '{PACKAGES[backend]}' package is not installed "
            f"(pip install {PACKAGES[backend]}), or use tracking.backend=none"
        ) from None


class Tracker:
    """Logs stage stats and training history once each; subclasses write to one backend."""

    def __init__(self, layout: RunLayout, cfg: TrackingConfig, run_config: dict[str, Any]):
        self.layout, self.cfg = layout, cfg
        self.state_file = layout.tracking_dir / "state.json"
        self.state: dict[str, Any] = {"logged": [], "train_steps": {}, "run_id": uuid.uuid4().hex[:12]}
        if self.state_file.is_file():
            self.state = json.loads(self.state_file.read_text())
        layout.tracking_dir.mkdir(parents=True, exist_ok=True)
        self._live_pos: dict[str, int] = {}  # bytes of each live history file already read
        self.open(run_config)

    # Backend interface.
    def open(self, run_config: dict[str, Any]) -> None:  # pragma: no cover - per backend
        raise NotImplementedError

    def write(self, metrics: dict[str, float], step_name: str, step: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        """A table of rows (dicts with the same keys) at `step`; backends without tables skip it."""

    def close(self) -> None:
        pass

    # What is logged.
    def stage_done(self, done: Finished) -> None:
        iteration, stage = done.iteration, done.stage
        key = f"{iteration}/{stage}"
        if key in self.state["logged"]:
            return
        metrics = {f"{stage}/{k}": v for k, v in done.stats.numbers().items() if math.isfinite(v)}
        metrics[f"{stage}/seconds"] = float(done.seconds)
        self.write(metrics, "iteration", iteration)
        train = typed(done, TrainStats) if stage == sn.TRAIN else None
        if train is not None:
            self.train_history(iteration, train)
        table = self.layout.stage_dir(iteration, stage) / COMPLETION_TABLE
        if stage == sn.EVALUATE and table.is_file():
            rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
            if rows:
                self.table("evaluate/completions", rows, iteration)
        self.state["logged"].append(key)
        self.save()

    def train_history(self, iteration: int, stats: TrainStats) -> None:
        """TRL's per-step log history, on a run-global optimizer step: what the live forwarding
        (`follow_training`) has not already logged."""
        path = self.layout.stage_dir(iteration, sn.TRAIN) / TRAIN_HISTORY
        if path.is_file():
            self._forward(iteration, path.read_text().splitlines())
        self.state["train_steps"][str(iteration)] = int(stats.optimizer_steps or 0)

    def follow_training(self, iteration: int, path: Path) -> None:
        """While the train stage runs: log the entries the training process has appended to `path`
        since the last call (selfplay/training/trainer.py's live history); only new bytes are read."""
        pos = self._live_pos.get(str(path), 0)
        try:
            with path.open("rb") as f:
                f.seek(pos)
                new = f.read()
        except OSError:
            return
        end = new.rfind(b"\n") + 1  # a last line still being written waits for the next call
        if end == 0:
            return
        self._live_pos[str(path)] = pos + end
        if self._forward(iteration, new[:end].decode().splitlines()):
            self.save()

    def _forward(self, iteration: int, lines: list[str]) -> int:
        """Log each entry once: per kind of entry (its set of keys: a training step, the final summary)
        the last step logged is kept in the state, so entries a resumed training logs again (the steps
        between its checkpoint and the kill) and the history file after the stage add nothing."""
        offset = sum(int(v) for t, v in self.state["train_steps"].items() if int(t) < iteration)
        done = self.state.setdefault("train_logged", {}).setdefault(str(iteration), {})
        logged = 0
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            step = int(entry.get("step", 0))
            metrics = {
                f"train_step/{k}": float(v)
                for k, v in entry.items()
                if k not in ("step", "epoch") and _number(v)
            }
            kind = ",".join(sorted(metrics))
            if not metrics or step <= done.get(kind, -1):
                continue
            self.write(metrics, "train/global_step", offset + step)
            done[kind] = step
            logged += 1
        return logged

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_file)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


class TensorBoardTracker(Tracker):
    """Event files under tracking/tensorboard/ (`tensorboard --logdir <run>/tracking`), written
    synchronously: tensorboardX's SummaryWriter queues events for a background thread and its flush
    does not wait for that queue, so a kill right after a stage could lose scalars already recorded as
    logged in the state file. Each write here is on disk before the state says so."""

    def open(self, run_config: dict[str, Any]) -> None:
        from tensorboardX.event_file_writer import EventsWriter

        folder = self.layout.tracking_dir / "tensorboard"
        folder.mkdir(parents=True, exist_ok=True)
        # A name of its own per opening, in opening order: the library's name (prefix, second, host) is
        # the same for two openings within one second (a quick resume), and the second would truncate
        # the first's file.
        import time

        self.writer = EventsWriter(str(folder / "events"), filename_suffix=f".{time.time_ns()}")

    def write(self, metrics: dict[str, float], step_name: str, step: int) -> None:
        import time

        from tensorboardX.proto import event_pb2
        from tensorboardX.summary import scalar

        for tag, value in metrics.items():
            self.writer.write_event(
                event_pb2.Event(wall_time=time.time(), step=step, summary=scalar(tag, value))
            )
        self.writer.flush()

    def table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        """A Markdown table as a TensorBoard text summary (the Text tab renders it)."""
        import time

        from tensorboardX.proto import event_pb2
        from tensorboardX.summary import text

        self.writer.write_event(
            event_pb2.Event(wall_time=time.time(), step=step, summary=text(name, markdown_table(rows)))
        )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def sweep_group(run_config: dict[str, Any]) -> str | None:
    """The sweep a run belongs to: a Hydra multirun job's run name is `<loop.run_name>/<its swept
    values>` (selfplay/run.py), and its jobs share the part before the slash; None outside a sweep."""
    name = str(run_config.get("loop", {}).get("run_name", ""))
    return name.split("/", 1)[0] if "/" in name else None


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a Markdown table; cells on one line, pipes escaped."""

    def cell(v: Any) -> str:
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


class WandbTracker(Tracker):
    """One W&B run per selfplay run (its id kept in <run>/tracking/state.json; resumed with it)."""

    def open(self, run_config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=self.cfg.project,
            name=self.layout.root.name,
            group=sweep_group(run_config),
            id=self.state["run_id"],
            resume="allow",
            dir=str(self.layout.tracking_dir),
            config=run_config,
        )
        for axis, prefix in (("iteration", "*"), ("train/global_step", "train_step/*")):
            self.run.define_metric(axis)
            self.run.define_metric(prefix, step_metric=axis)

    def write(self, metrics: dict[str, float], step_name: str, step: int) -> None:
        self.run.log({**metrics, step_name: step})

    def table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        import wandb

        keys = list(rows[0])
        self.run.log(
            {
                name: wandb.Table(columns=keys, data=[[r.get(k) for k in keys] for r in rows]),
                "iteration": step,
            }
        )

    def close(self) -> None:
        self.run.finish()


class TrackioTracker(Tracker):
    """One Trackio run per selfplay run (resumed by name)."""

    def open(self, run_config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        trackio.init(
            project=self.cfg.project,
            name=f"{self.layout.root.name}-{self.state['run_id']}",
            config=run_config,
            resume="allow",
        )

    def write(self, metrics: dict[str, float], step_name: str, step: int) -> None:
        self.trackio.log({**metrics, step_name: step})

    def table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        if hasattr(self.trackio, "Table"):  # trackio >= 0.3
            keys = list(rows[0])
            table = self.trackio.Table(columns=keys, data=[[r.get(k) for k in keys] for r in rows])
            self.trackio.log({name: table, "iteration": step})

    def close(self) -> None:
        self.trackio.finish()


TRACKERS: dict[str, type[Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "wandb": WandbTracker,
    "trackio": TrackioTracker,
}


def open_tracker(layout: RunLayout, cfg: TrackingConfig, run_config: dict[str, Any]) -> Tracker | None:
    if cfg.backend == "none":
        return None
    return TRACKERS[str(cfg.backend)](layout, cfg, run_config)


def _events(logdir: Path):
    """Every event of the event files of `logdir`, in file order."""
    import struct

    from tensorboardX.proto import event_pb2

    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            if pos + 12 + length + 4 > len(data):
                break  # a record cut short by a kill: TensorBoard skips it too
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            yield event


def read_tensorboard_scalars(logdir: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the event files of `logdir`, in file order (for tests and
    for reading a run without TensorBoard installed)."""
    return [
        (v.tag, int(e.step), float(v.simple_value))
        for e in _events(logdir)
        for v in e.summary.value
        if v.WhichOneof("value") == "simple_value"
    ]


def read_tensorboard_texts(logdir: Path) -> list[tuple[str, int, str]]:
    """(tag, step, text) of every text summary (e.g. a completion table) in the event files of `logdir`."""
    return [
        (v.tag, int(e.step), b"".join(v.tensor.string_val).decode())
        for e in _events(logdir)
        for v in e.summary.value
        if v.WhichOneof("value") == "tensor" and v.tensor.string_val
    ]
