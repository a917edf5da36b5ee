"""The remote judge's throughput against the reward server's own capacity, side by side in one run.

A reward server on loopback (tests/judge/reward_server.py) stands in for a GPU reward model: each
request holds one of `--replicas` model slots for `--latency` seconds (a forward pass over the batch)
plus the real reward function. Its capacity is measured by driving it with many more concurrent
requests than it has slots; then `judge.kind=remote` scores the same responses at its default
concurrency (and at 1 and 8 for comparison). Goal: the default reaches >= 80% of the capacity.

    python bench/judge.py [--responses 2048] [--batch 32] [--latency 0.05] [--replicas 4] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, today  # noqa: E402
from selfplay.config import JudgeConfig, JudgeKind  # noqa: E402
from selfplay.judge.judging import load_judge  # noqa: E402
from selfplay.judge.remote import request_body  # noqa: E402
from tests.judge.reward_server import RewardServer  # noqa: E402


def items(n: int):
    return [
        (
            [{"role": "user", "content": f"Tell me about topic {i % 97} and bees."}],
            " ".join(f"word{(i * 7 + j) % 50}" for j in range(40)),
            {"prompt_id": f"p{i // 4}", "sample_index": i % 4, "num_tokens": 40, "finish_reason": "stop"},
        )
        for i in range(n)
    ]


def capacity(server: RewardServer, data, batch: int, clients: int) -> float:
    """Responses per second the server answers when `clients` requests are always waiting."""
    bodies = [json.dumps(request_body(data[i : i + batch])).encode() for i in range(0, len(data), batch)]

    def post(body: bytes) -> None:
        req = urllib.request.Request(server.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as answer:
            assert len(json.loads(answer.read())["rewards"]) > 0

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, bodies))
    return len(data) / (time.perf_counter() - start)


def judge_rate(server: RewardServer, data, batch: int, concurrency: int) -> float:
    scorer = load_judge(
        JudgeConfig(kind=JudgeKind.remote, url=server.url, batch_size=batch, concurrency=concurrency)
    ).scorer
    start = time.perf_counter()
    rewards, _ = scorer.score(data)
    assert len(rewards) == len(data)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responses", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    data = items(args.responses)
    bound = args.replicas * args.batch / args.latency
    default = JudgeConfig().concurrency
    rows = []
    with RewardServer(latency=args.latency, capacity=args.replicas) as server:
        cap = capacity(server, data, args.batch, clients=4 * args.replicas)
        rows.append(("server capacity (16 clients always waiting)", cap))
        for c in sorted({1, default, 8}):
            name = f"judge.kind=remote, judge.concurrency={c}" + (" (default)" if c == default else "")
            rows.append((name, judge_rate(server, data, args.batch, c)))
    lines = [
        f"# Remote judge throughput vs the server's capacity ({today()}, {machine()})",
        "",
        f"Command: `python bench/judge.py --responses {args.responses} --batch {args.batch} "
        f"--latency {args.latency} --replicas {args.replicas}`",
        "",
        f"A loopback reward server with {args.replicas} model slots, {args.latency * 1000:.0f} ms per request of "
        f"{args.batch} responses plus the topical_variety rule; {args.responses} responses.",
        "",
        "| client | responses/s | share of the measured capacity | share of the bound |",
        "|---|---|---|---|",
        f"| bound: slots x batch / latency | {bound:,.0f} | - | 1.00 |",
        *[f"| {name} | {rate:,.0f} | {rate / cap:.2f} | {rate / bound:.2f} |" for name, rate in rows],
        "",
        "The measured capacity is below the bound where the 16 driving threads, the server's threads and the",
        "reward function share this machine's cores; the bound ignores the reward function's own time.",
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
