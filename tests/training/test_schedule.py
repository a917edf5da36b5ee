"""Training that cannot move the policy is caught: a schedule whose warmup takes every step is refused
with the numbers and the fix, few steps are warned about, and a policy that comes out of training
bit-identical to the one it started from is an error naming the likely cause."""

import pytest

from selfplay.config import ModelConfig, TrainConfig
from selfplay.errors import SelfplayError
from selfplay.training.schedule import check_schedule, planned_schedule


@pytest.mark.parametrize(
    "pairs,batch,accum,world,epochs,steps",
    [(8, 8, 1, 1, 1, 1), (48, 8, 1, 1, 3, 18), (9, 4, 1, 1, 1, 3), (100, 2, 8, 4, 1, 2), (33, 4, 8, 1, 2, 4)],
)
def test_planned_steps_match_the_trainers_count(pairs, batch, accum, world, epochs, steps):
    cfg = TrainConfig(batch_size=batch, gradient_accumulation_steps=accum, epochs=epochs)
    assert planned_schedule(pairs, cfg, world).steps == steps


def test_one_step_all_warmup_is_refused_with_numbers_and_fix():
    cfg = TrainConfig(batch_size=8, gradient_accumulation_steps=1, epochs=1, warmup_ratio=0.1)
    s = planned_schedule(8, cfg, 1)
    assert (s.steps, s.warmup) == (1, 1)
    with pytest.raises(
        SelfplayError,
        match=r"8 pairs make 1 optimizer step\(s\) of 8 pairs .*1 of them warmup.*train.warmup_ratio",
    ):
        check_schedule(s, cfg, "train")
    no_warmup = TrainConfig(warmup_ratio=0.0, batch_size=8, gradient_accumulation_steps=1)
    assert "only 1 step" in check_schedule(planned_schedule(8, no_warmup, 1), no_warmup, "x")  # warned, runs


def test_few_steps_are_warned():
    cfg = TrainConfig(batch_size=4, gradient_accumulation_steps=1, epochs=1)
    warning = check_schedule(planned_schedule(9, cfg, 1), cfg, "train")
    assert warning and "only 3 step(s)" in warning
    assert check_schedule(planned_schedule(400, cfg, 1), cfg, "train") is None


def test_a_policy_that_training_leaves_unchanged_is_an_error(tmp_path, tiny_policy):
    """Learning rate 0: the trainer runs, the weights are bit-identical, the stage must not pass."""
    from datasets import Dataset

    from selfplay.training.trainer import train_policy

    row = {"prompt_ids": [2, 5, 6], "chosen_ids": [7, 8, 3], "rejected_ids": [9, 3]}
    Dataset.from_list([row] * 8).save_to_disk(str(tmp_path / "data"))
    cfg = TrainConfig(
        learning_rate=0.0,
        batch_size=4,
        gradient_accumulation_steps=1,
        warmup_ratio=0.0,
        reference_logprobs="trainer",
        beta=0.1,
    )
    with pytest.raises(
        SelfplayError, match=r"bit-identical to the policy it started from .*train.learning_rate is 0"
    ):
        train_policy(tmp_path / "data", tiny_policy, None, cfg, ModelConfig(), tmp_path / "t", tmp_path / "m")
