"""The table of training losses: everything that differs between DPO and SimPO lives in one `LossSpec`
each (TRL's config class and our mapping to it, the trainer, the training row, whether a reference
policy is trained against, the usual beta and its range, the model card's line, checks). Adding a loss
is one entry here plus the `Loss` choice in `selfplay/config.py` and its docs; nothing else tests the
loss's name."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfplay.config import TrainConfig
from selfplay.errors import SelfplayError
from selfplay.training.trl_args import common_kwargs, passed_through

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


@dataclass(frozen=True)
class LossSpec:
    name: str
    usual_beta: float
    """beta when `train.beta` is null."""
    beta_range: tuple[float, float]
    """Where beta usually lies; outside it is warned about at start ..."""
    outside_range: str
    """... with this reason."""
    reference: bool
    """Trained against a reference policy (DPO): reference log-probs are part of its rows."""
    trl_config: Callable[[], type]
    """TRL's config class."""
    config_kwargs: Callable[..., dict[str, Any]]
    """(cfg, output_dir, on_cuda, bf16, world_size, precomputed_reference) -> TRL config arguments."""
    trainer: Callable[[], type]
    """TRL's trainer, taught to take rows we tokenised."""
    row: Callable[[list[int], list[int], list[int], float, float, TrainConfig], dict[str, Any]]
    """(prompt ids, chosen ids, rejected ids, chosen reference log-prob, rejected's, cfg) -> a row."""
    card: Callable[[TrainConfig, float], str]
    """The loss's settings as the model card states them (beta given)."""
    check: Callable[[TrainConfig], None] = lambda cfg: None
    """Settings of this loss that would fail later, refused at start."""


def loss_spec(cfg: TrainConfig) -> LossSpec:
    """`train.loss`: an entry of LOSSES, or "module:attr" naming your own LossSpec."""
    from selfplay.errors import SelfplayError
    from selfplay.plugins import resolve

    found = resolve(str(cfg.loss), LOSSES, "train.loss")
    if not isinstance(found, LossSpec):
        raise SelfplayError(f"train.loss={cfg.loss}: not a LossSpec (selfplay/training/losses.py)")
    return found


def effective_beta(cfg: TrainConfig) -> float:
    return cfg.beta if cfg.beta is not None else loss_spec(cfg).usual_beta


# DPO: TRL's DPOTrainer with any of its loss types.


def _dpo_config():
    from trl import DPOConfig

    return DPOConfig


def dpo_config_kwargs(
    cfg: TrainConfig,
    output_dir: str,
    on_cuda: bool,
    bf16: bool,
    world_size: int = 1,
    precomputed_reference: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `trl.DPOConfig`."""
    return {
        **common_kwargs(cfg, output_dir, on_cuda, bf16, world_size),
        "loss_type": [cfg.dpo_loss_type],
        "beta": effective_beta(cfg),
        "precompute_ref_log_probs": precomputed_reference,
        **passed_through(cfg),
    }


def missing_reference(dataset) -> list[int]:
    """Rows whose reference log-probs the trainer must compute (NaN, or no columns at all)."""
    if not all(c in dataset.column_names for c in REF_COLUMNS):
        return list(range(len(dataset)))
    chosen, rejected = dataset[REF_COLUMNS[0]], dataset[REF_COLUMNS[1]]
    return [i for i, (a, b) in enumerate(zip(chosen, rejected)) if math.isnan(a) or math.isnan(b)]


def tokenised_dpo_trainer():
    """TRL's DPOTrainer on rows we tokenised, computing only the reference log-probs that are missing:
    one teacher-forced pass (TRL's own forward, under the training autocast) over those rows."""
    from datasets import concatenate_datasets
    from trl import DPOTrainer

    class TokenisedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # prompt_ids / chosen_ids / rejected_ids, truncated and filtered by us

        def _precompute_ref_logps(self, dataset, name, batch_size):
            missing = missing_reference(dataset)
            if not missing:
                return dataset
            if len(missing) == len(dataset):
                plain = dataset.remove_columns([c for c in REF_COLUMNS if c in dataset.column_names])
                return super()._precompute_ref_logps(plain, name, batch_size)
            subset = dataset.select(missing).remove_columns(list(REF_COLUMNS))
            computed = super()._precompute_ref_logps(subset, name, batch_size)
            values = {c: list(dataset[c]) for c in REF_COLUMNS}
            for c in REF_COLUMNS:
                for i, v in zip(missing, computed[c]):
                    values[c][i] = v
            base = dataset.remove_columns(list(REF_COLUMNS))
            from datasets import Dataset

            return concatenate_datasets([base, Dataset.from_dict(values)], axis=1)

    return TokenisedDPOTrainer


def dpo_row(prompt, chosen, rejected, ref_chosen, ref_rejected, cfg: TrainConfig) -> dict[str, Any]:
    """DPO's columns; with reference_logprobs=auto the reference log-probs (NaN: computed before training)."""
    row: dict[str, Any] = {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}
    if cfg.reference_logprobs == "auto":
        row[REF_COLUMNS[0]], row[REF_COLUMNS[1]] = ref_chosen, ref_rejected
    return row


def trl_dpo_loss_types() -> list[str]:
    """The DPO loss types the installed TRL documents on its `DPOConfig.loss_type` field."""
    import dataclasses
    import re

    field = next(f for f in dataclasses.fields(_dpo_config()) if f.name == "loss_type")
    return re.findall(r"`'([a-z_0-9]+)'`", field.metadata.get("help", ""))


def _check_dpo(cfg: TrainConfig) -> None:
    valid = trl_dpo_loss_types()
    if valid and cfg.dpo_loss_type not in valid:
        raise SelfplayError(
            f"train.dpo_loss_type='{cfg.dpo_loss_type}' is not a DPO loss of the installed TRL "
            f"(valid: {', '.join(valid)}; for SimPO use train.loss=simpo)"
        )


# SimPO: TRL's CPO trainer in SimPO mode (no reference, no NLL term).


def _cpo_config():
    from trl.experimental.cpo import CPOConfig

    return CPOConfig


def simpo_config_kwargs(
    cfg: TrainConfig,
    output_dir: str,
    on_cuda: bool,
    bf16: bool,
    world_size: int = 1,
    precomputed_reference: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for TRL's `CPOConfig` in SimPO mode: no NLL term (cpo_alpha=0), the margin
    gamma = simpo_gamma_beta_ratio * beta."""
    return {
        **common_kwargs(cfg, output_dir, on_cuda, bf16, world_size),
        "loss_type": "simpo",
        "cpo_alpha": 0.0,
        "remove_unused_columns": False,  # the rows carry CPO's own token columns
        "beta": effective_beta(cfg),
        "simpo_gamma": cfg.simpo_gamma_beta_ratio * effective_beta(cfg),
        **passed_through(cfg),
    }


def tokenised_cpo_trainer():
    """TRL's CPO trainer (SimPO mode) on rows that already carry its token columns."""
    from trl.experimental.cpo import CPOTrainer

    class TokenisedCPOTrainer(CPOTrainer):
        def tokenize_row(self, feature, model=None):
            return feature

    return TokenisedCPOTrainer


def cpo_row(prompt, chosen, rejected, ref_chosen=math.nan, ref_rejected=math.nan, cfg=None) -> dict[str, Any]:
    """TRL's CPO (SimPO) columns: the prompt, and prompt + response with the prompt masked in the labels."""
    row: dict[str, Any] = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for name, response in (("chosen", chosen), ("rejected", rejected)):
        ids = prompt + response
        row[f"{name}_input_ids"] = ids
        row[f"{name}_attention_mask"] = [1] * len(ids)
        row[f"{name}_labels"] = [-100] * len(prompt) + response
    return row


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(
        name="dpo",
        usual_beta=0.1,  # the DPO paper's value and TRL's default
        beta_range=(0.01, 1.0),
        outside_range="DPO above 1 hardly moves the policy",
        reference=True,
        trl_config=_dpo_config,
        config_kwargs=dpo_config_kwargs,
        trainer=tokenised_dpo_trainer,
        row=dpo_row,
        card=lambda t, beta: f"dpo, beta {beta:g}, reference `{t.reference}`",
        check=_check_dpo,
    ),
    "simpo": LossSpec(
        name="simpo",
        usual_beta=2.5,  # the low end of SimPO's instruct-model recipes (2.5 to 10)
        beta_range=(1.0, 20.0),
        outside_range="SimPO below 1 barely separates chosen from rejected",
        reference=False,
        trl_config=_cpo_config,
        config_kwargs=simpo_config_kwargs,
        trainer=tokenised_cpo_trainer,
        row=cpo_row,
        card=lambda t, beta: f"simpo, beta {beta:g}, gamma/beta {t.simpo_gamma_beta_ratio:g}",
    ),
}
"""Every loss `train.loss` may name by its name; "module:attr" names a LossSpec of your own."""
