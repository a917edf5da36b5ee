"""Per-iteration summary derived from stage markers: metrics.jsonl, results.md (the console table) and
the run's figures in plots/."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from selfplay.data.jsonl import finite
from selfplay.loop.layout import PAIRS, RunLayout
from selfplay.loop.markers import read_marker

log = logging.getLogger(__name__)


def collect(layout: RunLayout, iterations: int, stages: list[str]) -> list[dict[str, Any]]:
    """One row per finished (iteration, stage), in run order."""
    rows = []
    for t in range(iterations):
        for stage in stages:
            marker = read_marker(layout.marker(t, stage))
            if marker is not None:
                rows.append({"iteration": t, "stage": stage, "seconds": marker["seconds"], **marker["stats"]})
    return rows


def write_metrics(layout: RunLayout, rows: list[dict[str, Any]]) -> None:
    tmp = layout.metrics_file.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(finite(r), allow_nan=False) + "\n" for r in rows))
    tmp.replace(layout.metrics_file)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: pairs kept, mean margins of kept pairs, held-out reward, stage times."""
    by_it: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_it.setdefault(r["iteration"], {})[r["stage"]] = r
    head = (
        "| iteration | pairs kept / pool | mean explicit margin (kept) | mean implicit margin (kept) "
        "| held-out reward | win rate vs pi_0 | win rate vs previous | stage seconds | total s |"
    )
    lines = [head, "|" + "---|" * 9]
    first_eval = by_it.get(0, {}).get("evaluate", {})
    if "heldout_reward_before" in first_eval:
        lines.append(
            f"| start (pi_0) | - | - | - | {_fmt(first_eval['heldout_reward_before'])} | - | - | - | - |"
        )
    for t in sorted(by_it):
        s = by_it[t]
        sel, ev = s.get("selection", {}), s.get("evaluate", {})
        times = " ".join(f"{name[:5]} {_fmt(r['seconds'], 1)}" for name, r in s.items())
        total = sum(r["seconds"] for r in s.values())
        lines.append(
            f"| {t} | {sel.get('kept', '-')} / {sel.get('pool', '-')} | {_fmt(sel.get('kept_mean_explicit_margin'))} "
            f"| {_fmt(sel.get('kept_mean_implicit_margin'))} | {_fmt(ev.get('heldout_reward_after'))} "
            f"| {_fmt(ev.get('win_rate_vs_initial'))} | {_fmt(ev.get('win_rate_vs_previous'))} "
            f"| {times} | {_fmt(total, 1)} |"
        )
    return "\n".join(lines)


def write_results(layout: RunLayout, rows: list[dict[str, Any]], title: str, iterations: int) -> str:
    """results.md (the table, and the figures written into plots/); the table is returned for printing."""
    figures = write_figures(layout, rows, iterations)
    text = f"# {title}\n\n{table(rows)}\n"
    links = "".join(f"\n![{f.stem}]({f.relative_to(layout.root)})\n" for f in figures)
    layout.results_file.write_text(text + links)
    return text


def write_figures(layout: RunLayout, rows: list[dict[str, Any]], iterations: int) -> list[Path]:
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
        path = layout.stage_dir(t, "selection") / PAIRS
        if not layout.marker(t, "selection").is_file() or not path.is_file():
            continue
        pairs = [p for p in read_jsonl_records(path, Pair) if p.iteration == t]
        out[t] = (
            np.array([p.explicit_margin for p in pairs], dtype=float),
            np.array([p.implicit_margin for p in pairs], dtype=float),
            np.array([p.kept for p in pairs], dtype=bool),
        )
    return out


def newest_policy(layout: RunLayout, iterations: int) -> tuple[int, Path] | None:
    """(t, folder) of the newest policy a finished train stage wrote; None before the first."""
    for t in reversed(range(iterations)):
        if layout.marker(t, "train").is_file() and layout.policy_dir(t).is_dir():
            return t, layout.policy_dir(t)
    return None


def point_final(layout: RunLayout, iterations: int) -> Path | None:
    """Point `<run>/final` at the newest trained policy (a relative link, so the run directory can be
    moved; replaced atomically); removed while no policy is trained. Returns the link or None."""
    found = newest_policy(layout, iterations)
    link = layout.final_link
    if link.exists() and not link.is_symlink():  # a run directory copied with its links followed
        log.warning(
            "%s is not a link (a copy of the run?): left as it is, not moved to the newest policy", link
        )
        return None
    if found is None:
        if link.is_symlink():
            link.unlink()
        return None
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(found[1].relative_to(layout.root), target_is_directory=True)
    os.replace(tmp, link)
    return link


def write_manifest(layout: RunLayout, manifest: dict[str, Any]) -> None:
    tmp = layout.manifest_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(layout.manifest_file)
