"""Training settings that cannot work are refused at config time, in one line, before models load."""

import pytest

from selfplay.checks import check_config, check_lora_targets
from selfplay.config import Config, GenerateConfig, LoraConfig, SelectionConfig, TrainConfig
from selfplay.errors import SelfplayError
from tests.conftest import vllm_importable


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
        (Config(train=TrainConfig(epochs=-1)), r"^train.epochs=-1 must be > 0$"),  # not a warmup message
        (Config(train=TrainConfig(save_steps=-2)), r"^train.save_steps=-2 must be >= 0"),
        (Config(train=TrainConfig(warmup_ratio=1.0)), r"^train.warmup_ratio=1.0 must be in \[0, 1\)$"),
        (Config(train=TrainConfig(learning_rate=0)), r"^train.learning_rate=0 must be > 0$"),
        (
            Config(selection=SelectionConfig(count=0)),
            r"selection.count=0: keeps no pair, so nothing would train",
        ),
        (
            Config(generate=GenerateConfig(engine_args={"max_num_seqz": 8})),
            r"generate.engine_args.max_num_seqz: not an argument of vllm.LLM",
        ),
        (
            Config(generate=GenerateConfig(engine_args={"seed": 1})),
            "generate.engine_args.seed: set generate.seed",
        ),
    ],
)
def test_bad_training_config(cfg, message):
    if "engine_args" in message and not vllm_importable():
        pytest.skip("needs vllm")
    with pytest.raises(SelfplayError, match=message):
        check_config(cfg)


@pytest.mark.parametrize("metric", ["alignment_potential", "implicit_small", "implicit_large"])
def test_dpo_implicit_reward_is_refused_where_it_is_zero_at_iteration_0(metric):
    """With train.reference=initial, iteration 0's policy is the reference: every DPO-form implicit
    reward is 0, and alignment potential would silently equal explicit selection."""
    cfg = Config(
        selection=SelectionConfig(implicit_reward="dpo", metric=metric),
        train=TrainConfig(reference="initial"),
    )
    with pytest.raises(
        SelfplayError, match=rf"^selection.implicit_reward=dpo with selection.metric={metric}: iteration 0"
    ):
        check_config(cfg)
    check_config(
        Config(
            selection=SelectionConfig(implicit_reward="dpo", metric="explicit"),
            train=TrainConfig(reference="initial"),
        )
    )


def test_lora_targets_must_exist(tiny_policy):
    check_lora_targets(TrainConfig(lora=LoraConfig(enabled=True)), tiny_policy, False)
    bad = TrainConfig(lora=LoraConfig(enabled=True, target_modules=["q_proj", "query_key_value"]))
    with pytest.raises(
        SelfplayError, match=r"query_key_value not in the model \(its linear layers: .*q_proj"
    ):
        check_lora_targets(bad, tiny_policy, False)


def compose(overrides=()):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from selfplay.run import to_config

    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        return to_config(hydra_compose(config_name="config", overrides=list(overrides)))


def test_schema_defaults_are_for_real_models_and_the_tiny_preset_keeps_the_demo():
    from selfplay.training.losses import effective_beta

    real = TrainConfig()
    assert (real.learning_rate, real.epochs, real.max_length) == (5e-7, 1.0, 2048)
    assert effective_beta(real) == 0.1 and effective_beta(TrainConfig(loss="simpo")) == 2.5
    demo = compose()  # python -m selfplay.run: preset=tiny
    assert demo.preset_name == "tiny" and demo.model.path == "tiny"
    assert (demo.train.learning_rate, demo.train.beta, demo.train.epochs, demo.train.batch_size) == (
        1e-3,
        0.2,
        3,
        8,
    )
    assert (demo.generate.max_tokens, demo.generate.num_samples, demo.selection.ratio) == (48, 4, 0.5)
    none = compose(["preset=none", "model.path=/models/x"])
    assert none.train.learning_rate == 5e-7 and none.train.beta is None and none.generate.max_tokens == 1024


def test_a_model_of_ones_own_gets_the_real_model_preset_and_the_demo_keeps_tiny():
    from selfplay.presets import with_default_preset

    assert with_default_preset([]) == []
    assert with_default_preset(["model.path=tiny", "loop.iterations=2"]) == [
        "model.path=tiny",
        "loop.iterations=2",
    ]
    assert with_default_preset(["model.path=/models/x"]) == ["model.path=/models/x", "preset=none"]
    assert with_default_preset(["+model.path='Qwen/Qwen2.5-0.5B-Instruct'", "-m"])[-1] == "preset=none"
    for chosen in (["preset=llama3_8b_dpo"], ["experiment=llama3_8b_simpo"], ["preset=tiny"]):
        assert with_default_preset(["model.path=/models/x", *chosen]) == ["model.path=/models/x", *chosen]
    real = compose(with_default_preset(["model.path=/models/x"]))
    assert (
        real.preset_name == "none" and real.train.learning_rate == 5e-7 and real.generate.max_tokens == 1024
    )


def test_a_model_of_ones_own_on_the_demos_toy_prompts_or_rule_is_refused_unless_allowed():
    from selfplay.checks import check_no_toy_parts

    check_no_toy_parts(compose())  # the demo itself
    with pytest.raises(SelfplayError) as err:
        check_no_toy_parts(compose(["preset=none", "model.path=/models/x"]))
    message = str(err.value)
    assert (
        "bundled toy prompts (set prompts.source=file|hf" in message
        and "judge.rule=topical_variety" in message
    )
    assert "allow_toy=true" in message and "\n" not in message
    own_prompts = ["preset=none", "model.path=/models/x", "prompts.source=file", "prompts.path=p.jsonl"]
    with pytest.raises(
        SelfplayError, match=r"judge.rule=topical_variety, a toy rule .*judge.kind=reward_model"
    ):
        check_no_toy_parts(compose(own_prompts))
    check_no_toy_parts(compose([*own_prompts, "judge.rule=my_pkg.rules:helpful"]))
    check_no_toy_parts(compose([*own_prompts, "judge.kind=reward_model", "judge.model.path=/models/rm"]))
    with pytest.raises(SelfplayError, match=r"evaluate.judge.rule=length_penalized_distinct"):
        check_no_toy_parts(
            compose(
                [
                    *own_prompts,
                    "judge.rule=my_pkg.rules:helpful",
                    "evaluate.judge.kind=rule",
                    "evaluate.judge.rule=length_penalized_distinct",
                ]
            )  # fmt: skip
        )
    check_no_toy_parts(compose(["preset=none", "model.path=/models/x", "allow_toy=true"]))


def test_a_real_model_with_the_tiny_preset_is_refused():
    with pytest.raises(SelfplayError, match=r"model.path=/models/x with preset=tiny: .*add preset=none"):
        check_config(compose(["model.path=/models/x"]))
    check_config(compose(["preset=none", "model.path=/models/x"]))


@pytest.mark.parametrize(
    "train,parameters,needle",
    [
        (
            TrainConfig(loss="simpo", beta=0.5),
            None,
            "train.beta=0.5 is outside the usual range 1-20 for train.loss=simpo",
        ),
        (
            TrainConfig(loss="dpo", beta=2.0),
            None,
            "train.beta=2 is outside the usual range 0.01-1 for train.loss=dpo",
        ),
        (
            TrainConfig(learning_rate=1e-3),
            135_000_000,
            "train.learning_rate=0.001 on a model of 135M parameters",
        ),
    ],
)
def test_settings_far_outside_the_usual_range_are_warned(train, parameters, needle):
    from selfplay.checks import training_warnings

    warnings = training_warnings(Config(train=train), parameters)
    assert any(needle in w for w in warnings), warnings


def test_usual_settings_raise_no_warning():
    from selfplay.checks import training_warnings

    cfg = compose(["preset=none", "model.path=/models/x", "prompts.per_iteration=96"])
    assert [w for w in training_warnings(cfg, 135_000_000) if "beta" in w or "learning_rate" in w] == []
    assert training_warnings(compose(), 2_000_000) == []  # the demo: 48 pairs, 18 steps, toy-sized model


def test_a_schedule_that_cannot_train_is_refused_at_start():
    from selfplay.checks import training_warnings

    cfg = compose(["prompts.per_iteration=8", "train.epochs=1"])  # 4 kept pairs, batch 8: 1 step, 1 warmup
    with pytest.raises(SelfplayError, match="warmup takes every step"):
        training_warnings(cfg, None)


def test_trl_args_pass_through_and_a_misspelled_field_is_one_line():
    from selfplay.training.losses import dpo_config_kwargs

    cfg = TrainConfig(trl_args={"max_grad_norm": 0.5, "logging_steps": 5})
    kw = dpo_config_kwargs(cfg, "/tmp/x", on_cuda=False, bf16=False)
    assert kw["max_grad_norm"] == 0.5 and kw["logging_steps"] == 5
    check_config(Config(train=cfg))
    with pytest.raises(
        SelfplayError,
        match=r"train.trl_args.max_grad_nrm: not a field of TRL's DPOConfig .*did you mean max_grad_norm",
    ):
        check_config(Config(train=TrainConfig(trl_args={"max_grad_nrm": 0.5})))
