"""The GPU paths in one run, with figures: `python scripts/gpu_check.py --out results/gpu_check.md`.

Builds, locally and with random weights, a policy of Qwen2-0.5B's shape (hidden 896, 24 layers, 14
heads, 2 KV heads, MLP 4864) around the built-in ChatML tokenizer and a small Qwen2 sequence-
classification reward model, then runs `python -m selfplay.run` in this process:

1. 2 iterations: transformers generation (`generate.backend=hf`; vLLM is not needed), the reward-model
   judge, teacher-forced log-probs, DPO in bf16 with gradient checkpointing, evaluation;
2. one SimPO iteration; 3. one LoRA DPO iteration.

Per stage it records seconds, tokens per second (generation stages), the peak GPU memory of the stage
(`torch.cuda.max_memory_allocated`, reset before it) and the memory still allocated after it ends
(goal: the stage's models are gone); and the first step's DPO rewards of each training (goal
|reward| < 1e-3 with bf16 teacher-forced reference log-probs). Without CUDA (a rehearsal on a CPU)
the same runs use a small shape, and the memory columns say so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_models(root: Path, on_cuda: bool) -> tuple[str, str]:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    from selfplay.config import TinyModelConfig, TinyTemplate
    from selfplay.models.tiny import tiny_model_path

    tok_src = str(tiny_model_path(TinyModelConfig(template=TinyTemplate.chatml)))
    tok = AutoTokenizer.from_pretrained(tok_src)
    shape = (
        dict(
            hidden_size=896,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            intermediate_size=4864,
        )
        if on_cuda
        else dict(
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=256,
        )
    )
    common = dict(
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    policy = root / "policy"
    model = Qwen2ForCausalLM(Qwen2Config(**shape, **common)).to(torch.bfloat16)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(policy)
    tok.save_pretrained(policy)
    rm = root / "reward_model"
    rm_shape = dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
    )
    reward = Qwen2ForSequenceClassification(Qwen2Config(**rm_shape, **common, num_labels=1)).to(
        torch.bfloat16
    )
    reward.save_pretrained(rm)
    tok.save_pretrained(rm)
    return str(policy), str(rm)


class StageMeter:
    """Wraps the runner's stage execution: resets the peak before a stage, reads it after, and the
    memory still allocated once the stage's objects are collected."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.run = ""

    def install(self) -> None:
        import torch

        import selfplay.loop.runner as runner

        original = runner.execute

        def measured(ctx, spec, where, res, relaunch):
            cuda = torch.cuda.is_available()
            if cuda:
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            t = time.perf_counter()
            stats = original(ctx, spec, where, res, relaunch)
            seconds = time.perf_counter() - t
            row = {"run": self.run, "iteration": ctx.iteration, "stage": spec.name, "seconds": seconds}
            if cuda:
                row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                gc.collect()
                torch.cuda.empty_cache()
                row["held_after_gib"] = (torch.cuda.memory_allocated() - before) / 2**30
            tokens = stats.get("mean_tokens", 0) * stats.get("responses", 0)
            if tokens:
                row["tokens_per_s"] = tokens / seconds
            self.rows.append(row)
            return stats

        runner.execute = measured


def run(name: str, overrides: list[str], meter: StageMeter, out: Path) -> Path:
    from hydra import compose, initialize_config_module

    from selfplay.config import register_configs
    from selfplay.run import execute, to_config

    meter.run = name
    register_configs()
    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        cfg = to_config(
            compose(
                config_name="config",
                overrides=[*overrides, f"loop.output_dir={out}", f"loop.run_name={name}"],
            )
        )
    execute(cfg, "selfplay.run")
    return out / name


def first_rewards(run_dir: Path) -> list[tuple[int, float, float]]:
    found = []
    for hist in sorted(run_dir.glob("iter_*/train/history.jsonl")):
        rows = [json.loads(line) for line in hist.read_text().splitlines()]
        first = next((r for r in rows if "rewards/chosen" in r), None)
        if first:
            found.append(
                (int(hist.parent.parent.name[5:]), first["rewards/chosen"], first["rewards/rejected"])
            )
    return found


def write_report(out, params, on_cuda, meter, results, failures, batching) -> str:
    import torch

    device = (
        torch.cuda.get_device_name(0) if on_cuda else f"CPU ({platform.machine()}, rehearsal: small shape)"
    )
    lines = [
        f"# GPU check ({time.strftime('%Y-%m-%d')}): {device}",
        "",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, python {sys.version.split()[0]}. "
        f"Policy: random Qwen2 of {params / 1e6:.0f}M parameters ({'Qwen2-0.5B shape' if on_cuda else 'small rehearsal shape'}), "
        "ChatML tokenizer of the built-in policy; reward model: random Qwen2 sequence classifier.",
        "Command: `bash scripts/gpu_check.sh` (device) / `python scripts/gpu_check.py` (anywhere).",
        "",
        "| run | iteration | stage | seconds | tokens/s | peak GiB | held after GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in meter.rows:
        lines.append(
            f"| {r['run']} | {r['iteration']} | {r['stage']} | {r['seconds']:.1f} | "
            f"{r.get('tokens_per_s', 0):.0f} | {r.get('peak_gib', float('nan')):.2f} | {r.get('held_after_gib', float('nan')):.3f} |"
        )
    lines += ["", "Step-0 DPO rewards (goal |reward| < 1e-3):", ""]
    for name, (run_dir, seconds) in results.items():
        for t, chosen, rejected in (
            first_rewards(run_dir) if name != "simpo" else []
        ):  # SimPO has no reference
            lines.append(f"- {name} iteration {t}: chosen {chosen:.2e}, rejected {rejected:.2e}")
        lines.append(f"- {name}: whole run {seconds:.0f} s")
    held = [r["held_after_gib"] for r in meter.rows if "held_after_gib" in r]
    if held:
        lines.append(f"\nLargest memory held after a stage: {max(held):.3f} GiB (goal: ~0).")
    lines += ["", "Failures: " + ("none" if not failures else ""), *[f"- {f}" for f in failures]]
    if batching:
        lines += ["", *batching]
    text = "\n".join(lines) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text


def hf_batching(policy: str, on_cuda: bool) -> list[str]:
    """The transformers backend batched (generate.hf_batch_size=64) vs one prompt per forward on the
    policy in bf16: same tokens?, largest log-prob difference, and the speed ratio."""
    import torch

    from selfplay.config import GenerateConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.hf_backend import hf_generate
    from selfplay.generate.requests import make_requests
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    tok = load_tokenizer(policy)
    model = load_causal_lm(policy, "bfloat16" if on_cuda else "float32")
    prompts = load_prompt_pool(PromptsConfig()).pool[:8]
    requests = make_requests(tok, prompts, 0, "gpu-check")
    gen = GenerateConfig(max_tokens=64, max_model_len=1024, ignore_eos=True)
    times, outs = {}, {}
    for name, size in (("batched", 64), ("one prompt per forward", 4)):
        hf_generate(model, tok, requests[:1], gen, 4)  # warm-up
        if on_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        outs[name] = hf_generate(
            model, tok, requests, __import__("dataclasses").replace(gen, hf_batch_size=size), 4
        )
        if on_cuda:
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - t
    pairs = [
        (a, b) for ga, gb in zip(outs["batched"], outs["one prompt per forward"]) for a, b in zip(ga, gb)
    ]
    same = sum(a.token_ids == b.token_ids for a, b in pairs)
    diff = max(
        (abs(x - y) for a, b in pairs if a.token_ids == b.token_ids for x, y in zip(a.logprobs, b.logprobs)),
        default=float("nan"),
    )
    tokens = 8 * 4 * 64
    del model
    return [
        f"transformers backend, {model_dtype(on_cuda)}, 8 prompts x 4 samples x 64 tokens: batched "
        f"{times['batched']:.2f} s ({tokens / times['batched']:.0f} tokens/s), one prompt per forward "
        f"{times['one prompt per forward']:.2f} s ({tokens / times['one prompt per forward']:.0f} tokens/s), "
        f"{times['one prompt per forward'] / times['batched']:.1f}x; same tokens in {same}/{len(pairs)} responses "
        f"(a response that differs diverges from one sampled token on), largest log-prob difference where "
        f"the same {diff:.1e}."
    ]


def model_dtype(on_cuda: bool) -> str:
    return "bf16 on CUDA" if on_cuda else "fp32 on CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/gpu_check.md")
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    on_cuda = torch.cuda.is_available()
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    policy, rm = build_models(work / "models", on_cuda)
    meter = StageMeter()
    meter.install()
    base = [
        "preset=none",
        "allow_toy=true",  # the bundled prompts: the check is about the GPU paths, not the data
        f"model.path={policy}",
        "generate.backend=hf",
        "generate.num_samples=4",
        "generate.max_tokens=64",
        "generate.max_model_len=1024",
        "judge.kind=reward_model",
        f"judge.model.path={rm}",
        "logprobs.source=teacher_forcing",
        "prompts.per_iteration=32",
        "prompts.heldout_size=16",
        "train.learning_rate=1e-6",
        "train.gradient_checkpointing=true",
        "train.batch_size=4",
        "train.global_batch_size=8",
        "evaluate.num_samples=1",
        "loop.progress=false",
    ]
    results: dict = {}
    failures: list[str] = []
    batching: list[str] = []
    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(policy).parameters())
    report = lambda: write_report(args.out, params, on_cuda, meter, results, failures, batching)  # noqa: E731
    for name, extra in (
        ("dpo", ["train.loss=dpo", "loop.iterations=2"]),
        ("simpo", ["train.loss=simpo", "loop.iterations=1"]),
        ("lora", ["train.loss=dpo", "train.lora.enabled=true", "loop.iterations=1"]),
    ):
        t = time.perf_counter()
        try:
            results[name] = (run(name, [*base, *extra], meter, work / "runs"), time.perf_counter() - t)
        except BaseException as err:  # record and go on: the check's job is to report every path
            failures.append(f"{name}: {type(err).__name__}: {str(err)[:300]}")
        report()  # after every run, so a run cut off by the time limit still leaves its figures
    try:
        batching.extend(hf_batching(policy, on_cuda))
    except Exception as err:
        failures.append(f"hf batching: {type(err).__name__}: {str(err)[:300]}")
    text = report()
    print(text)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
