"""Checks of a whole configuration before anything runs: one-line errors naming field and value."""

from __future__ import annotations

from selfplay.config import Config, TrainConfig
from selfplay.errors import SelfplayError


def check_config(cfg: Config) -> None:
    s, g, lp = cfg.selection, cfg.generate, cfg.loop
    if s.count is None and s.ratio is not None and not 0 < s.ratio <= 1:
        raise SelfplayError(f"selection.ratio={s.ratio} must be in (0, 1] (or set selection.count)")
    if s.count is not None and s.count < 0:
        raise SelfplayError(f"selection.count={s.count} must be >= 0")
    if g.num_samples < 2:
        raise SelfplayError(
            f"generate.num_samples={g.num_samples}: pairing needs at least 2 responses per prompt"
        )
    if g.max_tokens < 1:
        raise SelfplayError(f"generate.max_tokens={g.max_tokens} must be >= 1")
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
    check_train(cfg)
    if cfg.evolve.enabled:
        check_evolve(cfg)
    if cfg.judge.kind == "rule":
        from selfplay.judge.rules import resolve_rule

        try:
            resolve_rule(cfg.judge.rule)
        except ValueError as err:
            raise SelfplayError(str(err)) from None
    elif not cfg.judge.model_path:
        raise SelfplayError("judge.model_path: required with judge.kind=reward_model")


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


def check_train(cfg: Config) -> None:
    """Training settings that would fail later, refused before any model loads."""
    from selfplay.train.trl_args import deepspeed_config, gradient_accumulation, trl_dpo_loss_types

    t = cfg.train
    if t.loss == "dpo":
        valid = trl_dpo_loss_types()
        if valid and t.dpo_loss_type not in valid:
            raise SelfplayError(
                f"train.dpo_loss_type='{t.dpo_loss_type}' is not a DPO loss of the installed TRL "
                f"(valid: {', '.join(valid)}; for SimPO use train.loss=simpo)"
            )
    if cfg.selection.implicit_reward == "dpo" and t.reference != "initial":
        raise SelfplayError(
            "selection.implicit_reward=dpo with train.reference=previous: log pi_t - log pi_ref is identically "
            "zero when the reference is pi_t; set train.reference=initial or use avg_logp"
        )
    if t.num_processes < 1:
        raise SelfplayError(f"train.num_processes={t.num_processes} must be >= 1")
    gradient_accumulation(t, t.num_processes)
    deepspeed_config(t.deepspeed)
    if t.lora.enabled and t.lora.r < 1:
        raise SelfplayError(f"train.lora.r={t.lora.r} must be >= 1")


def check_lora_targets(t: TrainConfig, model_path: str, trust_remote_code: bool) -> None:
    """Every LoRA target names modules of the model (built on the meta device: no weights load)."""
    if not t.lora.enabled:
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

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
    if s.count is None and s.ratio is not None and not 0 < s.ratio <= 1:
        raise SelfplayError(
            f"evolve.selection.ratio={s.ratio} must be in (0, 1] (or set evolve.selection.count)"
        )
    if s.implicit_reward == "dpo":
        raise SelfplayError(
            "evolve.selection.implicit_reward=dpo is not supported (use avg_logp or sum_logp)"
        )
