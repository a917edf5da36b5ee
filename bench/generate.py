"""Generation throughput, side by side in one run on one model, prompts and settings:

  ours-vllm  selfplay's vllm backend (VllmEngine.generate + record building)
  raw-vllm   vllm.LLM.generate with the same SamplingParams, without our wrapper
  ours-hf    selfplay's transformers backend (hf_generate + record building), batched
             (generate.hf_batch_size sequences per forward, the default)
  ours-hf-1  the same backend one prompt per forward (hf_batch_size = K: what it did before it was
             batched, bit for bit); the samples of both must be the same tokens

Steady state: each engine/model is started and warmed up first; engine start times are reported
apart. Prints tokens/s of each and the ratios ours-vllm/ours-hf and ours-vllm/raw-vllm.

  python bench/generate.py [--out results/generate_bench_cpu.md] [--reps 3]

Default model: a random-weight Llama of ~34M parameters (hidden 512, 8 layers, 8 heads, MLP 2048)
with the built-in tiny tokenizer: 32 bundled prompts x 4 samples x 64 new tokens (end-of-sequence
ignored so every engine produces the same number of tokens).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402

T = TypeVar("T")

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_model(folder: str, hidden: int, layers: int, heads: int, mlp: int) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfplay.config import TinyModelConfig
    from selfplay.models.loading import load_tokenizer
    from selfplay.models.tiny import tiny_model_path

    tok = load_tokenizer(str(tiny_model_path(TinyModelConfig())))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def timed(fn: Callable[[], T], reps: int) -> tuple[float, T]:
    """The median seconds of `reps` calls, and the last call's result."""
    times = []
    for _ in range(max(1, reps)):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--mlp", type=int, default=2048)
    args = ap.parse_args()

    import torch
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from selfplay.config import Backend, GenerateConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.hf_backend import hf_generate
    from selfplay.generate.requests import make_requests, to_completions
    from selfplay.generate.vllm_backend import VllmEngine
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    folder = tempfile.mkdtemp(prefix="bench-generate-")
    n_params = build_model(folder, args.hidden, args.layers, args.heads, args.mlp)
    tok = load_tokenizer(folder)
    prompts = load_prompt_pool(PromptsConfig()).pool[: args.prompts]
    gen = GenerateConfig(
        backend=Backend.vllm, num_samples=args.samples, max_tokens=args.tokens, ignore_eos=True
    )
    requests = make_requests(tok, prompts, gen.seed, "bench")
    total_tokens = len(requests) * args.samples * args.tokens
    rows = {}

    start = time.perf_counter()
    engine = VllmEngine(folder, gen, "auto", False)
    start_ours = time.perf_counter() - start
    engine.generate(requests[:2], gen, args.samples)  # warm-up
    t, comps = timed(
        lambda: to_completions(tok, requests, engine.generate(requests, gen, args.samples), 0, folder),
        args.reps,
    )
    assert sum(c.num_tokens for c in comps) == total_tokens
    rows["ours-vllm"] = (t, start_ours)
    engine.close()

    start = time.perf_counter()
    llm = LLM(
        model=folder,
        dtype="float32",
        max_model_len=gen.max_model_len,
        enforce_eager=True,
        seed=0,
        logprobs_mode="raw_logprobs",
        kv_cache_memory_bytes=int(gen.cpu_kv_cache_gib * 2**30),
    )
    start_raw = time.perf_counter() - start
    params = [
        SamplingParams(
            n=args.samples,
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=args.tokens,
            seed=r.seed,
            logprobs=0,
            ignore_eos=True,
            detokenize=False,
        )
        for r in requests
    ]
    # vLLM declares every key of TokensPrompt required (total TypedDict); it needs only the ids.
    inputs = [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests]  # type: ignore[typeddict-item]
    llm.generate(inputs[:2], params[:2], use_tqdm=False)
    t, outs = timed(lambda: llm.generate(inputs, params, use_tqdm=False), args.reps)
    assert sum(len(c.token_ids) for o in outs for c in o.outputs) == total_tokens
    rows["raw-vllm"] = (t, start_raw)

    start = time.perf_counter()
    model = load_causal_lm(folder, "float32", device="cpu")
    start_hf = time.perf_counter() - start
    hf_generate(model, tok, requests[:1], gen, args.samples)
    t, comps = timed(
        lambda: to_completions(
            tok, requests, hf_generate(model, tok, requests, gen, args.samples), 0, folder
        ),
        args.reps,
    )
    assert sum(c.num_tokens for c in comps) == total_tokens
    rows["ours-hf"] = (t, start_hf)
    one_prompt = replace(gen, hf_batch_size=args.samples)
    t, comps_one = timed(
        lambda: to_completions(
            tok, requests, hf_generate(model, tok, requests, one_prompt, args.samples), 0, folder
        ),
        args.reps,
    )
    rows["ours-hf-1"] = (t, start_hf)
    same = sum(a.token_ids == b.token_ids for a, b in zip(comps, comps_one))
    lp_diff = max(
        abs(x - y)
        for a, b in zip(comps, comps_one)
        if a.token_ids == b.token_ids
        for x, y in zip(a.logprobs, b.logprobs)
    )

    lines = [
        f"# Generation throughput ({today()})",
        "",
        f"Machine: {machine()}, CUDA {torch.cuda.is_available()}; torch "
        f"{torch.__version__}, vllm {vllm.__version__}.",
        f"Model: random-weight Llama, {n_params / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers, "
        f"{args.heads} heads, MLP {args.mlp}), fp32. Workload: {len(requests)} prompts x {args.samples} samples x "
        f"{args.tokens} new tokens = {total_tokens} tokens; median of {args.reps} timed runs after a warm-up.",
        "",
        "| engine | seconds | tokens/s | start-up s |",
        "|---|---|---|---|",
    ]
    for name, (secs, startup) in rows.items():
        lines.append(f"| {name} | {secs:.2f} | {total_tokens / secs:,.0f} | {startup:.1f} |")
    tps = {k: total_tokens / v[0] for k, v in rows.items()}
    lines += [
        "",
        f"ours-vllm / ours-hf = {tps['ours-vllm'] / tps['ours-hf']:.2f}x; ours-vllm / ours-hf-1 = "
        f"{tps['ours-vllm'] / tps['ours-hf-1']:.2f}x (goal >= 2x: vLLM worth its install)",
        f"ours-vllm / raw-vllm = {tps['ours-vllm'] / tps['raw-vllm']:.1%} (goal >= 90%)",
        f"ours-hf (batched, hf_batch_size={gen.hf_batch_size}) / ours-hf-1 (one prompt per forward) = "
        f"{tps['ours-hf'] / tps['ours-hf-1']:.2f}x (goal >= 3x); same tokens in {same}/{len(comps)} "
        f"responses, largest log-prob difference {lp_diff:.1e}",
    ]
    text = "\n".join(lines)
    emit(text, args.out)


if __name__ == "__main__":
    main()
