"""Training settings that cannot work are refused at config time, in one line, before models load."""

import pytest

from selfplay.checks import check_config, check_lora_targets
from selfplay.config import Config, LoraConfig, SelectionConfig, TrainConfig
from selfplay.errors import SelfplayError


@pytest.mark.parametrize(
    "cfg,message",
    [
        (
            Config(train=TrainConfig(dpo_loss_type="simpo")),
            r"train.dpo_loss_type='simpo' is not a DPO loss .*valid: sigmoid",
        ),
        (Config(selection=SelectionConfig(implicit_reward="dpo")), "identically zero"),
        (Config(train=TrainConfig(global_batch_size=10, batch_size=4)), "not a multiple"),
        (Config(train=TrainConfig(deepspeed="/no/such.json")), "train.deepspeed"),
        (Config(train=TrainConfig(num_processes=0)), "train.num_processes=0"),
    ],
)
def test_bad_training_config(cfg, message):
    with pytest.raises(SelfplayError, match=message):
        check_config(cfg)


def test_dpo_implicit_reward_with_initial_reference_is_fine():
    check_config(
        Config(selection=SelectionConfig(implicit_reward="dpo"), train=TrainConfig(reference="initial"))
    )


def test_lora_targets_must_exist(tiny_policy):
    check_lora_targets(TrainConfig(lora=LoraConfig(enabled=True)), tiny_policy, False)
    bad = TrainConfig(lora=LoraConfig(enabled=True, target_modules=["q_proj", "query_key_value"]))
    with pytest.raises(
        SelfplayError, match=r"query_key_value not in the model \(its linear layers: .*q_proj"
    ):
        check_lora_targets(bad, tiny_policy, False)
