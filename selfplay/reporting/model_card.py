"""The model card (README.md) of a trained policy: what it was trained from and on, how, and how it did
on the held-out prompts (added once the evaluate stage has run). Its metadata comes from
huggingface_hub's ModelCardData: `base_model` is pi_0's hub id where it has one (never a local path)."""

from __future__ import annotations

from typing import Any

from selfplay.config import Config
from selfplay.judge.judging import judge_name
from selfplay.reporting.hub_layout import public_model
from selfplay.rundir.stats import EvaluateStats, SelectionStats, TrainStats
from selfplay.selection.metrics import metric_spec
from selfplay.training.losses import effective_beta, loss_spec


def _fmt(v: Any) -> str:
    """A figure of the card; "-" for one that was not measured."""
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def public_judge(judge) -> str:
    """How a card names a judge: its kind and, for a model, the model's public name (never a path)."""
    from selfplay.judge.generative import POLICY

    name = judge_name(judge)
    path = judge.model.path
    if path and path != POLICY and path in name:
        return f"`{name.replace(path, '<model>')}` (<model> = {public_model(path)})"
    return f"`{name}`"


def evaluation_judge(cfg: Config):
    return cfg.judge if cfg.evaluate.judge.kind is None else cfg.evaluate.judge


def model_card(
    cfg: Config,
    iteration: int,
    start: str,
    train: TrainStats,
    selection: SelectionStats | None,
    evaluation: EvaluateStats | None = None,
) -> str:
    t = cfg.train
    loss = str(t.loss)
    sel = cfg.selection
    keep = f"top {sel.count} pairs" if sel.count is not None else f"top {sel.ratio:.0%} of the pool"
    lines = [
        f"# {cfg.loop.run_name}: policy after self-play iteration {iteration}",
        "",
        f"Trained by selfplay (self-play preference alignment) in iteration {iteration} from "
        f"{public_model(start if iteration else cfg.model.path)} on pairs it generated itself, judged, paired "
        "and selected.",
        "",
        "| | |",
        "|---|---|",
        f"| starting policy (pi_0) | {public_model(cfg.model.path)} |",
        f"| this iteration's starting policy | {public_model(start if iteration else cfg.model.path)} |",
        f"| judge | {public_judge(cfg.judge)} |",
        f"| samples per prompt | {cfg.generate.num_samples} (temperature {cfg.generate.temperature}, top_p {cfg.generate.top_p}) |",
        f"| selection | `{sel.metric}`"
        + (f" (w = {sel.weight})" if metric_spec(str(sel.metric)).weighted else "")
        + f", {keep}, pool `{sel.pool}` |",
        f"| pairs kept / pool | {_fmt(selection and selection.kept)} / {_fmt(selection and selection.pool)} |",
        f"| training pairs | {_fmt(train.pairs)}"
        + (" (accumulated over iterations)" if t.accumulate else "")
        + " |",
        f"| loss | {loss_spec(t).card(t, effective_beta(t))}"
        + f", learning rate {t.learning_rate:g}, {t.epochs:g} epoch(s) |",
        f"| optimizer steps | {_fmt(train.optimizer_steps)}, final train loss {_fmt(train.train_loss)} |",
    ]
    if evaluation:
        lines += [
            "",
            "## Held-out evaluation",
            "",
            f"{evaluation.heldout_prompts} held-out prompts, judge {public_judge(evaluation_judge(cfg))}.",
            "",
            "| | |",
            "|---|---|",
            f"| mean reward | {_fmt(evaluation.heldout_reward_after)} |",
            *(
                [f"| share at full marks (strict) | {_fmt(evaluation.heldout_strict_after)} |"]
                if evaluation.heldout_strict_after is not None
                else []
            ),
            f"| win rate vs pi_0 | {_fmt(evaluation.win_rate_vs_initial)} |",
            f"| win rate vs the previous policy | {_fmt(evaluation.win_rate_vs_previous)} |",
            f"| mean response tokens | {_fmt(evaluation.heldout_tokens_after)} |",
        ]
    from selfplay.reporting.hub_layout import dataset_repo, hub_id, model_card_text

    tags = [
        "selfplay",
        "trl",
        loss,
        "alignment-potential" if metric_spec(str(sel.metric)).weighted else f"selection-{sel.metric}",
    ]
    datasets = (
        [dataset_repo(str(cfg.hub.repo_id), cfg.hub.dataset_repo_id)]
        if cfg.hub.push and cfg.hub.repo_id
        else []
    )
    return model_card_text("\n".join(lines) + "\n", hub_id(cfg.model.path), tags, datasets, cfg.hub.license)
