"""The batched transformers backend against transformers' own `generate`, one prompt at a time with the
prompt's seed (what the backend did before it batched): the same tokens for every response under both
chat templates, log-probs equal to 1e-5, and bit for bit when a batch holds one prompt. Also: each row's
own length limit inside a shared batch, stop strings, ignore_eos."""

import dataclasses

import pytest
import torch

from selfplay.config import GenerateConfig, PromptsConfig
from selfplay.data.prompts import load_prompt_pool
from selfplay.generate.hf_backend import _eos_ids, hf_generate
from selfplay.generate.requests import make_requests, to_completions
from selfplay.models.loading import load_causal_lm, load_tokenizer


@pytest.fixture(scope="module")
def prompts():
    return load_prompt_pool(PromptsConfig()).pool[:12]


def reference(model, tok, requests, cfg, k):
    """transformers' generate, one prompt at a time, seeded by the prompt's seed."""
    eos = sorted(_eos_ids(model, tok))
    out = []
    for req in requests:
        torch.manual_seed(req.seed)
        ids = torch.tensor([req.prompt_ids])
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=cfg.top_k if cfg.top_k > 0 else None,
                max_new_tokens=min(cfg.max_tokens, cfg.max_model_len - len(req.prompt_ids)),
                min_new_tokens=cfg.max_tokens if cfg.ignore_eos else None,
                num_return_sequences=k,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tok.pad_token_id,
                eos_token_id=eos,
            )
        new = gen.sequences[:, ids.shape[1] :]
        lps = torch.stack(
            [
                s.gather(-1, new[:, t, None]).squeeze(-1) - torch.logsumexp(s, -1)
                for t, s in enumerate(gen.logits)
            ],
            dim=1,
        )
        group = []
        for row in range(k):
            toks = new[row].tolist()
            end = next((i for i, t in enumerate(toks) if t in eos), len(toks) - 1)
            group.append((toks[: end + 1], lps[row, : end + 1].tolist()))
        out.append(group)
    return out


@pytest.mark.parametrize("top_k,ignore_eos", [(-1, False), (20, True)])
def test_batched_equals_transformers_generate(any_tiny_policy, prompts, top_k, ignore_eos):
    tok, model = load_tokenizer(any_tiny_policy), load_causal_lm(any_tiny_policy, "float32")
    cfg = GenerateConfig(
        max_tokens=24, max_model_len=512, top_k=top_k, ignore_eos=ignore_eos, hf_batch_size=24
    )
    requests = make_requests(tok, prompts, 0, "iter_000")
    assert len({len(r.prompt_ids) for r in requests}) > 1  # batches really are padded
    want = reference(model, tok, requests, cfg, 3)
    got = hf_generate(model, tok, requests, cfg, 3)
    worst = 0.0
    for ref_group, group in zip(want, got):
        for (toks, lps), sample in zip(ref_group, group):
            assert sample.token_ids == toks
            worst = max([worst, *(abs(a - b) for a, b in zip(sample.logprobs, lps))])
            assert sample.finish_reason == ("stop" if toks[-1] in _eos_ids(model, tok) else "length")
    assert worst < 1e-5
    if ignore_eos:
        assert all(len(s.token_ids) == 24 for g in got for s in g)
    # One prompt per batch: transformers' generate, bit for bit.
    alone = hf_generate(model, tok, requests[:4], dataclasses.replace(cfg, hf_batch_size=3), 3)
    assert [[(s.token_ids, s.logprobs) for s in g] for g in alone] == want[:4]


def test_each_row_keeps_its_own_context_limit(tiny_chatml_policy, prompts):
    tok, model = load_tokenizer(tiny_chatml_policy), load_causal_lm(tiny_chatml_policy, "float32")
    requests = make_requests(tok, prompts, 0, "limits")
    lengths = sorted(len(r.prompt_ids) for r in requests)
    limit = lengths[-1] + 6  # the longest prompt has room for 6 tokens, the shortest for many more
    cfg = GenerateConfig(max_tokens=40, max_model_len=limit, ignore_eos=True, hf_batch_size=64)
    got = hf_generate(model, tok, requests, cfg, 2)
    for req, group in zip(requests, got):
        for s in group:
            assert len(s.token_ids) == min(40, limit - len(req.prompt_ids))
            assert s.finish_reason == "length"


def test_stop_strings_end_rows_independently(tiny_policy, prompts):
    # The word-level tokenizer of the tiny policy is one that transformers' StopStringCriteria cannot
    # index; the backend matches stop strings on decoded text instead.
    tok, model = load_tokenizer(tiny_policy), load_causal_lm(tiny_policy, "float32")
    requests = make_requests(tok, prompts, 0, "stops")
    free = hf_generate(model, tok, requests, GenerateConfig(max_tokens=32, max_model_len=512), 4)
    word = "."
    cfg = GenerateConfig(max_tokens=32, max_model_len=512, stop=[word])
    got = hf_generate(model, tok, requests, cfg, 4)
    hits = 0
    for before, after in zip(free, got):
        for a, b in zip(before, after):
            text = tok.decode(a.token_ids, skip_special_tokens=True)
            if word in text:  # cut at the token that completes the first stop string
                hits += 1
                cut = next(i for i in range(len(a.token_ids)) if word in tok.decode(a.token_ids[: i + 1]))
                assert b.token_ids == a.token_ids[: cut + 1]
            else:
                assert b.token_ids == a.token_ids
    assert 0 < hits < sum(len(g) for g in got)
    comps = to_completions(tok, requests, got, 0, "m", cfg.stop)
    assert all(word not in c.text for c in comps)
    assert sum(c.finish_reason == "stop" for c in comps) >= hits


def small_model(arch: str, tok, positions: int = 512):
    """A random 2-layer model of another architecture around the tiny tokenizer: Gemma-2 (sliding-window
    attention, logit soft-capping), GPT-2 (learned absolute positions), Qwen2 (grouped KV heads)."""
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        GPT2Config,
        GPT2LMHeadModel,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = dict(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    small = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    torch.manual_seed(0)
    if arch == "gemma2":
        return Gemma2ForCausalLM(Gemma2Config(**small, head_dim=32, sliding_window=16, **common)).eval()
    if arch == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(n_embd=64, n_layer=2, n_head=2, n_positions=positions, **common)
        ).eval()
    return Qwen2ForCausalLM(Qwen2Config(**small, **common)).eval()


@pytest.mark.parametrize("arch", ["gemma2", "gpt2", "qwen2"])
def test_other_architectures(tiny_chatml_policy, prompts, arch):
    tok = load_tokenizer(tiny_chatml_policy)
    model = small_model(arch, tok)
    requests = make_requests(tok, prompts, 0, "arch")  # 25-30 tokens: past Gemma-2's 16-token window
    cfg = GenerateConfig(max_tokens=32, max_model_len=512, ignore_eos=True, hf_batch_size=36)
    want = reference(model, tok, requests[:3], cfg, 3)
    alone = hf_generate(model, tok, requests[:3], dataclasses.replace(cfg, hf_batch_size=3), 3)
    assert [[(s.token_ids, s.logprobs) for s in g] for g in alone] == want
    batched = hf_generate(model, tok, requests, cfg, 3)
    assert [[s.token_ids for s in g] for g in batched[:3]] == [[t for t, _ in g] for g in want]


def test_rows_near_a_learned_position_table_end(tiny_chatml_policy, prompts):
    # GPT-2's positions are a table of n_positions rows: rows that end early (less room) must not walk
    # past it while their batch goes on, and a prompt that fills the context gets no tokens.
    from selfplay.generate.requests import SampleRequest

    tok = load_tokenizer(tiny_chatml_policy)
    model = small_model("gpt2", tok, positions=48)
    requests = make_requests(tok, prompts, 0, "table")
    requests = [*requests, SampleRequest("full", (requests[0].prompt_ids * 3)[:48], 7)]
    cfg = GenerateConfig(max_tokens=40, ignore_eos=True, hf_batch_size=64)  # context: the model's 48
    got = hf_generate(model, tok, requests, cfg, 2)
    for req, group in zip(requests, got):
        assert [len(s.token_ids) for s in group] == [max(0, min(40, 48 - len(req.prompt_ids)))] * 2
