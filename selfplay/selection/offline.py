"""Offline selection of an existing preference dataset (the paper's fixed-dataset experiment):
read rows, take rewards and implicit rewards from columns or compute the missing ones, score every
pair over the whole dataset, keep the top-k, write them in TRL's preference format with every score.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from selfplay.config import OfflineSelectConfig
from selfplay.data.jsonl import write_jsonl
from selfplay.data.preferences import Row, parse_rows, read_preference_table
from selfplay.data.records import Pair
from selfplay.errors import SelfplayError
from selfplay.selection.pipeline import ScoredPool, implicit_reward, select_pool, selection_stats

log = logging.getLogger(__name__)


def offline_rows(table: list[dict[str, Any]], cfg: OfflineSelectConfig) -> tuple[list[Row], dict[str, int]]:
    return parse_rows(table, str(cfg.input), cfg.columns)


def column_pair(rows: list[Row], a: str, b: str, what: str) -> list[tuple[float, float]] | None:
    """Both columns as floats, or None when both are absent (then they get computed)."""
    have = [c for c in (a, b) if c in rows[0].data]
    if not have:
        return None
    if len(have) == 1:
        raise SelfplayError(
            f"{what}: column '{have[0]}' is present but '{({a, b} - set(have)).pop()}' is missing"
        )
    out = []
    for i, r in enumerate(rows):
        absent = [c for c in (a, b) if c not in r.data]
        if absent:
            raise SelfplayError(
                f"row {i + 1}: no {what} column '{absent[0]}' (row 1 has it: every row needs the same columns)"
            )
        try:
            out.append((float(r.data[a]), float(r.data[b])))
        except (TypeError, ValueError):
            raise SelfplayError(
                f"row {i + 1}: {what} columns '{a}'/'{b}' must be numbers, got {r.data[a]!r}/{r.data[b]!r}"
            ) from None
    return out


def compute_rewards(rows: list[Row], cfg: Any, label: str = "select: rewards") -> list[tuple[float, float]]:
    """(chosen, rejected) rewards of the rows by `cfg.judge` (offline selection's config, or its scoring
    run's)."""
    from selfplay.data.records import Completion, Prompt
    from selfplay.judge.judging import load_judge
    from selfplay.judge.kinds import JudgeRuntime

    prompts = [Prompt(r.row_id, r.messages) for r in rows]
    completions = [
        Completion(prompt_id=r.row_id, sample_index=k, text=text, finish_reason="stop")
        for r in rows
        for k, text in enumerate((r.chosen, r.rejected))
    ]
    runtime = JudgeRuntime(policy=cfg.model.path, model=cfg.model)  # judge.model.path=policy: model.path
    with load_judge(cfg.judge, runtime=runtime) as judge:
        rewards = [j.value for j in judge(prompts, completions, label)]
    return list(zip(rewards[0::2], rewards[1::2]))


def compute_implicit(
    rows: list[Row], cfg: Any, policy: str | None = None, label: str = "select: implicit rewards"
) -> list[tuple[float, float]]:
    """(chosen, rejected) implicit rewards of the rows under the policy (`policy`, else `cfg.model`),
    by teacher forcing with the trainer's tokenisation, in `cfg.selection.implicit_reward`'s form."""
    from selfplay.data.chat import trainer_token_ids
    from selfplay.logprobs.teacher_forcing import response_logprobs
    from selfplay.models.loading import load_causal_lm, load_tokenizer, resolve_policy_path
    from selfplay.progress import Progress

    path = policy or resolve_policy_path(cfg.model)
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code, chat_template=cfg.model.chat_template)
    model = load_causal_lm(
        path, str(cfg.model.dtype), cfg.model.trust_remote_code, allow_pickle=cfg.model.allow_pickle
    )
    seqs = [trainer_token_ids(tokenizer, r.messages, text) for r in rows for text in (r.chosen, r.rejected)]
    with Progress(label, len(seqs), "sequences") as progress:
        per_token = response_logprobs(model, seqs, cfg.logprobs.batch_size, progress=progress)
    form = str(cfg.selection.implicit_reward)
    values = [implicit_reward(float(sum(lp)), len(lp), form) for lp in per_token]
    return list(zip(values[0::2], values[1::2]))


def present_scores(rows: list[Row], cfg: Any) -> tuple[list | None, list | None]:
    """The rewards and implicit rewards the dataset's columns hold (None where they have none)."""
    c = cfg.columns
    rewards = column_pair(rows, c.chosen_reward, c.rejected_reward, "reward")
    if rewards is None and all(r.rewards is not None for r in rows):  # the list-wise layout
        rewards = [r.rewards for r in rows if r.rewards is not None]
    implicit = column_pair(rows, c.chosen_implicit, c.rejected_implicit, "implicit reward")
    return rewards, implicit


def missing_scores(rows: list[Row], cfg: Any) -> list[str]:
    """What the dataset lacks and is to be computed ("rewards", "implicit_rewards"); one line naming the
    columns and keys when something is missing and nothing is set to compute it."""
    rewards, implicit = present_scores(rows, cfg)
    c = cfg.columns
    need = []
    if rewards is None:
        if cfg.judge.kind is None:
            raise SelfplayError(
                f"{cfg.input}: no reward columns ('{c.chosen_reward}'/'{c.rejected_reward}' or "
                f"'{c.all_rewards}') and no judge named: set judge.kind=reward_model judge.model.path=... "
                "(or judge.kind=rule judge.rule=...), or point columns.chosen_reward / columns.rejected_reward "
                "at your columns"
            )
        need.append("rewards")
    if implicit is None:
        if not cfg.model.path:
            raise SelfplayError(
                f"{cfg.input}: no implicit-reward columns ('{c.chosen_implicit}'/'{c.rejected_implicit}') and no "
                "model named: set model.path=<the policy to score the responses with> (e.g. the model that "
                "will be trained), or point columns.chosen_implicit / columns.rejected_implicit at your columns"
            )
        need.append("implicit_rewards")
    return need


def scores_to_compute(cfg: OfflineSelectConfig) -> list[str]:
    """What offline selection of this dataset computes ("rewards", "implicit_rewards"; nothing when
    its columns hold both), with the one-line errors of a bad dataset or of nothing set to compute it."""
    from selfplay.data.preferences import check_input
    from selfplay.selection.checks import check_selection
    from selfplay.selection.columnar import read_arrow, score_columns_present

    if not cfg.input or not cfg.output:
        raise SelfplayError("select: both input=<dataset> and output=<folder> are required")
    check_input(cfg.input)
    check_selection(cfg.selection, "selection")
    table = read_arrow(cfg.input, cfg.split)
    if table is not None and score_columns_present(table, cfg):
        return []
    rows, _ = offline_rows(read_preference_table(cfg.input, cfg.split), cfg)
    if not rows:
        return []  # select_table names the problem
    return missing_scores(rows, cfg)


def select_offline(
    cfg: OfflineSelectConfig, computed: dict[str, Any] | None = None, work: str | None = None
) -> dict[str, Any]:
    """Run offline selection as configured; returns the summary (also written to summary.json). A
    dataset with both reward and both implicit-reward columns is selected column by column
    (selfplay/selection/columnar.py); any other, row by row (`select_table`), with what its columns
    lack from `computed` (the scoring run's records, row id -> RowScores, in the run folder `work`) or
    computed in this process."""
    import pyarrow as pa

    from selfplay.data.preferences import check_input
    from selfplay.selection.checks import check_selection
    from selfplay.selection.columnar import read_arrow, select_columns

    if not cfg.input or not cfg.output:
        raise SelfplayError("select: both input=<dataset> and output=<folder> are required")
    check_input(cfg.input)
    check_selection(cfg.selection, "selection")
    table = read_arrow(cfg.input, cfg.split)
    done = select_columns(table, cfg) if table is not None else None
    if done is not None:
        scored, selected, summary = done
        summary["reader"] = "columns"
    else:
        rows, pool, summary = select_table(read_preference_table(cfg.input, cfg.split), cfg, computed)
        from selfplay.selection.columnar import read_score_columns

        all_rows = scored_rows(rows, pool, read_score_columns(cfg))
        scored = pa.Table.from_pylist(all_rows)
        best = sorted((i for i, r in enumerate(all_rows) if r["kept"]), key=lambda i: all_rows[i]["rank"])
        selected = scored.take(pa.array(best, type=pa.int64()))
        summary["reader"] = "rows"
    if work is not None:
        summary["work"] = work
    write_tables(Path(cfg.output), scored, selected, summary, str(cfg.format))
    return summary


def write_tables(out: Path, scored, selected, summary: dict[str, Any], fmt: str) -> None:
    """selected.<fmt> (best first), scored.<fmt> (input order) and summary.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary["files"] = {"selected": f"selected.{fmt}", "scored": f"scored.{fmt}"}
    for name, table in (("selected", selected), ("scored", scored)):
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            write_jsonl(path, table.to_pylist())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def select_table(
    table: list[dict[str, Any]], cfg: OfflineSelectConfig, scored: dict[str, Any] | None = None
) -> tuple[list[Row], ScoredPool, dict[str, Any]]:
    """Select the pairs of a table of rows (`cfg.input` names it in messages): (the parsed rows, the
    scored pool, the summary). What the columns lack is taken from `scored` (row id -> RowScores: what
    the scoring run computed) or, without it, computed here in this process (the Python API)."""
    from selfplay.selection.checks import check_selection

    sel = cfg.selection
    check_selection(sel, "selection")
    rows, parse_counts = offline_rows(table, cfg)
    if not rows:
        raise SelfplayError(f"{cfg.input}: no usable rows left ({parse_counts})")
    computed = missing_scores(rows, cfg)
    rewards, implicit = present_scores(rows, cfg)
    if rewards is None:
        log.info("computing rewards of %d rows with judge %s", len(rows), cfg.judge.kind)
        rewards = _from_run(rows, scored, "reward") if scored is not None else compute_rewards(rows, cfg)
    if implicit is None:
        log.info("computing implicit rewards of %d rows by teacher forcing", len(rows))
        implicit = _from_run(rows, scored, "implicit") if scored is not None else compute_implicit(rows, cfg)
    pairs, counts = to_pairs(rows, rewards, implicit, str(sel.on_nonfinite))
    counts = {**parse_counts, **counts}
    if not pairs:
        raise SelfplayError(f"{cfg.input}: no usable rows left ({counts})")
    pool = select_pool(pairs, sel)
    summary = {
        "input": cfg.input,
        "rows": len(rows),
        **counts,
        "computed": computed,
        "metric": str(sel.metric),
        **selection_stats(pool),
    }
    return rows, pool, summary


def _from_run(rows: list[Row], scored: dict[str, Any], what: str) -> list[tuple[float, float]]:
    """(chosen, rejected) `what` ("reward" or "implicit") of each row from the scoring run's records
    (None there = not a finite number: NaN, dropped and counted like any other)."""

    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    out = []
    for r in rows:
        s = scored.get(r.row_id)
        if s is None:
            raise SelfplayError(
                f"select: row {r.row_id} has no computed scores (the scoring run does not match the dataset)"
            )
        out.append((value(getattr(s, f"chosen_{what}")), value(getattr(s, f"rejected_{what}"))))
    return out


def to_pairs(rows: list[Row], rewards, implicit, on_nonfinite: str) -> tuple[list[Pair], dict[str, int]]:
    """Rows -> Pair records; non-finite values and chosen == rejected are dropped and counted (a pair
    with a zero explicit margin stays in the pool: the metrics rank it)."""
    pairs, counts = [], {"dropped_nonfinite": 0, "dropped_identical": 0}
    for i, (r, (rc, rr), (ic, ir)) in enumerate(zip(rows, rewards, implicit)):
        if not all(math.isfinite(v) for v in (rc, rr, ic, ir)):
            if on_nonfinite == "error":
                raise SelfplayError(
                    f"row {i + 1}: non-finite reward or implicit reward ({rc}, {rr}, {ic}, {ir}); "
                    "selection.on_nonfinite=drop skips such rows"
                )
            counts["dropped_nonfinite"] += 1
            continue
        if r.chosen == r.rejected:
            counts["dropped_identical"] += 1
            continue
        pairs.append(
            Pair(r.row_id, r.row_id, r.messages, r.chosen, r.rejected, 0, 1, rc, rr, ic, ir, rc - rr, ic - ir)
        )
    return pairs, counts


def scored_rows(
    rows: list[Row], scored: ScoredPool, drop: set[str] | frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Every scored row in the input's order: its own columns, both rewards, both implicit rewards,
    both margins, score, rank (0 = best) and kept."""
    by_id = {r.row_id: r for r in rows}  # once: per row it made this quadratic (35 s at 20,000 rows)
    columns = zip(scored.pairs, scored.scores.tolist(), scored.rank.tolist(), scored.kept.tolist())
    return [_output_row(by_id, p, s, r, k, drop) for p, s, r, k in columns]


def _output_row(
    by_id: dict[str, Row], p: Pair, score: float, rank: int, kept: bool, drop: set[str] | frozenset[str]
) -> dict[str, Any]:
    return {
        **{k: v for k, v in by_id[p.pair_id].data.items() if k not in drop},
        "chosen_reward": p.chosen_reward,
        "rejected_reward": p.rejected_reward,
        "chosen_implicit": p.chosen_implicit,
        "rejected_implicit": p.rejected_implicit,
        "explicit_margin": p.explicit_margin,
        "implicit_margin": p.implicit_margin,
        "score": score,
        "rank": rank,
        "kept": kept,
    }
