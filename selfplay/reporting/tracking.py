"""Experiment tracking: one tracked run per selfplay run, written through accelerate's trackers
(TensorBoard, W&B, Trackio, MLflow), logged from the stage markers as stages finish.

What is ours: the once-only forwarding. Two step axes, both monotonic across iterations and resumes:
`iteration` for each stage's stats (`<stage>/<stat>`: held-out reward, win rates, margins, kept and
dropped counts, train loss and reward accuracy, seconds, ...), and `train/global_step` for TRL's per-step
history (`train_step/<key>`: loss, rewards, learning rate; the optimizer steps of earlier iterations are
added, so it never restarts), forwarded live from the training process's history.live.jsonl (only new
bytes read). What was logged is remembered in `<run>/tracking/state.json`, written only after the
backend has flushed: a resumed run continues the same tracked run and never logs a stage or a step twice.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.config import TrackingConfig
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.layout import COMPLETION_TABLE, TRAIN_HISTORY, RunLayout
from selfplay.rundir.stats import Finished, TrainStats, typed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """One tracking backend: the package it needs and how accelerate's tracker is made for a run."""

    package: str
    """The module to import (and, as `pip`, the package to install)."""
    make: Callable[[Tracker, dict[str, Any]], Any]
    """accelerate's tracker for this run, not yet started (`tracker.state` holds the ids to resume)."""
    one_step: bool = False
    """The backend keeps one step counter per run (W&B, Trackio), so our two axes travel as values
    (`iteration`, `train/global_step`) with no step; otherwise every scalar has a step of its own."""
    table: Callable[[Any, str, list[str], list[list[Any]], int], None] | None = None
    """Log a table (the completion table) at an iteration; None: the backend has none, it is skipped."""
    started: Callable[[Tracker, dict[str, Any]], None] | None = None
    """After the tracker started: keep what resumes it in the state, store the config once."""


def check_backend(cfg: TrackingConfig) -> None:
    """A chosen backend must be installed (one line naming the package otherwise)."""
    backend = str(cfg.backend)
    if backend == "none":
        return
    import importlib

    package = BACKENDS[backend].package
    try:
        importlib.import_module(package)
    except ImportError:
        raise SelfplayError(
            f"tracking.backend={backend}: the '{package}' package is not installed "
            f"(pip install {package}), or use tracking.backend=none"
        ) from None


class Tracker:
    """Logs stage stats and training history once each, through one accelerate tracker."""

    def __init__(self, layout: RunLayout, cfg: TrackingConfig, run_config: dict[str, Any]):
        self.layout, self.cfg = layout, cfg
        self.state_file = layout.tracking_dir / "state.json"
        self.state: dict[str, Any] = {"logged": [], "train_steps": {}, "run_id": uuid.uuid4().hex[:12]}
        if self.state_file.is_file():
            self.state = json.loads(self.state_file.read_text())
        layout.tracking_dir.mkdir(parents=True, exist_ok=True)
        self._live_pos: dict[str, int] = {}  # bytes of each live history file already read
        self.backend = BACKENDS[str(cfg.backend)]
        _process_state()
        try:
            self.sink = self.backend.make(self, run_config)
            self.sink.start()
            if self.backend.started is not None:
                self.backend.started(self, run_config)
        except Exception as err:  # a backend's own failure (no server, no store, no key), in one line
            why = (str(err).strip().splitlines() or [""])[0][:300]
            raise SelfplayError(
                f"tracking.backend={cfg.backend}: the tracker did not start ({type(err).__name__}: {why}); "
                "fix its setup or use tracking.backend=none"
            ) from None
        if self.backend.one_step:  # W&B: each metric plotted against its own axis
            define = getattr(self.sink.tracker, "define_metric", None)
            for axis, prefix in (("iteration", "*"), ("train/global_step", "train_step/*")):
                if define is not None:
                    define(axis)
                    define(prefix, step_metric=axis)
        self.save()  # the ids a backend keeps to resume its run

    def write(self, metrics: dict[str, Any], axis: str, step: int) -> None:
        if self.backend.one_step:
            self.sink.log({**metrics, axis: step})
        else:
            self.sink.log(metrics, step=step)

    def flush(self) -> None:
        """What was written is on disk before the state says so (TensorBoard's writer is asynchronous;
        torch's SummaryWriter.flush waits for its queue)."""
        flush = getattr(getattr(self.sink, "writer", None), "flush", None)
        if callable(flush):
            flush()

    def close(self) -> None:
        self.sink.finish()

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
        if stage == sn.EVALUATE and table.is_file() and self.backend.table is not None:
            rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
            if rows:
                keys = list(rows[0])
                data = [[r.get(k) for k in keys] for r in rows]
                self.backend.table(self, "evaluate/completions", keys, data, iteration)
        self.flush()
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
            self.flush()
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


def _process_state() -> None:
    """accelerate's trackers log through accelerate's logger, which needs its process state. The
    orchestrator is one process (no RANK or WORLD_SIZE of its own): a CPU state describes it and touches
    no device; an in-process training resets it for its own (transformers' TrainingArguments)."""
    from accelerate.state import PartialState

    if not PartialState._shared_state:
        PartialState(cpu=True)


def sweep_group(run_config: dict[str, Any]) -> str | None:
    """The sweep a run belongs to: a Hydra multirun job's run name is `<loop.run_name>-sweep/<its swept
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


# The backends: accelerate's tracker for each, configured for one selfplay run.


def _tensorboard(t: Tracker, run_config: dict[str, Any]) -> Any:
    """Event files under tracking/tensorboard/ (`tensorboard --logdir <run>/tracking`). Each opening
    writes a file of its own (TensorBoard's name holds the second, the host, the process id and a
    per-process counter), so a quick resume never truncates the previous opening's file."""
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker("tensorboard", str(t.layout.tracking_dir))


def _tensorboard_table(t: Tracker, name: str, keys: list[str], data: list[list[Any]], step: int) -> None:
    """A Markdown table as a TensorBoard text summary (the Text tab renders it)."""
    t.sink.log({name: markdown_table([dict(zip(keys, row)) for row in data])}, step=step)


def _wandb(t: Tracker, run_config: dict[str, Any]) -> Any:
    """One W&B run per selfplay run (its id kept in <run>/tracking/state.json; resumed with it)."""
    from accelerate.tracking import WandBTracker

    return WandBTracker(
        t.cfg.project,
        name=t.layout.root.name,
        group=sweep_group(run_config),
        id=t.state["run_id"],
        resume="allow",
        dir=str(t.layout.tracking_dir),
        config=run_config,
    )


def _wandb_table(t: Tracker, name: str, keys: list[str], data: list[list[Any]], step: int) -> None:
    import wandb

    t.sink.log({name: wandb.Table(columns=keys, data=data), "iteration": step})


def _trackio(t: Tracker, run_config: dict[str, Any]) -> Any:
    """One Trackio run per selfplay run (resumed by name)."""
    from accelerate.tracking import TrackioTracker

    return TrackioTracker(
        t.cfg.project,
        name=f"{t.layout.root.name}-{t.state['run_id']}",
        config=run_config,
        resume="allow",
    )


def _trackio_table(t: Tracker, name: str, keys: list[str], data: list[list[Any]], step: int) -> None:
    import trackio

    if hasattr(trackio, "Table"):  # trackio >= 0.3
        t.sink.log({name: trackio.Table(columns=keys, data=data), "iteration": step})


def _mlflow(t: Tracker, run_config: dict[str, Any]) -> Any:
    """One MLflow run per selfplay run in the experiment `tracking.project` (its run id kept in
    state.json; resumed with it), stored in tracking/mlflow.db unless MLFLOW_TRACKING_URI names another
    store (a server)."""
    import os

    import mlflow
    from accelerate.tracking import MLflowTracker

    if not os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow 3 keeps a local store in SQLite only
        mlflow.set_tracking_uri(f"sqlite:///{(t.layout.tracking_dir / 'mlflow.db').absolute()}")
    group = sweep_group(run_config)
    return MLflowTracker(
        experiment_name=t.cfg.project,
        run_id=t.state.get("mlflow_run_id"),
        run_name=t.layout.root.name,
        tags={"sweep": group} if group else None,
    )


def _mlflow_started(t: Tracker, run_config: dict[str, Any]) -> None:
    t.state["mlflow_run_id"] = t.sink.active_run.info.run_id
    if not t.state.get("config_stored"):  # MLflow's parameters cannot change once logged
        t.sink.store_init_configuration(flat(run_config))
        t.state["config_stored"] = True


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as `section.key: value` (lists as text), for backends that take flat parameters."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
    return out


BACKENDS: dict[str, Backend] = {
    "tensorboard": Backend("tensorboard", _tensorboard, table=_tensorboard_table),
    "wandb": Backend("wandb", _wandb, one_step=True, table=_wandb_table),
    "trackio": Backend("trackio", _trackio, one_step=True, table=_trackio_table),
    "mlflow": Backend("mlflow", _mlflow, started=_mlflow_started),  # MLflow has no table in accelerate
}
"""Every `tracking.backend` but none."""


def open_tracker(layout: RunLayout, cfg: TrackingConfig, run_config: dict[str, Any]) -> Tracker | None:
    if cfg.backend == "none":
        return None
    return Tracker(layout, cfg, run_config)


# Reading a run's TensorBoard events back (tests; a run's scalars without TensorBoard's UI), with
# TensorBoard's own reader.


def _accumulated(logdir: Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        str(logdir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}, purge_orphaned_data=False
    )
    return acc.Reload()


def read_tensorboard_scalars(logdir: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the event files of `logdir`, tag by tag in file order."""
    acc = _accumulated(logdir)
    return [(tag, e.step, e.value) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]


def read_tensorboard_texts(logdir: Path) -> list[tuple[str, int, str]]:
    """(tag, step, text) of every text summary (e.g. a completion table) in the event files of `logdir`."""
    acc = _accumulated(logdir)
    return [
        (tag, e.step, b"".join(e.tensor_proto.string_val).decode())
        for tag in acc.Tags()["tensors"]
        for e in acc.Tensors(tag)
        if e.tensor_proto.string_val
    ]
