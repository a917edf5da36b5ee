"""Chat formatting: the template is applied once (one BOS, system turn kept), and the token ids we
sample from are the ids TRL's DPO trainer builds for the same prompt and response."""

import pytest

from selfplay.data.chat import render_prompt_ids
from selfplay.errors import SelfplayError
from selfplay.models.loading import load_tokenizer

MSGS = [{"role": "system", "content": "Be simple."}, {"role": "user", "content": "Tell me about bees."}]


def test_one_bos_and_the_system_turn(tiny_policy):
    tok = load_tokenizer(tiny_policy)
    ids = render_prompt_ids(tok, MSGS)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    text = tok.decode(ids)
    assert text.startswith("<bos> <|system|> be simple . <|end|> <|user|> tell me about bees .")
    assert text.endswith("<|assistant|>")


def test_missing_chat_template_is_a_clear_error(tiny_policy):
    tok = load_tokenizer(tiny_policy)
    tok.chat_template = None
    with pytest.raises(SelfplayError, match="has no chat_template"):
        render_prompt_ids(tok, MSGS)


def test_trainer_sees_the_sampled_token_ids(tiny_policy, tmp_path):
    """TRL's tokenisation of (prompt, chosen) equals our prompt ids and the sampled response ids."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from selfplay.config import TrainConfig
    from selfplay.data.records import Pair
    from selfplay.models.loading import load_causal_lm
    from selfplay.training.data import preference_rows as to_preference_rows
    from selfplay.training.losses import dpo_config_kwargs

    tok = load_tokenizer(tiny_policy)
    sampled = tok("honey and wax in the hive .", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    rejected = tok("bees bees", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    pair = Pair(
        "000-a",
        "a",
        MSGS,
        tok.decode(sampled, skip_special_tokens=True),
        tok.decode(rejected, skip_special_tokens=True),
        0,
        1,
        1.0,
        0.0,
        -1.0,
        -1.0,
        1.0,
        0.0,
    )
    args = DPOConfig(**dpo_config_kwargs(TrainConfig(), str(tmp_path), on_cuda=False, bf16=False))
    trainer = DPOTrainer(
        model=load_causal_lm(tiny_policy),
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list(to_preference_rows([pair])),
    )
    row = trainer.train_dataset[0]
    assert row["prompt_ids"] == render_prompt_ids(tok, MSGS)
    assert row["chosen_ids"] == sampled
    assert row["rejected_ids"] == rejected
    # Our replica of TRL's split (used to decide when sampled log-probs can serve as reference) agrees.
    from selfplay.data.chat import trainer_token_ids

    assert trainer_token_ids(tok, MSGS, pair.chosen) == (row["prompt_ids"], row["chosen_ids"])
