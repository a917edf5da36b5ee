"""A run's kept pairs as one `datasets.DatasetDict` on disk, with a dataset card:
`python -m selfplay.report export RUN --to DIR`, then `datasets.load_from_disk(DIR)`.

One split per finished selection: `iter_000`, `iter_001`, ... (and `iter_000_evolved`, ... for the
evolved pool of evolve-then-select), each in TRL's conversational preference format as the run wrote
it (`selection/kept_pairs.parquet`: prompt, chosen, rejected and the pair's margins, score and rank),
so `trl dpo --dataset_name DIR` or `DPOTrainer(train_dataset=load_from_disk(DIR)["iter_002"])` read it
as it is. The card (README.md, built with huggingface_hub's DatasetCard) names the policy, the judge,
the selection metric and the pool and kept sizes of every split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfplay.errors import SelfplayError
from selfplay.rundir.stats import SelectionStats


def dataset_card(
    config: dict[str, Any],
    splits: dict[str, SelectionStats],
    run: Path,
    data_path: str = "{split}/*.arrow",
    license: str | None = None,
) -> Any:
    """The dataset card of a run's kept pairs; `data_path` says where a split's files are in the folder
    or repository the card describes (save_to_disk's layout by default, the Hub's data/<split>.parquet)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from selfplay.reporting.hub_layout import public_model

    model = public_model(config.get("model", {}).get("path"))
    judge = config.get("judge", {})
    sel = config.get("selection", {})
    judge_name = {
        "rule": f"rule `{judge.get('rule')}`",
        "remote": "a reward server",
    }.get(
        str(judge.get("kind")), f"{judge.get('kind')} {public_model((judge.get('model') or {}).get('path'))}"
    )

    def figure(v: Any) -> str:
        return "-" if v is None else str(v)

    data = DatasetCardData(
        pretty_name=f"selfplay pairs: {run.name}",
        task_categories=["text-generation"],
        tags=["dpo", "preference", "selfplay", "alignment-potential"],
        license=license,
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": data_path.format(split=s)} for s in splits],
            }
        ],
    )
    rows = "\n".join(f"| {name} | {stats.pool} | {stats.kept} |" for name, stats in splits.items())
    body = f"""# selfplay preference pairs: {run.name}

Pairs the policy generated itself and {judge_name} judged, kept by the selection metric
`{sel.get("metric")}` (weight {figure(sel.get("weight"))}, ratio {figure(sel.get("ratio"))}, count {figure(sel.get("count"))}) out of
each iteration's pool; one split per iteration. Policy at iteration 0: {model}.

| split | pool | kept |
|---|---|---|
{rows}

Columns: TRL's conversational preference format (`prompt`, `chosen`, `rejected` as message lists) and
each pair's explicit and implicit margins, selection score and rank. Load with
`datasets.load_from_disk(<this folder>)` (exported) or `datasets.load_dataset(<repo>, split=...)` (Hub).
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_pairs(
    found: dict[str, tuple[Path, SelectionStats]],
    config: dict[str, Any],
    run: Path,
    out: Path,
    card_name: str,
):
    """Write the kept pairs (split name -> (parquet file, its selection stats)) as a DatasetDict in
    `out` with its dataset card; returns the DatasetDict."""
    import datasets

    if not found:
        raise SelfplayError(f"{run}: no finished selection stage yet, so no kept pairs to export")
    if out.exists() and any(out.iterdir()):
        raise SelfplayError(f"--to {out}: the folder exists and is not empty; give a new one")
    pairs = datasets.DatasetDict(
        {name: datasets.Dataset.from_parquet(str(path)) for name, (path, _) in found.items()}
    )
    pairs.save_to_disk(str(out))
    dataset_card(config, {name: stats for name, (_, stats) in found.items()}, run).save(out / card_name)
    return pairs
