"""Backend-independent generation details: finish reasons, stop strings, empty and over-long
prompts counted, one BOS even when the tokenizer would add another, clear errors for bad models."""

import pytest

from selfplay.config import GenerateConfig, ModelConfig, PromptsConfig
from selfplay.data.chat import render_prompt_ids
from selfplay.data.prompts import load_prompt_pool
from selfplay.data.records import Completion
from selfplay.errors import SelfplayError
from selfplay.generate.requests import RawSample, SampleRequest, completion_stats, to_completions
from selfplay.generate.sample import sample_completions
from selfplay.models.loading import check_model_dir, load_tokenizer


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_finish_reasons_stop_strings_and_stats(tiny_policy):
    tok = load_tokenizer(tiny_policy)
    eos = tok.eos_token_id
    req = SampleRequest("p", [1, 2], 7)
    raw = [
        RawSample(ids(tok, "honey and wax") + [eos], [-1.0] * 4, "stop"),
        RawSample(ids(tok, "honey honey honey"), [-1.0] * 3, "length"),
        RawSample([eos], [-0.5], "stop"),
        RawSample(ids(tok, "honey . bees"), [-1.0] * 3, "length"),
    ]
    comps = to_completions(tok, [req], [raw], iteration=2, model="m", stop=["."])
    assert [c.finish_reason for c in comps] == ["stop", "length", "empty", "stop"]
    assert comps[3].text == "honey" and comps[3].token_ids == ids(tok, "honey . bees")
    assert comps[0].num_tokens == 4 and comps[0].logprob_sum == -4.0 and comps[0].seed == 7
    assert completion_stats(comps) == {
        "responses": 4,
        "mean_tokens": 11 / 4,
        "tokens": 11,
        "truncated": 1,
        "empty": 1,
    }


def test_one_bos_when_the_tokenizer_would_add_another(tiny_policy):
    from tokenizers.processors import TemplateProcessing

    tok = load_tokenizer(tiny_policy)
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)]
    )
    msgs = [{"role": "user", "content": "Tell me about bees."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # the double BOS peers fall into
    rendered = render_prompt_ids(tok, msgs)
    assert rendered.count(tok.bos_token_id) == 1 and rendered[0] == tok.bos_token_id


def test_over_long_prompts_are_skipped_and_counted(tiny_policy, tmp_path):
    from selfplay.stages.sampling import generate_stats

    prompts = load_prompt_pool(PromptsConfig()).pool[:3]
    tok = load_tokenizer(tiny_policy)
    lengths = [len(render_prompt_ids(tok, p.messages)) for p in prompts]
    limit = sorted(lengths)[1]  # the prompts this long or longer do not fit
    gen = GenerateConfig(backend="hf", max_model_len=limit, max_tokens=8)
    comps, _ = sample_completions(tiny_policy, prompts, gen, ModelConfig(), "s", 2, 0)
    assert {c.prompt_id for c in comps} == {p.prompt_id for p, n in zip(prompts, lengths) if n < limit}
    assert all(
        len(render_prompt_ids(tok, p.messages)) + c.num_tokens <= limit
        for p in prompts
        for c in comps
        if c.prompt_id == p.prompt_id
    )

    class Ctx:
        config = type("C", (), {"generate": gen})()

    from selfplay.data.files import write_records

    write_records(tmp_path / "c.parquet", comps, Completion)
    stats = generate_stats(Ctx(), prompts, tmp_path / "c.parquet")
    assert stats.prompts_too_long == sum(n >= limit for n in lengths)


def test_model_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SelfplayError, match="has no weights"):
        check_model_dir(str(tmp_path), "model.path")
    with pytest.raises(SelfplayError, match="has no config.json"):
        check_model_dir(str(tmp_path.parent), "model.path")
