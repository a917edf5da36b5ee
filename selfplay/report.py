"""`python -m selfplay.report export RUN --to DIR`: a run's kept pairs as a datasets.DatasetDict with a
dataset card (selfplay/reporting/export.py).

`python -m selfplay.report RUN [RUN ...] [--out comparison]`: several runs (e.g. the jobs of a sweep;
a folder is searched for runs below it) in one table (the config keys that differ, the final held-out
reward and win rates, kept pairs) and one figure (held-out reward per iteration, one line per run)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from selfplay.reporting.plots import comparison_figure, evaluations
from selfplay.rundir import stage_names as sn
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.stats import Finished, SelectionStats, read_metrics, typed


def find_runs(paths: list[str]) -> list[Path]:
    """Run directories (they hold metrics.jsonl) given or found below the given folders, in order."""
    runs: list[Path] = []
    for p in map(Path, paths):
        metrics = RunLayout(p).metrics_file
        below = sorted(m.parent for m in p.rglob(metrics.name) if m.parent != p) if p.is_dir() else []
        if metrics.is_file() and below:
            raise SystemExit(
                f"selfplay.report: error: '{p}' is a run and also holds {len(below)} run(s) below it; name the "
                f"run itself or its runs (e.g. {below[0]})"
            )
        if metrics.is_file():
            runs.append(p)
        elif p.is_dir():
            runs += below
        else:
            raise SystemExit(
                f"selfplay.report: error: '{p}' is not a run directory (no metrics.jsonl) or folder"
            )
    if not runs:
        raise SystemExit(f"selfplay.report: error: no run (metrics.jsonl) found in {', '.join(paths)}")
    return list(dict.fromkeys(runs))


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load(run: Path) -> tuple[list[Finished], dict[str, Any]]:
    import yaml

    layout = RunLayout(run)
    rows = read_metrics(layout.metrics_file)
    cfg = flat(yaml.safe_load(layout.config_file.read_text()) or {}) if layout.config_file.is_file() else {}
    return rows, cfg


def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def compare(runs: list[Path]) -> tuple[str, dict[str, list[Finished]]]:
    loaded = {str(r): load(r) for r in runs}
    configs = [c for _, c in loaded.values()]
    ignored = ("loop.output_dir", "loop.run_name", "task.")
    keys = sorted(
        k
        for k in set().union(*configs)
        if not k.startswith(ignored) and len({json.dumps(c.get(k), default=str) for c in configs}) > 1
    )
    head = [
        "run",
        *keys,
        "iterations",
        "pi_0 reward",
        "final reward",
        "win vs pi_0",
        "win vs previous",
        "kept / pool",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (rows, cfg) in loaded.items():
        ev = evaluations(rows)
        selections = [s for r in rows if r.stage == sn.SELECTION and (s := typed(r, SelectionStats))]
        last = ev[max(ev)] if ev else None
        last_sel = selections[-1] if selections else None
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    *(fmt(cfg.get(k)) for k in keys),
                    str(len(ev)),
                    fmt(ev[0].heldout_reward_before if 0 in ev else None),
                    fmt(last and last.heldout_reward_after),
                    fmt(last and last.win_rate_vs_initial),
                    fmt(last and last.win_rate_vs_previous),
                    f"{fmt(last_sel and last_sel.kept)} / {fmt(last_sel and last_sel.pool)}",
                ]
            )
            + " |"
        )
    return "\n".join(lines), {name: rows for name, (rows, _) in loaded.items()}


def export_pairs(run: str | Path, to: str | Path):
    """A run's kept pairs (one split per finished selection: iter_000, ..., and iter_000_evolved, ...
    for evolve's pool) written to `to` as a DatasetDict with its dataset card; returns it."""
    import datasets
    import yaml

    from selfplay.errors import SelfplayError
    from selfplay.reporting.export import write_pairs
    from selfplay.rundir.layout import MODEL_CARD

    datasets.disable_progress_bars()  # our own lines say what was written
    layout = RunLayout(Path(run).resolve())
    if not layout.config_file.is_file():
        raise SelfplayError(f"{run}: not a run directory (no {layout.config_file.name})")
    config = yaml.safe_load(layout.config_file.read_text()) or {}
    from selfplay.rundir.integrity import verify

    found = layout.kept_pair_splits(int(config.get("loop", {}).get("iterations", 0)) - 1)
    for path, _ in found.values():  # exported as its selection stage recorded it
        verify(layout, path)
    return write_pairs(found, config, layout.root, Path(to), MODEL_CARD)


def export_main(argv: list[str]) -> None:
    """`python -m selfplay.report export RUN --to DIR`: the run's kept pairs as a DatasetDict with its card."""
    from selfplay.errors import SelfplayError

    ap = argparse.ArgumentParser(
        prog="python -m selfplay.report export",
        description="Write a run's kept pairs as a datasets.DatasetDict (one split per iteration) with a dataset card.",
    )
    ap.add_argument("run", help="the run directory")
    ap.add_argument("--to", required=True, help="a new folder (datasets.load_from_disk reads it)")
    args = ap.parse_args(argv)
    try:
        pairs = export_pairs(args.run, args.to)
    except SelfplayError as err:
        print(f"selfplay.report: error: {err}", file=sys.stderr)
        sys.exit(2)
    for name, split in pairs.items():
        print(f"{name}: {split.num_rows} pairs", file=sys.stderr)
    print(Path(args.to).resolve())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        export_main(argv[1:])
        return
    ap = argparse.ArgumentParser(
        prog="python -m selfplay.report",
        description=__doc__.split("\n\n")[1],
        epilog="Also: python -m selfplay.report export RUN --to DIR writes a run's kept pairs as a "
        "datasets.DatasetDict (one split per iteration) with a dataset card.",
    )
    ap.add_argument("runs", nargs="+", help="run directories, or folders to search for runs")
    ap.add_argument("--out", default="comparison", help="writes <out>.md and <out>.png")
    args = ap.parse_args(argv)
    text, rows = compare(find_runs(args.runs))
    out = Path(args.out)
    figure = out.with_suffix(".png")
    drawn = comparison_figure(rows, figure)
    md = f"# selfplay runs compared\n\n{text}\n" + (f"\n![held-out reward]({figure.name})\n" if drawn else "")
    out.with_suffix(".md").write_text(md)
    print(text)
    print(out.with_suffix(".md"), file=sys.stderr)


if __name__ == "__main__":
    main()
