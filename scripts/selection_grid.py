"""The pre-registered 2 x 2 selection experiment: does alignment potential pick better pairs than the
explicit reward margin where the paper's argument needs it to, i.e. when the selecting judge is flawed
and the policy already ranks many pairs right? (results/selection_grid.md states the endpoint, written
and committed before the first run.)

Cells: selection judge {gold = the `topical_variety` rule, proxy = `length_penalized_distinct` (it
misses the topic)} x starting policy {pi_0 = the built-in tiny policy, pi_A = pi_0 after two DPO
iterations with the gold judge on prompts disjoint from the pool}. Evaluation is always by the gold
rule on the 48 bundled held-out prompts, 8 samples each, the seed's sampling seeds for every arm.

Per seed s (every seed of the run follows s: prompt shuffle, sampling, selection, training):
  - prompts: the bundled pool shuffled by s; the first 128 train pi_A (2 iterations x 64), the next 192
    make the candidate pools (the grid's pool is its first 96);
  - pools: each starting policy samples 4 responses per pool prompt once (same seeds); each judge
    judges them and pairs them best-vs-worst (`python -m selfplay.run loop.stop_after=selection`);
  - arms: random, explicit, implicit_small, ap_w1, ap_w2.5, ap_signed_w1 keep 40% of the cell's pool
    (offline selection) and train the cell's starting policy with the tiny preset's DPO settings;
  - gain = held-out gold reward of the trained policy minus its starting policy's, paired by seed.

Parts, in the order they run (each unit is a file under --work; a rerun skips finished units):
  grid       6 arms x 4 cells x --seeds seeds (the pre-registered part)
  simpo      the 6 arms in (pi_A, proxy) trained with SimPO (secondary)
  size       (pi_A, proxy), random / explicit / ap_w1, --curve-seeds seeds: a fixed 192-prompt pool
             keeping 16/32/64/128 pairs, and pools of 48/96/192 prompts keeping 40%
  iterations the self-play loop for 4 iterations from pi_0 with the gold judge on the bundled pool
             (64 new prompts per iteration, 40% kept), random / explicit / ap_w1

    python scripts/selection_grid.py [--seeds 10] [--curve-seeds 5] [--parts grid,simpo,size,iterations]
                                     [--work runs/grid] [--out results]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))  # vLLM would drop torch to 1 thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from selection_miniature import (  # noqa: E402
    bootstrap_ci,
    cached,
    compose,
    mean_sd,
    pool_columns,
    sign_test,
    win_rate,
)

ARMS: dict[str, dict[str, Any]] = {
    "random": {"metric": "random"},
    "explicit": {"metric": "explicit"},
    "implicit_small": {"metric": "implicit_small"},
    "ap_w1": {"metric": "alignment_potential", "weight": 1.0},
    "ap_w2.5": {"metric": "alignment_potential", "weight": 2.5},
    "ap_signed_w1": {"metric": "alignment_potential", "weight": 1.0, "implicit_abs": False},
}
JUDGES = {"gold": "topical_variety", "proxy": "length_penalized_distinct"}
POLICIES = ("pi0", "piA")
CELLS = [(p, j) for p in POLICIES for j in JUDGES]
PRIMARY_CELL = ("piA", "proxy")
TRAIN_PROMPTS, PI_A_ITERATIONS, POOL_PROMPTS, BIG_POOL = 64, 2, 96, 192
RATIO, HELDOUT_SAMPLES = 0.4, 8
SIZES, POOL_SIZES, CURVE_ARMS = (16, 32, 64, 128), (48, 96, 192), ("random", "explicit", "ap_w1")
ITERATIONS, ITER_PROMPTS = 4, 64
PAGE = "selection_grid.md"
RESULTS = "## Results"
"""The page's text above this heading (the pre-registration) is kept as written; the script writes
everything from it on."""
READING = "## Reading the results"
"""The hand-written reading after the tables (kept when the script rewrites the page; check it still
matches the numbers above it)."""
START = time.time()
# The tiny preset's settings on a policy that is the tiny policy after training (its check refuses
# another model.path with preset=tiny, which protects real models from the toy settings).
TRAINED_TINY = ["preset_name=tiny-trained", "allow_toy=true"]


def say(msg: str) -> None:
    print(f"[{time.time() - START:7.0f}s] {msg}", flush=True)


def tiny_policy() -> str:
    from selfplay.config import TinyModelConfig
    from selfplay.models.tiny import tiny_model_path

    return str(tiny_model_path(TinyModelConfig()))


# Prompts, policies, pools.


def prompt_files(work: Path, seed: int) -> dict[str, Path]:
    """The seed's disjoint prompt files: pi_A's training prompts, pools of 48/96/192, the held-out set."""
    from selfplay.config import PromptsConfig
    from selfplay.data.prompts import load_prompt_pool

    folder = work / "prompts" / f"s{seed}"
    files = {"train": folder / "train.jsonl", "heldout": folder / "heldout.jsonl"}
    files.update({f"pool{n}": folder / f"pool{n}.jsonl" for n in POOL_SIZES})
    if all(f.is_file() for f in files.values()):
        return files
    pools = load_prompt_pool(PromptsConfig())
    texts = [p.messages[-1]["content"] for p in pools.pool]
    random.Random(seed).shuffle(texts)
    train, rest = texts[: TRAIN_PROMPTS * PI_A_ITERATIONS], texts[TRAIN_PROMPTS * PI_A_ITERATIONS :]
    assert len(rest) >= BIG_POOL, f"the bundled pool has {len(texts)} prompts"
    folder.mkdir(parents=True, exist_ok=True)

    def write(path: Path, rows: list[str]) -> None:
        path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in rows))

    write(files["train"], train)
    write(files["heldout"], [p.messages[-1]["content"] for p in pools.heldout])
    for n in POOL_SIZES:
        write(files[f"pool{n}"], rest[:n])
    return files


def prompt_overrides(files: dict[str, Path], name: str, per_iteration: int, seed: int) -> list[str]:
    return [
        "prompts.source=file",
        f"prompts.path={files[name]}",
        f"prompts.heldout_path={files['heldout']}",
        f"prompts.per_iteration={per_iteration}",
        f"prompts.shuffle_seed={seed}",
    ]


def pi_a(work: Path, seed: int) -> str:
    """pi_0 after two DPO iterations with the gold judge on the seed's training prompts (every pair
    kept: no selection metric shapes pi_A)."""
    from selfplay.loop.orchestrator import run_loop

    run = work / "piA" / f"s{seed}"
    model = run / f"iter_{PI_A_ITERATIONS - 1:03d}" / "train" / "model"
    if not (model.parent / "_SUCCESS").is_file():
        say(f"pi_A seed {seed}: {PI_A_ITERATIONS} DPO iterations with the gold judge")
        files = prompt_files(work, seed)
        cfg = compose(
            "config",
            [
                f"loop.output_dir={work / 'piA'}",
                f"loop.run_name=s{seed}",
                f"loop.iterations={PI_A_ITERATIONS}",
                "loop.progress=false",
                *prompt_overrides(files, "train", TRAIN_PROMPTS, seed),
                f"generate.seed={seed}",
                f"judge.rule={JUDGES['gold']}",
                "selection.ratio=1.0",
                f"train.seed={seed}",
                "evaluate.enabled=false",
            ],
        )
        run_loop(cfg)
    return str(model)


def start_policy(work: Path, seed: int, policy: str) -> str:
    return tiny_policy() if policy == "pi0" else pi_a(work, seed)


def pool(work: Path, seed: int, policy: str, judge: str, prompts: int = POOL_PROMPTS) -> Path:
    """The cell's candidate pool: the starting policy's samples on the pool prompts (the same samples
    for both judges), judged and paired; nothing trained."""
    from selfplay.loop.orchestrator import run_loop

    name = f"{policy}-{judge}-p{prompts}-s{seed}"
    pairs = work / "pools" / name / "iter_000" / "selection" / "pairs.jsonl"
    if not (pairs.parent / "_SUCCESS").is_file():
        say(f"pool {name}: sampling {prompts} prompts x 4, judging, pairing")
        files = prompt_files(work, seed)
        model = [f"model.path={pi_a(work, seed)}", *TRAINED_TINY] if policy == "piA" else []
        cfg = compose(
            "config",
            [
                f"loop.output_dir={work / 'pools'}",
                f"loop.run_name={name}",
                "loop.iterations=1",
                "loop.stop_after=selection",
                "loop.progress=false",
                *model,
                *prompt_overrides(files, f"pool{prompts}", prompts, seed),
                f"generate.seed={seed}",
                f"judge.rule={JUDGES[judge]}",
                "selection.ratio=1.0",
            ],
        )
        run_loop(cfg)
    return pairs


def judgments(pairs: Path) -> dict[tuple[str, int], float]:
    path = pairs.parents[1] / "judge" / "judgments.jsonl"
    return {(r["prompt_id"], r["sample_index"]): r["reward"] for r in map(json.loads, path.open())}


def selected_file(folder: Path) -> str:
    """The kept pairs' file of an offline selection (selected.parquet; selected.jsonl before the
    column-wise writer)."""
    return (
        json.loads((folder / "summary.json").read_text()).get("files", {}).get("selected", "selected.jsonl")
    )


def read_rows(path: Path, columns: list[str]) -> dict[str, list]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns).to_pydict()
    rows = [json.loads(line) for line in path.open()]
    return {c: [r[c] for r in rows] for c in columns}


def read_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


# Selection, training, evaluation.


def select_and_train(
    work: Path, seed: int, pairs: Path, policy: str, arm: str, count: int | None, loss: str = "dpo"
) -> tuple[Path, Path]:
    """Offline selection of the pool by `arm`, then training of the starting policy on the kept pairs;
    (selection folder, model folder)."""
    from selfplay.config import OfflineSelectConfig, SelectionConfig
    from selfplay.loop.orchestrator import run_loop
    from selfplay.selection.offline import select_offline
    from selfplay.stages.table import FILE_STAGES

    spec = ARMS[arm]
    size = f"r{round(RATIO * 100)}" if count is None else f"n{count}"
    tag = f"{pairs.parents[2].name}-{arm}-{size}"
    out = work / "selected" / tag
    if not (out / "summary.json").is_file():
        columns = pool_columns()
        selection = SelectionConfig(
            metric=spec["metric"],
            weight=spec.get("weight", 1.0),
            implicit_abs=spec.get("implicit_abs", True),
            ratio=RATIO if count is None else None,
            count=count,
            seed=seed,
        )
        select_offline(
            OfflineSelectConfig(input=str(pairs), output=str(out), columns=columns, selection=selection)
        )
    run_name = tag + ("" if loss == "dpo" else f"-{loss}")
    model = work / "trained" / run_name / "iter_000" / "train" / "model"
    if not (model.parent / "_SUCCESS").is_file():
        start = [f"model.path={pi_a(work, seed)}", *TRAINED_TINY] if policy == "piA" else []
        simpo = ["train.loss=simpo", "train.beta=null"] if loss == "simpo" else []
        cfg = compose(
            "train_file",
            [
                f"input={out / selected_file(out)}",
                "pairs.prompt=messages",
                f"loop.output_dir={work / 'trained'}",
                f"loop.run_name={run_name}",
                "loop.progress=false",
                f"train.seed={seed}",
                *start,
                *simpo,
            ],
        )
        run_loop(cfg, table=FILE_STAGES)
    return out, model


def evaluate(work: Path, seed: int, policy: str, tag: str) -> dict:
    """Held-out samples of a policy (8 per prompt, the seed's sampling seeds), judged by the gold rule."""
    from selfplay.config import GenerateConfig, JudgeConfig, ModelConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.evaluate.heldout import evaluate_policies
    from selfplay.judge.judging import load_judge

    def run() -> dict:
        heldout = load_prompt_pool(PromptsConfig()).heldout
        gen = GenerateConfig(seed=seed, num_samples=4, max_tokens=48, max_model_len=512)
        judge = load_judge(JudgeConfig(rule=JUDGES["gold"]))
        stats, rows = evaluate_policies(
            {"policy": policy}, heldout, gen, ModelConfig(), HELDOUT_SAMPLES, 0, judge, tag
        )
        return {
            "reward": stats["heldout_reward_policy"],
            "rewards": {f"{r['prompt_id']}/{r['sample_index']}": r["reward"] for r in rows},
        }

    return cached(work / "eval" / f"{tag}.json", run)


def baseline(work: Path, seed: int, policy: str) -> dict:
    return evaluate(work, seed, start_policy(work, seed, policy), f"{policy}-s{seed}")


def unit(work: Path, seed: int, policy: str, judge: str, arm: str, count: int | None = None,
         prompts: int = POOL_PROMPTS, loss: str = "dpo") -> dict:  # fmt: skip
    """One arm on one pool: gain and win rate over the starting policy, and what the kept pairs hold."""
    pairs = pool(work, seed, policy, judge, prompts)
    selected, model = select_and_train(work, seed, pairs, policy, arm, count, loss)
    tag = f"{selected.name}" + ("" if loss == "dpo" else f"-{loss}")
    ev, base = evaluate(work, seed, str(model), tag), baseline(work, seed, policy)
    kept = set(read_rows(selected / selected_file(selected), ["pair_id"])["pair_id"])
    rows = [r for r in read_pairs(pairs) if r["pair_id"] in kept]
    gold = gold_margins(work, seed, policy, judge, prompts, rows)
    return {
        "gain": ev["reward"] - base["reward"],
        "win": win_rate(ev, base),
        "kept": len(rows),
        "kept_gold_margin": sum(gold) / len(gold),
        "kept_explicit_margin": sum(r["explicit_margin"] for r in rows) / len(rows),
        "kept_abs_implicit": sum(abs(r["implicit_margin"]) for r in rows) / len(rows),
        "kept_signed_implicit": sum(r["implicit_margin"] for r in rows) / len(rows),
    }


def gold_margins(
    work: Path, seed: int, policy: str, judge: str, prompts: int, rows: list[dict]
) -> list[float]:
    """Each pair's margin under the gold rule (for a proxy pool: the gold judgments of the same samples)."""
    if judge == "gold":
        return [r["explicit_margin"] for r in rows]
    gold = judgments(pool(work, seed, policy, "gold", prompts))
    return [
        gold[(r["prompt_id"], r["chosen_index"])] - gold[(r["prompt_id"], r["rejected_index"])] for r in rows
    ]


def pool_record(work: Path, seed: int, policy: str, judge: str) -> dict:
    """Pool size and k, the signed implicit margins, the proxy-gold agreement of the pool's pairs."""
    import numpy as np

    pairs = pool(work, seed, policy, judge)
    rows = read_pairs(pairs)
    d_im = np.array([r["implicit_margin"] for r in rows])
    own = np.array([r["explicit_margin"] for r in rows])
    other = "proxy" if judge == "gold" else "gold"
    theirs = judgments(pool(work, seed, policy, other))
    cross = np.array([theirs[(r["prompt_id"], r["chosen_index"])] - theirs[(r["prompt_id"], r["rejected_index"])]
                      for r in rows])  # fmt: skip
    gold, proxy = (own, cross) if judge == "gold" else (cross, own)
    return {
        "pool": len(rows),
        "k": int(math.floor(RATIO * len(rows) + 0.5)),
        "implicit_margin_quantiles": [float(q) for q in np.quantile(d_im, [0.1, 0.25, 0.5, 0.75, 0.9])],
        "implicit_margin_mean": float(d_im.mean()),
        "implicit_margin_below_0": float((d_im < 0).mean()),
        "gold_margin_below_0": float((gold < 0).mean()),
        "corr_proxy_gold": float(np.corrcoef(proxy, gold)[0, 1])
        if proxy.std() and gold.std()
        else float("nan"),
    }


# Parts.


def part_grid(work: Path, seeds: list[int]) -> dict:
    results: dict = {f"{p}/{j}": {"arms": {a: [] for a in ARMS}, "pools": []} for p, j in CELLS}
    for s in seeds:
        for p, j in CELLS:
            cell = results[f"{p}/{j}"]
            cell["pools"].append(pool_record(work, s, p, j))
            for arm in ARMS:
                cell["arms"][arm].append(unit(work, s, p, j, arm))
                say(f"grid seed {s} {p}/{j} {arm}: gain {cell['arms'][arm][-1]['gain']:+.4f}")
    return results


def part_simpo(work: Path, seeds: list[int]) -> dict:
    p, j = PRIMARY_CELL
    results: dict = {a: [] for a in ARMS}
    for s in seeds:
        for arm in ARMS:
            results[arm].append(unit(work, s, p, j, arm, loss="simpo"))
            say(f"simpo seed {s} {arm}: gain {results[arm][-1]['gain']:+.4f}")
    return results


def part_size(work: Path, seeds: list[int]) -> dict:
    p, j = PRIMARY_CELL
    fixed_pool: dict = {a: {n: [] for n in SIZES} for a in CURVE_ARMS}
    fixed_ratio: dict = {a: {n: [] for n in POOL_SIZES} for a in CURVE_ARMS}
    for s in seeds:
        for arm in CURVE_ARMS:
            for n in SIZES:
                fixed_pool[arm][n].append(unit(work, s, p, j, arm, count=n, prompts=BIG_POOL))
                say(
                    f"size seed {s} {arm} {n} of the 192-prompt pool: gain {fixed_pool[arm][n][-1]['gain']:+.4f}"
                )
            for n in POOL_SIZES:
                fixed_ratio[arm][n].append(unit(work, s, p, j, arm, prompts=n))
                say(f"size seed {s} {arm} 40% of {n} prompts: gain {fixed_ratio[arm][n][-1]['gain']:+.4f}")
    return {"fixed_pool": fixed_pool, "fixed_ratio": fixed_ratio}


def part_iterations(work: Path, seeds: list[int]) -> dict:
    from selfplay.loop.orchestrator import run_loop

    results: dict = {a: {"reward": [[] for _ in range(ITERATIONS + 1)]} for a in CURVE_ARMS}
    for s in seeds:
        for arm in CURVE_ARMS:
            name = f"iter-{arm}-s{s}"
            run = work / "iterations" / name
            if not (run / f"iter_{ITERATIONS - 1:03d}" / "evaluate" / "_SUCCESS").is_file():
                say(f"iterations seed {s} {arm}: {ITERATIONS} self-play iterations")
                spec = ARMS[arm]
                run_loop(compose("config", [
                    f"loop.output_dir={work / 'iterations'}", f"loop.run_name={name}",
                    f"loop.iterations={ITERATIONS}", "loop.progress=false",
                    f"prompts.per_iteration={ITER_PROMPTS}", f"prompts.shuffle_seed={s}",
                    f"generate.seed={s}", f"judge.rule={JUDGES['gold']}", f"train.seed={s}",
                    f"selection.metric={spec['metric']}", f"selection.weight={spec.get('weight', 1.0)}",
                    f"selection.ratio={RATIO}", f"selection.seed={s}", f"evaluate.num_samples={HELDOUT_SAMPLES}",
                ]))  # fmt: skip
            for t in range(ITERATIONS):
                rows = [json.loads(x) for x in (run / f"iter_{t:03d}" / "evaluate" / "heldout.jsonl").open()]
                if t == 0:
                    before = [r["reward"] for r in rows if r["policy"] == "before"]
                    results[arm]["reward"][0].append(sum(before) / len(before))
                after = [r["reward"] for r in rows if r["policy"] == "after"]
                results[arm]["reward"][t + 1].append(sum(after) / len(after))
            say(f"iterations seed {s} {arm}: {[round(r[-1], 3) for r in results[arm]['reward']]}")
    return results


# Statistics.


def permutation_p(diffs: list[float]) -> float:
    """Two-sided exact paired permutation test (every sign flip of the seed differences) of mean 0."""
    n = len(diffs)
    observed = abs(sum(diffs))
    hits = sum(
        abs(sum(d if (mask >> i) & 1 else -d for i, d in enumerate(diffs))) >= observed - 1e-12
        for mask in range(2**n)
    )
    return hits / 2**n


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values over the given family."""
    order = sorted(pvalues, key=lambda name: pvalues[name])
    m, running = len(order), 0.0
    adjusted: dict[str, float] = {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[name]))
        adjusted[name] = running
    return adjusted


def compare(a: list[dict], b: list[dict]) -> dict:
    diffs = [x["gain"] - y["gain"] for x, y in zip(a, b)]
    wins, nonzero, sign_p = sign_test(diffs)
    lo, hi = bootstrap_ci(diffs)
    return {"mean": sum(diffs) / len(diffs), "ahead": wins, "nonzero": nonzero, "n": len(diffs),
            "sign_p": sign_p, "perm_p": permutation_p(diffs), "ci": [lo, hi], "diffs": diffs}  # fmt: skip


def analysis(grid: dict) -> dict:
    import numpy as np

    primary = compare(grid["piA/proxy"]["arms"]["ap_w1"], grid["piA/proxy"]["arms"]["explicit"])
    supported = primary["ci"][0] > 0 and primary["ahead"] >= 8
    refuted = primary["ci"][1] < 0
    primary["outcome"] = "supported" if supported else "refuted" if refuted else "inconclusive"
    secondary = {}
    for p, j in CELLS:
        arms = grid[f"{p}/{j}"]["arms"]
        secondary[f"{p}/{j}: ap_signed_w1 - ap_w1"] = compare(arms["ap_signed_w1"], arms["ap_w1"])
        secondary[f"{p}/{j}: ap_w1 - random"] = compare(arms["ap_w1"], arms["random"])
    adjusted = holm({k: v["perm_p"] for k, v in secondary.items()})
    for k in secondary:
        secondary[k]["holm_p"] = adjusted[k]
    # Gain on kept gold margin and kept |d_im|, within (cell, seed): every arm's point demeaned by its
    # cell-and-seed mean (the pool and the evaluation seeds are shared there).
    ys, xs = [], []
    for cell in grid.values():
        n = len(cell["arms"]["random"])
        for s in range(n):
            pts = [cell["arms"][a][s] for a in ARMS]
            g = np.array([q["gain"] for q in pts])
            m = np.array([q["kept_gold_margin"] for q in pts])
            d = np.array([q["kept_abs_implicit"] for q in pts])
            ys.append(g - g.mean())
            xs.append(np.stack([m - m.mean(), d - d.mean()], 1))
    y, x = np.concatenate(ys), np.concatenate(xs)

    def fit(cols: list[int]) -> dict:
        beta, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        resid = y - x[:, cols] @ beta
        return {"coef": [float(b) for b in beta], "r2": float(1 - resid @ resid / (y @ y))}

    return {"primary": primary, "secondary": secondary,
            "regression": {"points": int(len(y)), "gold_margin": fit([0]), "gold_margin_and_abs_implicit": fit([0, 1])}}  # fmt: skip


# Report.


def fmt_gain(points: list[dict], key: str = "gain") -> str:
    m, sd = mean_sd([q[key] for q in points])
    return f"{m:+.4f} +- {sd:.4f}"


def report(args, seeds: list[int], curve_seeds: list[int], results: dict, wall: float) -> str:
    import torch

    lines = [
        RESULTS,
        "",
        f"Command: `python scripts/selection_grid.py --seeds {args.seeds} --curve-seeds {args.curve_seeds} "
        f"--parts {args.parts}` (work folder `{args.work}`). Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"no GPU; torch {torch.__version__}. Date: {time.strftime('%Y-%m-%d')}. Wall time of this invocation: "
        f"{wall / 60:.0f} min (finished units of earlier invocations are reused; the first full run's time is "
        "stated below the tables).",
        "",
    ]
    grid = results.get("grid")
    if grid:
        a = results["analysis"]
        pr = a["primary"]
        lines += [
            "### Primary endpoint",
            "",
            f"AP (w = 1) minus explicit, held-out gold-reward gain, (pi_A, proxy), paired by seed: "
            f"**{pr['mean']:+.4f}**, bootstrap 95% CI [{pr['ci'][0]:+.4f}, {pr['ci'][1]:+.4f}], AP ahead on "
            f"{pr['ahead']} of {pr['n']} seeds (sign test p = {pr['sign_p']:.3f}; exact permutation p = "
            f"{pr['perm_p']:.4f}). Outcome by the pre-registered rule: **{pr['outcome']}**.",
            "",
            "### Every arm, every cell (gain over the cell's starting policy, mean +- sd over seeds)",
            "",
            "| cell | " + " | ".join(ARMS) + " |",
            "|---|" + "---|" * len(ARMS),
        ]
        for p, j in CELLS:
            arms = grid[f"{p}/{j}"]["arms"]
            lines.append(f"| {p}, {j} | " + " | ".join(fmt_gain(arms[x]) for x in ARMS) + " |")
        lines += ["", "Win rate over the starting policy (held-out samples, same seeds; a tie counts 1/2):", "",
                  "| cell | " + " | ".join(ARMS) + " |", "|---|" + "---|" * len(ARMS)]  # fmt: skip
        for p, j in CELLS:
            arms = grid[f"{p}/{j}"]["arms"]
            lines.append(
                f"| {p}, {j} | "
                + " | ".join(f"{mean_sd([q['win'] for q in arms[x]])[0]:.3f}" for x in ARMS)
                + " |"
            )
        lines += ["", "Kept pairs' mean gold margin (what the gold rule says of the kept pairs) / mean |d_im|:", "",
                  "| cell | " + " | ".join(ARMS) + " |", "|---|" + "---|" * len(ARMS)]  # fmt: skip
        for p, j in CELLS:
            arms = grid[f"{p}/{j}"]["arms"]
            lines.append(f"| {p}, {j} | " + " | ".join(
                f"{mean_sd([q['kept_gold_margin'] for q in arms[x]])[0]:.3f} / {mean_sd([q['kept_abs_implicit'] for q in arms[x]])[0]:.2f}"
                for x in ARMS) + " |")  # fmt: skip
        lines += ["", "### The pools (means over seeds)", "",
                  "| cell | pairs | k | d_im median [p10, p90] | d_im < 0 | gold margin < 0 | corr(proxy, gold) margins |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for p, j in CELLS:
            pools = grid[f"{p}/{j}"]["pools"]

            def avg(key: str, pools: list = pools) -> float:
                return sum(q[key] for q in pools) / len(pools)

            q = [sum(x["implicit_margin_quantiles"][i] for x in pools) / len(pools) for i in range(5)]
            lines.append(f"| {p}, {j} | {avg('pool'):.1f} | {avg('k'):.1f} | {q[2]:+.2f} [{q[0]:+.2f}, {q[4]:+.2f}] | "
                         f"{avg('implicit_margin_below_0'):.2f} | {avg('gold_margin_below_0'):.2f} | {avg('corr_proxy_gold'):.2f} |")  # fmt: skip
        lines += ["", "### Secondary tests (Holm over these 8 planned tests; exact paired permutation p)", "",
                  "| test | mean difference | ahead | 95% CI | p | Holm p |", "|---|---|---|---|---|---|"]  # fmt: skip
        for k, v in a["secondary"].items():
            lines.append(f"| {k} | {v['mean']:+.4f} | {v['ahead']}/{v['n']} | [{v['ci'][0]:+.4f}, {v['ci'][1]:+.4f}] | "
                         f"{v['perm_p']:.4f} | {v['holm_p']:.4f} |")  # fmt: skip
        r = a["regression"]
        lines += ["", f"Regression of gain on the kept pairs' gold margin and mean |d_im| within (cell, seed) "
                  f"({r['points']} points): gold margin alone R^2 = {r['gold_margin']['r2']:.2f} (coefficient "
                  f"{r['gold_margin']['coef'][0]:+.4f}); with |d_im| R^2 = {r['gold_margin_and_abs_implicit']['r2']:.2f} "
                  f"(coefficients {r['gold_margin_and_abs_implicit']['coef'][0]:+.4f}, "
                  f"{r['gold_margin_and_abs_implicit']['coef'][1]:+.4f})."]  # fmt: skip
    simpo = results.get("simpo")
    if simpo:
        c = compare(simpo["ap_w1"], simpo["explicit"])
        lines += ["", "### SimPO in (pi_A, proxy) (secondary, uncorrected)", "",
                  "| arm | gain | win rate |", "|---|---|---|",
                  *[f"| {x} | {fmt_gain(simpo[x])} | {mean_sd([q['win'] for q in simpo[x]])[0]:.3f} |" for x in ARMS], "",
                  f"AP (w = 1) minus explicit: {c['mean']:+.4f}, 95% CI [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}], "
                  f"ahead {c['ahead']}/{c['n']}, permutation p = {c['perm_p']:.4f}."]  # fmt: skip
    size = results.get("size")
    if size:
        lines += ["", f"### Data size in (pi_A, proxy) ({len(curve_seeds)} seeds)", "",
                  "A fixed 192-prompt pool, keeping n pairs (selectivity falls as n grows):", "",
                  "| kept pairs | " + " | ".join(CURVE_ARMS) + " | ap_w1 - explicit |", "|---|" + "---|" * (len(CURVE_ARMS) + 1)]  # fmt: skip
        for n in SIZES:
            pts = {x: size["fixed_pool"][x][str(n)] if str(n) in size["fixed_pool"][x] else size["fixed_pool"][x][n]
                   for x in CURVE_ARMS}  # fmt: skip
            c = compare(pts["ap_w1"], pts["explicit"])
            lines.append(f"| {n} | " + " | ".join(fmt_gain(pts[x]) for x in CURVE_ARMS)
                         + f" | {c['mean']:+.4f} ({c['ahead']}/{c['n']}) |")  # fmt: skip
        lines += ["", "A growing pool at a fixed ratio (40% kept):", "",
                  "| pool prompts | pairs kept (mean) | " + " | ".join(CURVE_ARMS) + " | ap_w1 - explicit |",
                  "|---|---|" + "---|" * (len(CURVE_ARMS) + 1)]  # fmt: skip
        for n in POOL_SIZES:
            pts = {x: size["fixed_ratio"][x][str(n)] if str(n) in size["fixed_ratio"][x] else size["fixed_ratio"][x][n]
                   for x in CURVE_ARMS}  # fmt: skip
            c = compare(pts["ap_w1"], pts["explicit"])
            lines.append(f"| {n} | {mean_sd([q['kept'] for q in pts['random']])[0]:.1f} | "
                         + " | ".join(fmt_gain(pts[x]) for x in CURVE_ARMS) + f" | {c['mean']:+.4f} ({c['ahead']}/{c['n']}) |")  # fmt: skip
    it = results.get("iterations")
    if it:
        lines += ["", f"### Iterations from pi_0 with the gold judge ({len(curve_seeds)} seeds; 64 new prompts and 40% kept "
                  "per iteration)", "", "| iteration | " + " | ".join(CURVE_ARMS) + " |", "|---|" + "---|" * len(CURVE_ARMS)]  # fmt: skip
        for t in range(ITERATIONS + 1):
            lines.append(f"| {t} | " + " | ".join(
                "{:.4f} +- {:.4f}".format(*mean_sd(it[x]["reward"][t])) for x in CURVE_ARMS) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--curve-seeds", type=int, default=5)
    ap.add_argument("--parts", default="grid,simpo,size,iterations")
    ap.add_argument("--seed-offset", type=int, default=0, help="seeds are offset+1 .. offset+n")
    ap.add_argument("--work", default="runs/grid")
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    import logging

    from selfplay.config import register_configs

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_configs()
    work, out = Path(args.work).resolve(), Path(args.out)
    o = args.seed_offset
    seeds, curve_seeds = list(range(o + 1, o + args.seeds + 1)), list(range(o + 1, o + args.curve_seeds + 1))
    parts = args.parts.split(",")
    out.mkdir(parents=True, exist_ok=True)
    data = out / "selection_grid.json"
    results: dict = json.loads(data.read_text()) if data.is_file() else {}
    runners = {"grid": (part_grid, seeds), "simpo": (part_simpo, seeds), "size": (part_size, curve_seeds),
               "iterations": (part_iterations, curve_seeds)}  # fmt: skip
    for part in parts:
        run, which = runners[part]
        results[part] = run(work, which)
        if part == "grid":
            results["analysis"] = analysis(results["grid"])
        results["seconds"] = {**results.get("seconds", {}), part: time.time() - START}
        data.write_text(json.dumps(results, indent=1, default=str))
        page = out / PAGE
        text = page.read_text() if page.is_file() else ""
        head = text.split(RESULTS)[0]
        reading = text[text.index(READING) :] if READING in text else ""  # written by hand: kept
        page.write_text(
            head + report(args, seeds, curve_seeds, results, time.time() - START) + "\n" + reading
        )
        say(f"part {part} done; wrote {page}")


if __name__ == "__main__":
    main()
