"""Every check a run makes before anything runs, in one place: the config's rules (selfplay/checks.py,
each written once), the tracking backend, the stages of this run, the cluster's rendezvous address,
the prompt budget, the starting policy, its tokenizer and LoRA targets, and the training warnings, all
against the resources the run really has (the training world size of a cluster). The orchestrator
raises nothing about config values itself."""

from __future__ import annotations

from dataclasses import dataclass

from selfplay.checks import (
    check_config,
    check_lora_targets,
    check_no_toy_parts,
    parse_restart_from,
    training_warnings,
)
from selfplay.config import Config
from selfplay.errors import SelfplayError
from selfplay.loop.cluster import Resources, local_resources, rendezvous_address
from selfplay.loop.placement import distributed_training
from selfplay.reporting.tracking import check_backend
from selfplay.stages.table import Stage, stage, stages_for


@dataclass(frozen=True)
class Preflight:
    res: Resources
    stages: list[str]
    initial: str
    """pi_0's folder (a hub name resolved to its local snapshot; the built-in tiny policy built)."""
    warnings: list[str]


def preflight(cfg: Config, table: tuple[Stage, ...], dry_run: bool = False) -> Preflight:
    """The checks of a run, or of a dry run (which loads no model)."""
    from selfplay.models.loading import check_tokenizer, parameter_count

    res = local_resources(cfg)  # first: the checks use the world size the run really launches
    check_config(cfg, res.train_world_size)
    check_backend(cfg.tracking)
    stages = stages_for(cfg, table)
    from_prompts = any(stage(name, table).reads_prompt_pool for name in stages)
    if not dry_run and cfg.model.path:
        check_local_model(cfg)  # a folder that is not there is the first thing to say
    if from_prompts:  # a run that trains on a file has no prompt pool and no judge
        check_no_toy_parts(cfg)
    if dry_run:
        return Preflight(res, stages, "", [])
    if cfg.loop.stop_after is not None and cfg.loop.stop_after not in stages:
        raise SelfplayError(
            f"loop.stop_after={cfg.loop.stop_after}: not a stage of this run ({', '.join(stages)})"
        )
    if cfg.loop.restart_from:
        parse_restart_from(cfg.loop.restart_from, stages, cfg.loop.iterations)
    if cfg.hub.push and not cfg.hub.dry_run:  # not after an iteration's work: now
        from selfplay.models.hub import check_push
        from selfplay.reporting.hub_layout import dataset_repo

        repo = str(cfg.hub.repo_id)
        check_push(
            [(repo, "model"), (dataset_repo(repo, cfg.hub.dataset_repo_id), "dataset")], cfg.hub.private
        )
    trains = any(stage(name, table).ranks is not None for name in stages)
    if res.train_world_size > 1 and trains and distributed_training(cfg, res):
        rendezvous_address(res)  # a rendezvous no remote rank could reach: one line now, not a hang later
    if from_prompts:
        check_prompt_budget(cfg)
    initial = starting_policy(cfg)
    if not initial:  # a table that needs no policy (offline selection computing rewards only)
        return Preflight(res, stages, initial, [])
    check_tokenizer(initial, cfg.model.trust_remote_code, chat_template=cfg.model.chat_template)
    check_lora_targets(cfg.train, initial, cfg.model.trust_remote_code)
    params = parameter_count(initial, cfg.model.trust_remote_code)
    warnings = training_warnings(cfg, params, from_prompts, res.train_world_size)
    return Preflight(res, stages, initial, warnings)


def check_local_model(cfg: Config) -> None:
    """pi_0 named as a local folder: it exists and holds a model (the built-in and registry policies are
    built when resolved; a hub name is the library's to fetch)."""
    from selfplay.config import TINY_MODEL
    from selfplay.models.loading import check_model_dir
    from selfplay.models.registry_policy import registry_model

    if cfg.model.path != TINY_MODEL and registry_model(cfg.model.path) is None:
        check_model_dir(cfg.model.path, "model.path", cfg.model.allow_pickle)


def starting_policy(cfg: Config) -> str:
    """pi_0's folder (a hub name resolved to its local snapshot; the built-in tiny policy built), or ""
    for a run without a policy (model.path empty: offline selection that only computes rewards)."""
    from selfplay.models.loading import resolve_policy_path

    return resolve_policy_path(cfg.model) if cfg.model.path else ""


def check_prompt_budget(cfg: Config) -> None:
    from selfplay.data.prompts import load_prompt_pool

    pool = load_prompt_pool(cfg.prompts)  # remembered: the prompts stage reads the same pool
    need = cfg.loop.iterations * cfg.prompts.per_iteration
    if need > len(pool.pool):
        raise SelfplayError(
            f"prompts: {cfg.loop.iterations} iterations x {cfg.prompts.per_iteration} prompts need {need} "
            f"but the pool has {len(pool.pool)} (lower prompts.per_iteration or loop.iterations, or add prompts)"
        )
    if cfg.evaluate.enabled and not pool.heldout:
        raise SelfplayError(
            "prompts: no held-out prompts for evaluation (set prompts.heldout_size > 0 or "
            "prompts.heldout_path, or evaluate.enabled=false)"
        )
