"""Our TrainConfig -> TRL's DPOConfig, field by field."""

from trl import DPOConfig

from selfplay.config import TrainConfig
from selfplay.train.trl_args import dpo_config_kwargs


def test_mapping_on_cpu(tmp_path):
    cfg = TrainConfig(
        beta=0.3,
        learning_rate=2e-4,
        epochs=2.0,
        batch_size=4,
        gradient_accumulation_steps=2,
        lr_scheduler="linear",
        warmup_ratio=0.2,
        max_length=256,
        seed=7,
    )
    kw = dpo_config_kwargs(cfg, str(tmp_path), on_cuda=False, bf16=True)
    assert kw["loss_type"] == ["sigmoid"] and kw["beta"] == 0.3 and kw["learning_rate"] == 2e-4
    assert kw["num_train_epochs"] == 2.0 and kw["per_device_train_batch_size"] == 4
    assert kw["gradient_accumulation_steps"] == 2 and kw["lr_scheduler_type"] == "linear"
    assert kw["warmup_steps"] == 0.2 and kw["max_length"] == 256 and kw["seed"] == 7
    assert kw["use_cpu"] is True and kw["bf16"] is False and kw["gradient_checkpointing"] is False
    args = DPOConfig(**kw)  # TRL accepts every key
    assert args.beta == 0.3 and args.lr_scheduler_type == "linear" and not args.bf16


def test_mapping_on_cuda_uses_bf16_and_checkpointing(tmp_path):
    kw = dpo_config_kwargs(TrainConfig(), str(tmp_path), on_cuda=True, bf16=True)
    assert kw["use_cpu"] is False and kw["bf16"] is True and kw["gradient_checkpointing"] is True
