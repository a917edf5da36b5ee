"""The paper's central comparison in miniature, on the built-in tiny policy (CPU, about 40 minutes):
does selecting preference pairs by alignment potential train a better policy than the baselines?

For each seed, pi_0 samples ONE candidate pool (generate, judge and pair: `python -m selfplay.run
loop.stop_after=selection selection.ratio=1.0`), and every arm selects from that same pool (offline
selection of its pairs file, `selfplay.select`), keeps the same number of pairs (40%) and trains pi_0 with
identical DPO settings (`selfplay.train` on the selected file). Every trained policy and pi_0 are sampled
on the 48 held-out prompts, 8 samples each, with the same seeds, and judged by the same rule judge.

  part 1  arms: random, explicit, explicit_small, implicit_small, implicit_large, alignment potential
          w = 1 and w = 2.5; held-out reward gain over pi_0 and win rate vs pi_0, per arm, mean and
          spread over seeds; AP vs each baseline paired by seed (sign test, bootstrap 95% CI)
  part 2  data size: AP (w = 1) vs random keeping 16, 32, 64, 128 pairs of a larger pool
  part 3  iterations: the full self-play loop for 4 iterations, AP (w = 1) vs random

Resumable (every finished unit is a file under --work; a rerun skips it) and prints progress. Writes
results/selection_miniature.md and PNG figures beside it.

  python scripts/selection_miniature.py [--seeds 10] [--curve-seeds 5] [--work runs/miniature]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

ARMS: dict[str, dict[str, Any]] = {
    "random": {"metric": "random"},
    "explicit": {"metric": "explicit"},
    "explicit_small": {"metric": "explicit_small"},
    "implicit_small": {"metric": "implicit_small"},
    "implicit_large": {"metric": "implicit_large"},
    "ap_w1": {"metric": "alignment_potential", "weight": 1.0},
    "ap_w2.5": {"metric": "alignment_potential", "weight": 2.5},
}
AP = ("ap_w1", "ap_w2.5")
POOL_PROMPTS, CURVE_POOL_PROMPTS, RATIO = 96, 224, 0.4
SIZES = (16, 32, 64, 128)
HELDOUT_SAMPLES, ITERATIONS, ITER_PROMPTS = 8, 4, 64
START = time.time()
READING = "## Reading the results"
"""A section of the results page written by hand after a run (kept when the script rewrites the page;
check it still matches the numbers above it)."""


def say(msg: str) -> None:
    print(f"[{time.time() - START:7.0f}s] {msg}", flush=True)


def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        return OmegaConf.to_object(hydra_compose(config_name=name, overrides=overrides))


def cached(path: Path, make):
    """The JSON result at `path`, computed by `make()` the first time (resumable units)."""
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
    return value


def pool(work: Path, seed: int, prompts: int) -> Path:
    """pi_0's candidate pool for one seed: generate, judge, pair everything (nothing trained)."""
    from selfplay.loop.orchestrator import run_loop

    name = f"pool{prompts}-s{seed}"
    pairs = work / name / "iter_000" / "selection" / "pairs.jsonl"
    if not pairs.is_file() or not (pairs.parent / "_SUCCESS").is_file():
        say(f"pool {name}: generating {prompts} prompts x 4 samples, judging, pairing")
        cfg = compose(
            "config",
            [
                f"loop.output_dir={work}",
                f"loop.run_name={name}",
                "loop.iterations=1",
                "loop.stop_after=selection",
                "loop.progress=false",
                f"prompts.per_iteration={prompts}",
                f"prompts.shuffle_seed={seed}",
                f"generate.seed={seed}",
                "selection.ratio=1.0",
            ],
        )
        run_loop(cfg)
    return pairs


def pool_columns():
    """The columns of a run's selection/pairs.jsonl, as offline selection reads them."""
    from selfplay.config import ColumnsConfig

    return ColumnsConfig(
        prompt="messages",
        id="pair_id",
        chosen_reward="chosen_reward",
        rejected_reward="rejected_reward",
        chosen_implicit="chosen_implicit",
        rejected_implicit="rejected_implicit",
    )


def select_and_train(work: Path, seed: int, pairs: Path, arm: str, spec: dict, count: int | None) -> Path:
    """Offline selection of the pool's pairs by `arm`, then DPO on the selected file; the model folder."""
    from selfplay.config import OfflineSelectConfig, SelectionConfig
    from selfplay.loop.orchestrator import run_loop
    from selfplay.selection.offline import select_offline
    from selfplay.stages.table import FILE_STAGES

    tag = f"{arm}-{'r40' if count is None else f'n{count}'}-s{seed}-{pairs.parents[2].name}"
    out = work / "selected" / tag
    if not (out / "summary.json").is_file():
        columns = pool_columns()
        selection = SelectionConfig(
            metric=spec["metric"],
            weight=spec.get("weight", 1.0),
            ratio=RATIO if count is None else None,
            count=count,
            seed=seed,
        )
        select_offline(
            OfflineSelectConfig(input=str(pairs), output=str(out), columns=columns, selection=selection)
        )
    model = work / "trained" / tag / "iter_000" / "train" / "model"
    if not (model.parent / "_SUCCESS").is_file():
        cfg = compose(
            "train_file",
            [
                f"input={out / json.loads((out / 'summary.json').read_text()).get('files', {}).get('selected', 'selected.jsonl')}",
                "pairs.prompt=messages",
                f"loop.output_dir={work / 'trained'}",
                f"loop.run_name={tag}",
                "loop.progress=false",
            ],
        )
        run_loop(cfg, table=FILE_STAGES)
    return model


def evaluate(work: Path, seed: int, policy: str, tag: str) -> dict:
    """Held-out samples of a policy (8 per prompt, the seed's sampling seeds) and their rewards."""
    from selfplay.config import GenerateConfig, JudgeConfig, ModelConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.evaluate.heldout import evaluate_policies
    from selfplay.judge.judging import load_judge

    def run() -> dict:
        heldout = load_prompt_pool(PromptsConfig()).heldout
        gen = GenerateConfig(seed=seed, num_samples=4, max_tokens=48, max_model_len=512)
        stats, rows = evaluate_policies(
            {"policy": policy},
            heldout,
            gen,
            ModelConfig(),
            HELDOUT_SAMPLES,
            0,
            load_judge(JudgeConfig()),
            tag,
        )
        return {
            "reward": stats["heldout_reward_policy"],
            "rewards": {f"{r['prompt_id']}/{r['sample_index']}": r["reward"] for r in rows},
        }

    return cached(work / "eval" / f"{tag}.json", run)


def win_rate(ours: dict, theirs: dict) -> float:
    """Share of held-out samples (same prompt, same sampling seed) where ours is judged better; ties 1/2."""
    keys = sorted(set(ours["rewards"]) & set(theirs["rewards"]))
    wins = sum(
        1.0
        if ours["rewards"][k] > theirs["rewards"][k]
        else 0.5
        if ours["rewards"][k] == theirs["rewards"][k]
        else 0.0
        for k in keys
    )
    return wins / len(keys)


def pi0(work: Path, seed: int) -> dict:
    from selfplay.config import TinyModelConfig
    from selfplay.models.tiny import tiny_model_path

    return evaluate(work, seed, str(tiny_model_path(TinyModelConfig())), f"pi0-s{seed}")


def kept_margins(work: Path, tag_dir: Path) -> tuple[float, float]:
    summary = json.loads((tag_dir / "summary.json").read_text())
    return summary.get("kept_mean_explicit_margin", math.nan), summary.get(
        "kept_mean_abs_implicit_margin", math.nan
    )


# Statistics.


def mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def sign_test(diffs: list[float]) -> tuple[int, int, float]:
    """(wins, non-zero differences, two-sided binomial p) for differences that favour the first."""
    nz = [d for d in diffs if d != 0]
    n, k = len(nz), sum(d > 0 for d in nz)
    if n == 0:
        return 0, 0, 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2**n
    return k, n, min(1.0, 2 * tail)


def bootstrap_ci(diffs: list[float], reps: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


# The three parts.


def part1(work: Path, seeds: list[int]) -> dict:
    results: dict = {arm: {"gain": [], "win": [], "d_ex": [], "d_im": []} for arm in ARMS}
    for s in seeds:
        base = pi0(work, s)
        pairs = pool(work, s, POOL_PROMPTS)
        for arm, spec in ARMS.items():
            model = select_and_train(work, s, pairs, arm, spec, None)
            tag = f"{arm}-r40-s{s}-{pairs.parents[2].name}"
            ev = evaluate(work, s, str(model), tag)
            results[arm]["gain"].append(ev["reward"] - base["reward"])
            results[arm]["win"].append(win_rate(ev, base))
            d_ex, d_im = kept_margins(work, work / "selected" / tag)
            results[arm]["d_ex"].append(d_ex)
            results[arm]["d_im"].append(d_im)
            say(
                f"part 1 seed {s} {arm}: gain {results[arm]['gain'][-1]:+.4f} win {results[arm]['win'][-1]:.3f}"
            )
    return results


def part2(work: Path, seeds: list[int]) -> dict:
    results: dict = {arm: {n: [] for n in SIZES} for arm in ("ap_w1", "random")}
    for s in seeds:
        base = pi0(work, s)
        pairs = pool(work, s, CURVE_POOL_PROMPTS)
        for arm in results:
            for n in SIZES:
                model = select_and_train(work, s, pairs, arm, ARMS[arm], n)
                ev = evaluate(work, s, str(model), f"{arm}-n{n}-s{s}-{pairs.parents[2].name}")
                results[arm][n].append(ev["reward"] - base["reward"])
                say(f"part 2 seed {s} {arm} {n} pairs: gain {results[arm][n][-1]:+.4f}")
    return results


def part3(work: Path, seeds: list[int]) -> dict:
    from selfplay.loop.orchestrator import run_loop

    results: dict = {
        arm: {"reward": [[] for _ in range(ITERATIONS + 1)], "win": [[] for _ in range(ITERATIONS)]}
        for arm in ("ap_w1", "random")
    }
    for s in seeds:
        for arm in results:
            name = f"iter-{arm}-s{s}"
            run_dir = work / name
            if not (run_dir / f"iter_{ITERATIONS - 1:03d}" / "evaluate" / "_SUCCESS").is_file():
                say(f"part 3 seed {s} {arm}: {ITERATIONS} self-play iterations")
                spec = ARMS[arm]
                cfg = compose(
                    "config",
                    [
                        f"loop.output_dir={work}",
                        f"loop.run_name={name}",
                        f"loop.iterations={ITERATIONS}",
                        "loop.progress=false",
                        f"prompts.per_iteration={ITER_PROMPTS}",
                        f"prompts.shuffle_seed={s}",
                        f"generate.seed={s}",
                        f"selection.metric={spec['metric']}",
                        f"selection.weight={spec.get('weight', 1.0)}",
                        f"selection.ratio={RATIO}",
                        f"selection.seed={s}",
                        f"evaluate.num_samples={HELDOUT_SAMPLES}",
                    ],
                )
                run_loop(cfg)
            rows = [
                json.loads(line)
                for t in range(ITERATIONS)
                for line in (run_dir / f"iter_{t:03d}" / "evaluate" / "heldout.jsonl").open()
            ]
            before = {
                f"{r['prompt_id']}/{r['sample_index']}": r["reward"] for r in rows if r["policy"] == "before"
            }
            base = {"rewards": before}
            results[arm]["reward"][0].append(sum(before.values()) / len(before))
            for t in range(ITERATIONS):
                after = [
                    json.loads(line)
                    for line in (run_dir / f"iter_{t:03d}" / "evaluate" / "heldout.jsonl").open()
                ]
                ours = {
                    f"{r['prompt_id']}/{r['sample_index']}": r["reward"]
                    for r in after
                    if r["policy"] == "after"
                }
                results[arm]["reward"][t + 1].append(sum(ours.values()) / len(ours))
                results[arm]["win"][t].append(win_rate({"rewards": ours}, base))
            say(
                f"part 3 seed {s} {arm}: held-out reward by iteration {[round(r[-1], 3) for r in results[arm]['reward']]}"
            )
    return results


# Report.


def figures(out: Path, r1: dict, r2: dict, r3: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "gain", "held-out reward gain over pi_0"),
        (axes[1], "win", "win rate vs pi_0"),
    ):
        arms = list(ARMS)
        means = [mean_sd(r1[a][key])[0] for a in arms]
        ax.bar(
            range(len(arms)), means, color=["tab:orange" if a in AP else "tab:gray" for a in arms], alpha=0.6
        )
        for i, a in enumerate(arms):
            ax.scatter([i] * len(r1[a][key]), r1[a][key], s=10, color="black", zorder=3)
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_ylabel(label)
        if key == "win":
            ax.axhline(0.5, color="black", lw=0.8, ls="--")
        else:
            ax.axhline(0.0, color="black", lw=0.8)
    fig.suptitle("Selection arms on one shared pool per seed (bars: mean, dots: seeds)")
    fig.tight_layout()
    fig.savefig(out / "selection_miniature_arms.png", dpi=120)
    names.append("selection_miniature_arms.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm, color in (("ap_w1", "tab:orange"), ("random", "tab:gray")):
        ms = [mean_sd(r2[arm][n]) for n in SIZES]
        axes[0].errorbar(
            SIZES,
            [m for m, _ in ms],
            yerr=[sd for _, sd in ms],
            marker="o",
            capsize=3,
            label=arm,
            color=color,
        )
        rs = [mean_sd(r3[arm]["reward"][t]) for t in range(ITERATIONS + 1)]
        axes[1].errorbar(
            range(ITERATIONS + 1),
            [m for m, _ in rs],
            yerr=[sd for _, sd in rs],
            marker="o",
            capsize=3,
            label=arm,
            color=color,
        )
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("kept pairs (of one ~220-pair pool)")
    axes[0].set_ylabel("held-out reward gain over pi_0")
    axes[1].set_xlabel("iteration (0 = pi_0)")
    axes[1].set_ylabel("held-out reward")
    for ax in axes:
        ax.legend()
    fig.suptitle("Alignment potential vs random: data size and iterations (mean +- sd over seeds)")
    fig.tight_layout()
    fig.savefig(out / "selection_miniature_scaling.png", dpi=120)
    names.append("selection_miniature_scaling.png")
    plt.close(fig)
    return names


def report(out: Path, args, seeds, curve_seeds, r1, r2, r3, wall: float) -> str:
    import torch

    lines = [
        "# Alignment-potential selection in miniature (tiny policy, CPU)",
        "",
        f"Command: `python scripts/selection_miniature.py --seeds {args.seeds} --curve-seeds {args.curve_seeds}` "
        f"(work folder `{args.work}`). Machine: {platform.machine()}, {os.cpu_count()} CPUs, no GPU; torch "
        f"{torch.__version__}. Date: {time.strftime('%Y-%m-%d')}. Wall time of this run: {wall / 60:.0f} min "
        "(units finished by an earlier run are reused, so a rerun of the same command reprints this page).",
        "",
        "Setup: the built-in tiny policy (a 2-layer toy, `preset=tiny`), the bundled prompts, the built-in "
        "`topical_variety` rule judge, vLLM sampling (4 samples at T = 0.8, top_p 0.95, 48 tokens). Per seed, "
        f"pi_0 samples one pool from {POOL_PROMPTS} prompts (different prompts and sampling seeds per seed); "
        f"every arm keeps {int(RATIO * 100)}% of that pool's pairs and trains pi_0 with the tiny preset's DPO "
        "settings (beta 0.2, lr 1e-3, 3 epochs, batch 8) on the selected file (`python -m selfplay.train`). "
        f"Evaluation: the 48 held-out prompts x {HELDOUT_SAMPLES} samples, the same sampling seeds for pi_0 "
        "and every trained policy, judged by the same rule; win rate counts a tie as 1/2.",
        "",
        f"## Part 1: arms on a shared pool ({len(seeds)} seeds)",
        "",
        "| arm | held-out reward gain over pi_0 (mean +- sd) | win rate vs pi_0 (mean +- sd) | kept explicit margin | kept abs implicit margin |",
        "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        g, w = mean_sd(r1[arm]["gain"]), mean_sd(r1[arm]["win"])
        lines.append(
            f"| {arm} | {g[0]:+.4f} +- {g[1]:.4f} | {w[0]:.3f} +- {w[1]:.3f} | "
            f"{mean_sd(r1[arm]['d_ex'])[0]:.3f} | {mean_sd(r1[arm]['d_im'])[0]:.3f} |"
        )
    lines += [
        "",
        "Paired by seed (the same pool and evaluation seeds): AP minus the baseline, held-out reward gain. "
        "Sign test: seeds where AP is ahead / seeds with a difference, two-sided binomial p. Bootstrap: 95% CI "
        "of the mean difference (10,000 resamples of seeds).",
        "",
        "| comparison | mean difference | AP ahead | sign test p | bootstrap 95% CI | win-rate difference |",
        "|---|---|---|---|---|---|",
    ]
    for ap in AP:
        for base in ARMS:
            if base in AP:
                continue
            diffs = [a - b for a, b in zip(r1[ap]["gain"], r1[base]["gain"])]
            wins = [a - b for a, b in zip(r1[ap]["win"], r1[base]["win"])]
            k, n, p = sign_test(diffs)
            lo, hi = bootstrap_ci(diffs)
            lines.append(
                f"| {ap} vs {base} | {mean_sd(diffs)[0]:+.4f} | {k}/{n} | {p:.3f} | [{lo:+.4f}, {hi:+.4f}] | "
                f"{mean_sd(wins)[0]:+.3f} |"
            )
    lines += [
        "",
        "![arms](selection_miniature_arms.png)",
        "",
        f"## Part 2: data size, AP (w = 1) vs random ({len(curve_seeds)} seeds, one ~220-pair pool per seed "
        f"from {CURVE_POOL_PROMPTS} prompts)",
        "",
        "| kept pairs | AP gain | random gain | AP - random (sign test) |",
        "|---|---|---|---|",
    ]
    for n in SIZES:
        a, b = mean_sd(r2["ap_w1"][n]), mean_sd(r2["random"][n])
        k, m, p = sign_test([x - y for x, y in zip(r2["ap_w1"][n], r2["random"][n])])
        lines.append(
            f"| {n} | {a[0]:+.4f} +- {a[1]:.4f} | {b[0]:+.4f} +- {b[1]:.4f} | {a[0] - b[0]:+.4f} ({k}/{m}, p = {p:.3f}) |"
        )
    lines += [
        "",
        f"## Part 3: iterations, AP (w = 1) vs random ({len(curve_seeds)} seeds; {ITER_PROMPTS} new prompts per "
        f"iteration, {int(RATIO * 100)}% kept, the default loop)",
        "",
        "| iteration | AP held-out reward | random held-out reward | AP win rate vs pi_0 | random win rate vs pi_0 |",
        "|---|---|---|---|---|",
    ]
    for t in range(ITERATIONS + 1):
        a, b = mean_sd(r3["ap_w1"]["reward"][t]), mean_sd(r3["random"]["reward"][t])
        wa = f"{mean_sd(r3['ap_w1']['win'][t - 1])[0]:.3f}" if t else "-"
        wb = f"{mean_sd(r3['random']['win'][t - 1])[0]:.3f}" if t else "-"
        lines.append(f"| {t} | {a[0]:.4f} +- {a[1]:.4f} | {b[0]:.4f} +- {b[1]:.4f} | {wa} | {wb} |")
    lines += ["", "![scaling](selection_miniature_scaling.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--curve-seeds", type=int, default=5)
    ap.add_argument("--work", default="runs/miniature")
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    import logging

    from selfplay.config import register_configs

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_configs()
    work, out = Path(args.work).resolve(), Path(args.out)
    seeds, curve_seeds = list(range(1, args.seeds + 1)), list(range(1, args.curve_seeds + 1))
    r1 = part1(work, seeds)
    r2 = part2(work, curve_seeds)
    r3 = part3(work, curve_seeds)
    out.mkdir(parents=True, exist_ok=True)
    figures(out, r1, r2, r3)
    text = report(out, args, seeds, curve_seeds, r1, r2, r3, time.time() - START)
    page = out / "selection_miniature.md"
    reading = ""
    if page.is_file() and READING in page.read_text():  # the hand-written reading of the figures stays
        reading = page.read_text()[page.read_text().index(READING) :]
    page.write_text(text + "\n" + (f"\n{reading}" if reading else ""))
    (out / "selection_miniature.json").write_text(
        json.dumps(
            {
                "part1": r1,
                "part2": {a: {str(n): v for n, v in r.items()} for a, r in r2.items()},
                "part3": r3,
            },
            indent=1,
        )
    )
    say(f"wrote {out / 'selection_miniature.md'}")


if __name__ == "__main__":
    main()
