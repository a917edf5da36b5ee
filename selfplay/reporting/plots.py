"""Figures (PNG, matplotlib, headless) from a run's per-stage metric rows and its pairs' margins. Pure:
rows and arrays in, files out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from selfplay.rundir import stage_names as sn
from selfplay.rundir.stats import EvaluateStats, Finished, typed


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def evaluations(rows: list[Finished]) -> dict[int, EvaluateStats]:
    """Each finished evaluation's statistics, by iteration."""
    return {r.iteration: s for r in rows if r.stage == sn.EVALUATE and (s := typed(r, EvaluateStats))}


def _nan(v: float | None) -> float:
    return math.nan if v is None else v


def heldout_curve(ev: dict[int, EvaluateStats]) -> list[float]:
    """Held-out reward of pi_0, then of the policy after each evaluated iteration."""
    first = ev[0].heldout_reward_before if 0 in ev else None
    return [_nan(first)] + [_nan(ev[t].heldout_reward_after) for t in sorted(ev)]


def heldout_figure(rows: list[Finished], path: Path, title: str = "") -> bool:
    """Held-out reward per iteration (pi_0 at 0) and win rates vs pi_0 and vs the previous policy."""
    ev = evaluations(rows)
    if not ev:
        return False
    plt = _pyplot()
    its = sorted(ev)
    reward = heldout_curve(ev)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(range(len(reward)), reward, marker="o")
    axes[0].set_xlabel("policy (0 = pi_0, t = after iteration t-1)")
    axes[0].set_ylabel("held-out reward")
    for values, label in (
        ([_nan(ev[t].win_rate_vs_initial) for t in its], "vs pi_0"),
        ([_nan(ev[t].win_rate_vs_previous) for t in its], "vs previous policy"),
    ):
        axes[1].plot([t + 1 for t in its], values, marker="o", label=label)
    axes[1].axhline(0.5, color="black", lw=0.8, ls="--")
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("policy (t = after iteration t-1)")
    axes[1].set_ylabel("win rate (ties 1/2)")
    axes[1].legend()
    fig.suptitle(title or "Held-out evaluation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def margins_figure(margins: dict[int, tuple[Any, Any, Any]], path: Path, title: str = "") -> bool:
    """Per iteration, the explicit and implicit margins of the whole pool vs the kept pairs.
    `margins[t] = (explicit, implicit, kept)` arrays."""
    if not margins:
        return False
    import numpy as np

    plt = _pyplot()
    its = sorted(margins)
    fig, axes = plt.subplots(2, len(its), figsize=(3.2 * len(its), 5.2), squeeze=False)
    for col, t in enumerate(its):
        d_ex, d_im, kept = (np.asarray(a) for a in margins[t])
        for row, (values, name) in enumerate(((d_ex, "explicit margin"), (d_im, "implicit margin"))):
            ax = axes[row][col]
            finite = np.isfinite(values)
            bins = np.histogram_bin_edges(values[finite], bins=20) if finite.any() else 10
            ax.hist(values[finite], bins=bins, alpha=0.5, label="pool")
            ax.hist(values[finite & kept.astype(bool)], bins=bins, alpha=0.7, label="kept")
            ax.set_xlabel(name)
            if row == 0:
                ax.set_title(f"iteration {t}")
            if col == 0:
                ax.set_ylabel("pairs")
                ax.legend()
    fig.suptitle(title or "Margins of the pool and of the kept pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def seconds_figure(rows: list[Finished], path: Path, title: str = "") -> bool:
    """Seconds per stage, stacked per iteration."""
    if not rows:
        return False
    plt = _pyplot()
    its = sorted({r.iteration for r in rows})
    stages = list(dict.fromkeys(r.stage for r in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(its) + 3), 3.6))
    bottom = [0.0] * len(its)
    for stage in stages:
        values = [next((r.seconds for r in rows if r.iteration == t and r.stage == stage), 0.0) for t in its]
        ax.bar(its, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("iteration")
    ax.set_ylabel("seconds")
    ax.set_xticks(its)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title or "Stage seconds per iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def comparison_figure(runs: dict[str, list[Finished]], path: Path) -> bool:
    """Held-out reward per iteration, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for name, rows in runs.items():
        ev = evaluations(rows)
        if not ev:
            continue
        reward = heldout_curve(ev)
        ax.plot(range(len(reward)), reward, marker="o", label=name)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("policy (0 = pi_0, t = after iteration t-1)")
    ax.set_ylabel("held-out reward")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
