"""Per-iteration summary derived from stage markers: metrics.jsonl, results.md, the console table."""

from __future__ import annotations

import json
import math
from typing import Any

from selfplay.loop.layout import RunLayout
from selfplay.loop.markers import read_marker


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
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
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
        "| held-out reward | stage seconds | total s |"
    )
    lines = [head, "|" + "---|" * 7]
    first_eval = by_it.get(0, {}).get("evaluate", {})
    if "heldout_reward_before" in first_eval:
        lines.append(f"| start (pi_0) | - | - | - | {_fmt(first_eval['heldout_reward_before'])} | - | - |")
    for t in sorted(by_it):
        s = by_it[t]
        sel, ev = s.get("selection", {}), s.get("evaluate", {})
        times = " ".join(f"{name[:5]} {_fmt(r['seconds'], 1)}" for name, r in s.items())
        total = sum(r["seconds"] for r in s.values())
        lines.append(
            f"| {t} | {sel.get('kept', '-')} / {sel.get('pool', '-')} | {_fmt(sel.get('kept_mean_explicit_margin'))} "
            f"| {_fmt(sel.get('kept_mean_implicit_margin'))} | {_fmt(ev.get('heldout_reward_after'))} "
            f"| {times} | {_fmt(total, 1)} |"
        )
    return "\n".join(lines)


def write_results(layout: RunLayout, rows: list[dict[str, Any]], title: str) -> str:
    text = f"# {title}\n\n{table(rows)}\n"
    layout.results_file.write_text(text)
    return text


def write_manifest(layout: RunLayout, manifest: dict[str, Any]) -> None:
    tmp = layout.manifest_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(layout.manifest_file)
