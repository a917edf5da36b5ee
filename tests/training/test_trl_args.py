"""Our TrainConfig -> TRL's DPOConfig / CPOConfig (SimPO), field by field, and the checks on them."""

import pytest
from trl import DPOConfig

from selfplay.config import TrainConfig
from selfplay.errors import SelfplayError
from selfplay.training.losses import dpo_config_kwargs, simpo_config_kwargs, trl_dpo_loss_types
from selfplay.training.trl_args import deepspeed_config, gradient_accumulation

CFG = TrainConfig(
    beta=0.3,
    learning_rate=2e-4,
    epochs=2.0,
    batch_size=4,
    gradient_accumulation_steps=2,
    lr_scheduler="linear",
    warmup_ratio=0.2,
    max_length=256,
    seed=7,
    dpo_loss_type="ipo",
)


def test_dpo_mapping_on_cpu(tmp_path):
    kw = dpo_config_kwargs(CFG, str(tmp_path), on_cuda=False, bf16=True, precomputed_reference=True)
    assert kw["loss_type"] == ["ipo"] and kw["beta"] == 0.3 and kw["learning_rate"] == 2e-4
    assert kw["num_train_epochs"] == 2.0 and kw["per_device_train_batch_size"] == 4
    assert kw["gradient_accumulation_steps"] == 2 and kw["lr_scheduler_type"] == "linear"
    assert kw["warmup_steps"] == 0.2 and kw["max_length"] == 256 and kw["seed"] == 7 and kw["data_seed"] == 7
    assert kw["use_cpu"] is True and kw["bf16"] is False and kw["gradient_checkpointing"] is False
    assert kw["precompute_ref_log_probs"] is True and kw["deepspeed"] is None
    assert kw["report_to"] == "none" and (kw["save_strategy"], kw["save_steps"], kw["save_total_limit"]) == (
        "steps",
        100,
        1,
    )
    args = DPOConfig(**kw)  # TRL accepts every key
    assert args.beta == 0.3 and args.loss_type == ["ipo"] and not args.bf16


def test_simpo_mapping(tmp_path):
    from trl.experimental.cpo import CPOConfig

    cfg = TrainConfig(loss="simpo", beta=10.0, simpo_gamma_beta_ratio=0.3)
    kw = simpo_config_kwargs(cfg, str(tmp_path), on_cuda=False, bf16=False)
    assert kw["loss_type"] == "simpo" and kw["cpo_alpha"] == 0.0 and kw["beta"] == 10.0
    assert kw["simpo_gamma"] == pytest.approx(3.0)
    args = CPOConfig(**kw)
    assert args.loss_type == "simpo" and args.simpo_gamma == pytest.approx(3.0)


def test_cuda_uses_bf16_and_checkpointing(tmp_path):
    kw = dpo_config_kwargs(TrainConfig(), str(tmp_path), on_cuda=True, bf16=True)
    assert kw["use_cpu"] is False and kw["bf16"] is True and kw["gradient_checkpointing"] is True
    kw = dpo_config_kwargs(TrainConfig(gradient_checkpointing=False), str(tmp_path), on_cuda=True, bf16=True)
    assert kw["gradient_checkpointing"] is False


def test_global_batch_derives_accumulation():
    assert gradient_accumulation(TrainConfig(global_batch_size=128, batch_size=4), world_size=8) == 4
    assert gradient_accumulation(TrainConfig(gradient_accumulation_steps=3), world_size=8) == 3
    with pytest.raises(SelfplayError, match="global_batch_size=100 is not a multiple of .* = 4 x 8 = 32"):
        gradient_accumulation(TrainConfig(global_batch_size=100, batch_size=4), world_size=8)


def test_loss_types_come_from_the_installed_trl():
    types = trl_dpo_loss_types()
    assert {"sigmoid", "ipo", "hinge", "robust"} <= set(types) and "simpo" not in types


def test_shipped_deepspeed_configs():
    import json

    for name in ("zero2", "zero3"):
        with open(deepspeed_config(name)) as f:
            cfg = json.load(f)
        assert cfg["train_batch_size"] == "auto"  # derived by the HF integration, never hard-coded
    with pytest.raises(SelfplayError, match="train.deepspeed: 'zero9'"):
        deepspeed_config("zero9")
