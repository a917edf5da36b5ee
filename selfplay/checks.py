"""Checks of a whole configuration before anything runs: one-line errors naming field and value."""

from __future__ import annotations

import logging
import math

from selfplay.config import TINY_MODEL, Config, TrainConfig
from selfplay.errors import SelfplayError
from selfplay.selection.checks import check_selection

log = logging.getLogger(__name__)


def check_no_toy_parts(cfg: Config) -> None:
    """A model of one's own is not trained on the demo's toy prompts or scored by a toy rule unless
    `allow_toy=true` says so (the run would finish and mean nothing)."""
    from selfplay.config import JudgeKind, PromptSource
    from selfplay.judge.rules import RULES

    if cfg.model.path == TINY_MODEL or cfg.allow_toy:
        return
    toy = []
    if cfg.prompts.source == PromptSource.bundled and not cfg.prompts.path:  # a named set is a real task
        toy.append("the bundled toy prompts (set prompts.source=file|hf and prompts.path)")
    judges = [("judge", cfg.judge)]
    if cfg.evaluate.enabled and cfg.evaluate.judge.kind is not None:
        judges.append(("evaluate.judge", cfg.evaluate.judge))
    for name, judge in judges:
        if judge.kind == JudgeKind.rule and judge.rule in RULES:
            toy.append(
                f"{name}.rule={judge.rule}, a toy rule for the built-in policy (set {name}.kind=reward_model "
                f"and {name}.model_path, or {name}.rule=<module:function>)"
            )
    if toy:
        raise SelfplayError(
            f"model.path={cfg.model.path} would run on {' and '.join(toy)}; allow_toy=true runs it anyway"
        )


def check_config(cfg: Config, world_size: int | None = None) -> None:
    """`world_size`: the training processes the run will really launch (nodes x processes per node on
    a cluster; default train.num_processes)."""
    s, g, lp = cfg.selection, cfg.generate, cfg.loop
    if cfg.preset_name == "tiny" and cfg.model.path != TINY_MODEL:
        raise SelfplayError(
            f"model.path={cfg.model.path} with preset=tiny: the tiny preset holds settings for the built-in "
            "2-layer toy (learning rate 1e-3, 48-token responses) that would wreck a real model; add preset=none "
            "(real-model defaults) or a model preset of conf/preset/ (e.g. preset=llama3_8b_dpo)"
        )
    check_selection(s, "selection")
    if g.engine_args:
        from selfplay.generate.vllm_backend import check_engine_args, vllm_available

        if vllm_available() and g.backend != "hf":
            check_engine_args(dict(g.engine_args))  # at start, not when the first engine starts
    if g.num_samples < 2:
        raise SelfplayError(
            f"generate.num_samples={g.num_samples}: pairing needs at least 2 responses per prompt"
        )
    if g.max_tokens < 1:
        raise SelfplayError(f"generate.max_tokens={g.max_tokens} must be >= 1")
    if g.hf_batch_size < 1:
        raise SelfplayError(f"generate.hf_batch_size={g.hf_batch_size} must be >= 1")
    if not 0 < g.top_p <= 1:
        raise SelfplayError(f"generate.top_p={g.top_p} must be in (0, 1]")
    if g.temperature <= 0:
        raise SelfplayError(f"generate.temperature={g.temperature} must be > 0 (sampling needs spread)")
    if lp.iterations < 1:
        raise SelfplayError(f"loop.iterations={lp.iterations} must be >= 1")
    if cfg.prompts.per_iteration < 1:
        raise SelfplayError(f"prompts.per_iteration={cfg.prompts.per_iteration} must be >= 1")
    if not 1 <= lp.shards <= cfg.prompts.per_iteration:
        raise SelfplayError(
            f"loop.shards={lp.shards} must be between 1 and prompts.per_iteration={cfg.prompts.per_iteration}"
        )
    if lp.shard_workers < 0:
        raise SelfplayError(f"loop.shard_workers={lp.shard_workers} must be >= 0")
    if cfg.train.batch_size < 1 or cfg.train.gradient_accumulation_steps < 1:
        raise SelfplayError("train.batch_size and train.gradient_accumulation_steps must be >= 1")
    if cfg.evaluate.enabled and cfg.evaluate.num_samples < 1:
        raise SelfplayError(f"evaluate.num_samples={cfg.evaluate.num_samples} must be >= 1")
    check_train(cfg, world_size)
    if cfg.evolve.enabled:
        check_evolve(cfg)
    check_judge(cfg.judge, "judge")
    if cfg.hub.push and not cfg.hub.repo_id:
        raise SelfplayError("hub.repo_id: required with hub.push=true (e.g. hub.repo_id=you/selfplay-run)")
    if cfg.evaluate.judge.kind is not None:
        check_judge(cfg.evaluate.judge, "evaluate.judge")
    if cfg.evaluate.enabled:
        check_evaluation_judge(cfg)


def check_evaluation_judge(cfg: Config) -> None:
    """Held-out evaluation needs rewards comparable across prompts and policies: a judge whose rewards
    only rank a prompt's own responses (pairwise, Bradley-Terry: mean 0 per prompt) would report a
    constant held-out reward and win rate whatever the policy does."""
    from selfplay.judge.kinds import judge_spec

    key = "judge" if cfg.evaluate.judge.kind is None else "evaluate.judge"
    judge = cfg.judge if cfg.evaluate.judge.kind is None else cfg.evaluate.judge
    if judge_spec(judge).relative(judge):
        raise SelfplayError(
            f"{key}.generative.mode=pairwise as the held-out judge: its rewards rank a prompt's responses "
            "against each other (mean 0 per prompt), so held-out rewards and win rates would be constant; "
            "evaluate with a pointwise judge (evaluate.judge.kind=generative evaluate.judge.generative.mode="
            "pointwise), a reward model or a rule, or set evaluate.enabled=false"
        )


def check_judge(judge, key: str) -> None:
    from selfplay.judge.kinds import judge_spec

    judge_spec(judge).check(judge, key)


def parse_restart_from(value: str, stages: list[str], iterations: int) -> tuple[int, str]:
    """ "<iteration>/<stage>" -> (iteration, stage), checked against this run's stages."""
    it, _, stage = value.partition("/")
    if not it.isdigit() or stage not in stages:
        raise SelfplayError(
            f"loop.restart_from='{value}': expected '<iteration>/<stage>' with stage one of {', '.join(stages)}"
        )
    if int(it) >= iterations:
        raise SelfplayError(f"loop.restart_from='{value}': the run has iterations 0..{iterations - 1}")
    return int(it), stage


def expected_pairs(cfg: Config) -> int:
    """The most pairs iteration 0 can train on: k of a full seed pool plus k of a full evolved pool."""
    from selfplay.selection.metrics import resolve_k

    per_prompt = cfg.generate.num_samples * (cfg.generate.num_samples - 1) // 2
    from selfplay.selection.pairing import pairing_spec

    many = pairing_spec(str(cfg.selection.pairing)).many
    pool = cfg.prompts.per_iteration * (per_prompt if many else 1)
    pairs = resolve_k(pool, cfg.selection.ratio, cfg.selection.count)
    if cfg.evolve.enabled:
        ev = cfg.evolve
        parents = cfg.prompts.per_iteration if ev.parents == "all" else math.ceil(ev.top_fraction * pool)
        evolved = parents * min(ev.rewrites_per_prompt, len(ev.strategies))
        pairs += resolve_k(evolved, ev.selection.ratio, ev.selection.count)
    return pairs


def training_warnings(
    cfg: Config, parameters: int | None, plan: bool = True, world_size: int | None = None
) -> list[str]:
    """Settings far outside the usual range for their loss and model size (warned, not refused), and
    a schedule with few steps; a schedule whose warmup takes every step is refused."""
    from selfplay.training.losses import effective_beta, loss_spec
    from selfplay.training.schedule import check_schedule, planned_schedule

    t, out = cfg.train, []
    spec = loss_spec(t)
    beta, (low, high) = effective_beta(t), spec.beta_range
    if not low <= beta <= high:
        out.append(
            f"train.beta={beta:g} is outside the usual range {low:g}-{high:g} for train.loss={t.loss} "
            f"({spec.outside_range})"
        )
    if parameters is not None and parameters > 100e6 and t.learning_rate > 1e-4:
        out.append(
            f"train.learning_rate={t.learning_rate:g} on a model of {parameters / 1e6:.0f}M parameters: preference "
            "training of real models uses 1e-7 to 1e-5 (the paper presets 3e-7 to 1e-6); this will likely wreck it"
        )
    if plan:  # with the most pairs iteration 0 can keep (a run on a file checks at its train stage)
        schedule = planned_schedule(expected_pairs(cfg), t, world_size or t.num_processes)
        few = check_schedule(schedule, t, "train (at most, in iteration 0)")
        if few:
            out.append(few)
    return out


def check_train(cfg: Config, world_size: int | None = None) -> None:
    """Training settings that would fail later, refused before any model loads."""
    from selfplay.training.losses import loss_spec
    from selfplay.training.trl_args import check_trl_args, deepspeed_config, gradient_accumulation

    t = cfg.train
    check_train_numbers(t)
    spec = loss_spec(t)
    spec.check(t)
    from selfplay.selection.implicit import implicit_form
    from selfplay.selection.metrics import metric_spec

    relative = implicit_form(cfg.selection.implicit_reward).needs_reference
    if relative and t.reference != "initial":
        raise SelfplayError(
            "selection.implicit_reward=dpo with train.reference=previous: log pi_t - log pi_ref is identically "
            "zero when the reference is pi_t; set train.reference=initial or use avg_logp"
        )
    if relative and metric_spec(str(cfg.selection.metric)).reads_implicit:
        raise SelfplayError(
            f"selection.implicit_reward=dpo with selection.metric={cfg.selection.metric}: iteration 0 samples "
            "from pi_0, the reference itself, so log pi_t - log pi_0 is identically zero there and the metric "
            "would silently rank by the explicit margin alone; use selection.implicit_reward=avg_logp (the "
            "reference code's form) or sum_logp"
        )
    if t.num_processes < 1:
        raise SelfplayError(f"train.num_processes={t.num_processes} must be >= 1")
    gradient_accumulation(t, world_size or t.num_processes)
    deepspeed_config(t.deepspeed)
    check_trl_args(t, spec.trl_config())
    if t.lora.enabled and t.lora.r < 1:
        raise SelfplayError(f"train.lora.r={t.lora.r} must be >= 1")


TRAIN_BOUNDS = (
    ("epochs", lambda v: v > 0, "> 0"),
    ("learning_rate", lambda v: v > 0, "> 0"),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("gradient_accumulation_steps", lambda v: v >= 1, ">= 1"),
    ("max_length", lambda v: v >= 2, ">= 2"),
    ("warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("save_steps", lambda v: v >= 0, ">= 0 (0 = no trainer checkpoints)"),
    ("save_total_limit", lambda v: v >= 1, ">= 1"),
)
"""train.* numbers and what they must be (checked before anything that reads them)."""


def check_train_numbers(t: TrainConfig) -> None:
    for name, ok, expected in TRAIN_BOUNDS:
        value = getattr(t, name)
        if not ok(value):
            raise SelfplayError(f"train.{name}={value} must be {expected}")
    if t.global_batch_size is not None and t.global_batch_size < 1:
        raise SelfplayError(f"train.global_batch_size={t.global_batch_size} must be >= 1 (or null)")


def check_lora_targets(t: TrainConfig, model_path: str, trust_remote_code: bool) -> None:
    """Every LoRA target names modules of the model (built on the meta device: no weights load)."""
    if not t.lora.enabled:
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from selfplay.models.loading import loading

    with loading(model_path):
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in t.lora.target_modules if m not in names]
    if missing:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        )
        raise SelfplayError(
            f"train.lora.target_modules: {', '.join(missing)} not in the model "
            f"(its linear layers: {', '.join(linear)})"
        )


def check_evolve(cfg: Config) -> None:
    from selfplay.evolve.templates import load_templates

    ev = cfg.evolve
    load_templates(list(ev.strategies), ev.templates_dir)
    if not 0 < ev.top_fraction <= 1:
        raise SelfplayError(f"evolve.top_fraction={ev.top_fraction} must be in (0, 1]")
    if ev.rewrites_per_prompt < 1:
        raise SelfplayError(f"evolve.rewrites_per_prompt={ev.rewrites_per_prompt} must be >= 1")
    if not 0 <= ev.min_length_ratio < ev.max_length_ratio:
        raise SelfplayError("evolve.min_length_ratio must be >= 0 and below evolve.max_length_ratio")
    s = ev.selection
    check_selection(s, "evolve.selection")
    from selfplay.selection.implicit import implicit_form

    if implicit_form(s.implicit_reward).needs_reference:
        raise SelfplayError(
            "evolve.selection.implicit_reward=dpo is not supported (use avg_logp or sum_logp)"
        )
