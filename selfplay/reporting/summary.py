"""Per-iteration summary derived from stage markers (typed: selfplay/rundir/stats.py): metrics.jsonl,
results.md (the console table) and the run's figures in plots/."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from selfplay.data.jsonl import finite
from selfplay.rundir import stage_names as sn
from selfplay.rundir.layout import PAIRS, RunLayout
from selfplay.rundir.stats import EvaluateStats, Finished, SelectionStats, typed


def collect(layout: RunLayout, iterations: int, stages: list[str]) -> list[Finished]:
    """One row per finished (iteration, stage), in run order."""
    rows = []
    for t in range(iterations):
        for stage in stages:
            found = layout.finished(t, stage)
            if found is not None:
                rows.append(found)
    return rows


def write_metrics(layout: RunLayout, rows: list[Finished]) -> None:
    tmp = layout.metrics_file.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(finite(r.row()), allow_nan=False) + "\n" for r in rows))
    tmp.replace(layout.metrics_file)


def by_iteration(rows: list[Finished], stage: str) -> dict[int, Finished]:
    """The rows of one stage, by iteration."""
    return {r.iteration: r for r in rows if r.stage == stage}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[Finished]) -> str:
    """Markdown table: pairs kept, mean margins of kept pairs, held-out reward, stage times."""
    by_it: dict[int, dict[str, Finished]] = {}
    for r in rows:
        by_it.setdefault(r.iteration, {})[r.stage] = r
    head = (
        "| iteration | pairs kept / pool | mean explicit margin (kept) | mean implicit margin (kept) "
        "| held-out reward | win rate vs pi_0 | win rate vs previous | stage seconds | total s |"
    )
    lines = [head, "|" + "---|" * 9]
    first_eval = typed(by_it.get(0, {}).get(sn.EVALUATE), EvaluateStats)
    if first_eval is not None and first_eval.heldout_reward_before is not None:
        lines.append(
            f"| start (pi_0) | - | - | - | {_fmt(first_eval.heldout_reward_before)} | - | - | - | - |"
        )
    for t in sorted(by_it):
        s = by_it[t]
        sel = typed(s.get(sn.SELECTION), SelectionStats) or SelectionStats()
        ev = typed(s.get(sn.EVALUATE), EvaluateStats) or EvaluateStats()
        times = " ".join(f"{name[:5]} {_fmt(r.seconds, 1)}" for name, r in s.items())
        total = sum(r.seconds for r in s.values())
        kept = f"{sel.kept} / {sel.pool}" if sn.SELECTION in s else "- / -"
        lines.append(
            f"| {t} | {kept} | {_fmt(sel.kept_mean_explicit_margin)} "
            f"| {_fmt(sel.kept_mean_implicit_margin)} | {_fmt(ev.heldout_reward_after)} "
            f"| {_fmt(ev.win_rate_vs_initial)} | {_fmt(ev.win_rate_vs_previous)} "
            f"| {times} | {_fmt(total, 1)} |"
        )
    return "\n".join(lines)


def write_results(layout: RunLayout, rows: list[Finished], title: str, iterations: int) -> str:
    """results.md (the table, and the figures written into plots/); the table is returned for printing."""
    figures = write_figures(layout, rows, iterations)
    text = f"# {title}\n\n{table(rows)}\n"
    links = "".join(f"\n![{f.stem}]({f.relative_to(layout.root)})\n" for f in figures)
    layout.results_file.write_text(text + links)
    return text


def write_figures(layout: RunLayout, rows: list[Finished], iterations: int) -> list[Path]:
    """Held-out reward and win rates, margins of the pool vs the kept pairs, stage seconds: PNGs."""
    from selfplay.reporting import plots

    layout.plots_dir.mkdir(parents=True, exist_ok=True)
    made = []
    title = layout.root.name
    if plots.heldout_figure(rows, layout.plots_dir / "heldout.png", f"{title}: held-out evaluation"):
        made.append(layout.plots_dir / "heldout.png")
    if plots.margins_figure(
        pool_margins(layout, iterations), layout.plots_dir / "margins.png", f"{title}: margins"
    ):
        made.append(layout.plots_dir / "margins.png")
    if plots.seconds_figure(rows, layout.plots_dir / "stage_seconds.png", f"{title}: stage seconds"):
        made.append(layout.plots_dir / "stage_seconds.png")
    return made


def pool_margins(layout: RunLayout, iterations: int) -> dict[int, tuple[Any, Any, Any]]:
    """Per finished selection: each of its own pairs' explicit and implicit margin and kept flag."""
    import numpy as np

    from selfplay.data.jsonl import read_jsonl_records
    from selfplay.data.records import Pair

    out = {}
    for t in range(iterations):
        path = layout.stage_dir(t, sn.SELECTION) / PAIRS
        if not layout.marker(t, sn.SELECTION).is_file() or not path.is_file():
            continue
        pairs = [p for p in read_jsonl_records(path, Pair) if p.iteration == t]
        out[t] = (
            np.array([p.explicit_margin for p in pairs], dtype=float),
            np.array([p.implicit_margin for p in pairs], dtype=float),
            np.array([p.kept for p in pairs], dtype=bool),
        )
    return out
