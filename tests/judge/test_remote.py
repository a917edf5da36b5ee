"""judge.kind=remote against a real HTTP reward server on loopback (tests/judge/reward_server.py):
the OpenRLHF request shape, rewards in order with concurrent requests, retries on 5xx and timeouts,
one line for every other failure, the auth header from an environment variable, NaN passed through,
and whole runs (a failed shard kept apart and redone alone)."""

import json
import math

import pytest

from selfplay.config import JudgeKind
from selfplay.errors import SelfplayError
from selfplay.judge import remote
from selfplay.judge.judging import load_judge
from selfplay.judge.rules import topical_variety
from tests.judge.reward_server import RewardServer
from tests.judge.settings import judge_config

ITEMS = [
    (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Tell me about topic{i} bees."},
        ],
        f"bees topic{i} " + " ".join(f"w{j}" for j in range(i % 7)),
        {"prompt_id": f"p{i // 4}", "sample_index": i % 4, "num_tokens": 3, "finish_reason": "stop"},
    )
    for i in range(23)
]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_START", 0.05)


def judge(url, **fields):
    return load_judge(judge_config(kind=JudgeKind.remote, url=url, **{"batch_size": 5, **fields}))


def score(url, **fields):
    return judge(url, **fields).scorer.score(ITEMS)


def test_rewards_come_back_in_order_from_concurrent_batches_in_openrlhfs_shape():
    with RewardServer(latency=0.05) as server:
        rewards, truncated = score(server.url, concurrency=4)
    assert rewards == [topical_variety(m[-1]["content"], r) for m, r, _ in ITEMS]
    assert truncated == [False] * 23 and server.requests == 5  # ceil(23 / 5)
    body = next(b for b in server.bodies if b["prompts"][0] == "Tell me about topic0 bees.")  # any order
    assert set(body) == {"query", "prompts", "responses", "messages", "metadata"}
    assert (
        body["prompts"][0] == "Tell me about topic0 bees."
        and body["query"][0] == body["prompts"][0] + ITEMS[0][1]
    )
    assert body["messages"][0][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][0][-1] == {"role": "assistant", "content": ITEMS[0][1]}
    assert body["metadata"][1] == {
        "prompt_id": "p0",
        "sample_index": 1,
        "num_tokens": 3,
        "finish_reason": "stop",
    }


def test_5xx_answers_are_retried_with_backoff():
    with RewardServer(mode="fail_then_ok", failures=2) as server:
        scorer = judge(server.url, concurrency=1).scorer
        rewards, _ = scorer.score(ITEMS)
    assert len(rewards) == 23 and scorer.retried == 2 and server.requests == 5 + 2


@pytest.mark.parametrize(
    "mode,fields,needle",
    [
        (
            "stall",
            {"timeout": 0.3, "retries": 1},
            "no answer within 0.3s, 2 tries (judge.remote.retries=1, judge.remote.timeout=0.3s)",
        ),
        ("fail_then_ok", {"retries": 0}, "HTTP 503 Service Unavailable"),
        ("malformed", {}, "the answer is not JSON ('<html>oops</html>')"),
        ("wrong_size", {}, "6 rewards for 5 responses"),
        ("no_rewards", {}, "the answer holds no list of rewards (['scores'])"),
        (
            "needs_auth",
            {},
            'HTTP 401 Unauthorized: {"error": "unauthorized"} (is judge.remote.auth_env set to the right variable?)',
        ),
    ],
)
def test_every_failure_is_one_line_naming_the_url_and_the_key(mode, fields, needle):
    with RewardServer(mode=mode, stall=2.0, failures=100) as server, pytest.raises(SelfplayError) as err:
        score(server.url, concurrency=2, **fields)
    message = str(err.value)
    assert (
        message.startswith(f"judge.remote.url={server.url}: ") and needle in message and "\n" not in message
    ), message


def test_an_unreachable_server_is_retried_then_one_line():
    with RewardServer() as server:
        url = server.url
    with pytest.raises(SelfplayError, match=r"judge.remote.url=.*: cannot reach the server \(.*\), 2 tries"):
        score(url, retries=1)


def test_the_token_comes_from_the_named_environment_variable(monkeypatch):
    with RewardServer(mode="needs_auth", token="t0k") as server:
        with pytest.raises(
            SelfplayError, match="judge.remote.auth_env=RM_TOKEN: the environment variable is not set"
        ):
            score(server.url, auth_env="RM_TOKEN")
        monkeypatch.setenv("RM_TOKEN", "t0k")
        rewards, _ = score(server.url, auth_env="RM_TOKEN")
    assert len(rewards) == 23


def test_nan_rewards_pass_through_to_selection():
    with RewardServer(mode="nan") as server:
        rewards, _ = score(server.url)
    assert math.isnan(rewards[0]) and math.isnan(rewards[5]) and not math.isnan(rewards[1])


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"url": None}, "judge.remote.url: required with judge.kind=remote"),
        ({"url": "rm-host:5000"}, "judge.remote.url=rm-host:5000: expected an http:// or https:// URL"),
        ({"url": "http://h/x", "concurrency": 0}, "judge.remote.concurrency=0 must be >= 1"),
        ({"url": "http://h/x", "timeout": 0}, "judge.remote.timeout=0 must be > 0"),
    ],
)
def test_bad_settings_are_refused_at_start(fields, needle):
    from selfplay.checks import check_judge

    with pytest.raises(SelfplayError, match="^" + needle.replace(".", r"\.").replace("(", r"\(")):
        check_judge(judge_config(kind=JudgeKind.remote, **fields), "judge")


def test_a_run_judged_by_a_server_and_evaluated_by_a_rule(tmp_path):
    from selfplay import api
    from selfplay.data.jsonl import read_jsonl

    with RewardServer() as server:
        result = api.run(
            [
                "debug=tiny",
                "generate.backend=hf",
                "loop.iterations=1",
                "loop.progress=false",
                "judge.kind=remote",
                f"judge.remote.url={server.url}",
                "evaluate.judge.kind=rule",
                "evaluate.judge.rule=length_penalized_distinct",
                f"loop.output_dir={tmp_path}",
            ]
        )
    it = result.run_dir / "iter_000"
    judgments = list(read_jsonl(it / "judge" / "judgments.jsonl"))
    assert {j["judge"] for j in judgments} == {f"remote:{server.url}"}
    import pandas as pd

    completions = pd.read_parquet(it / "generate" / "completions.parquet", columns=["prompt_id", "text"])
    prompts = {
        p["prompt_id"]: p["messages"][-1]["content"] for p in read_jsonl(it / "prompts" / "prompts.jsonl")
    }
    expected = [topical_variety(prompts[p], t) for p, t in zip(completions.prompt_id, completions.text)]
    assert [j["reward"] for j in judgments] == pytest.approx(expected, abs=1e-12)
    evaluate = json.loads((it / "evaluate" / "_SUCCESS").read_text())["stats"]
    assert evaluate["heldout_judge"] == "rule:length_penalized_distinct"


def test_a_failed_shard_is_one_line_and_the_rerun_redoes_only_it(tmp_path):
    from selfplay import api

    args = [
        "debug=tiny",
        "generate.backend=hf",
        "loop.iterations=1",
        "loop.progress=false",
        "loop.shards=2",
        "evaluate.enabled=false",  # only the judge stage asks the server
        "judge.kind=remote",
        "judge.batch_size=100",
        "judge.remote.retries=0",
        f"loop.output_dir={tmp_path}",
    ]
    with RewardServer(mode="fail_then_ok", failures=0) as server:
        server.mode = "ok"
        original = server.answer

        def second_request_fails(n, body, auth):
            return (503, {"error": "down"}) if n == 2 else original(n, body, auth)

        server.answer = second_request_fails
        with pytest.raises(
            SelfplayError, match=rf"judge.remote.url={server.url}: HTTP 503 Service Unavailable"
        ):
            api.run([*args, f"judge.remote.url={server.url}"])
        partial = tmp_path / "default" / "iter_000" / ".judge.partial"
        assert (partial / "part-00000-of-00002.jsonl").is_file()  # the finished shard is kept
        server.answer = original
        before = server.requests
        api.run([*args, f"judge.remote.url={server.url}"])
        assert server.requests - before == 1  # only the failed shard was judged again
