"""judge.kind=remote against a real HTTP reward server on loopback (tests/judge/reward_server.py):
the OpenRLHF request shape (`query` in the policy's chat template, or the judge's own), rewards in
order with concurrent requests, retries on 5xx, timeouts and refused connections (each logged and
counted), one line for every other failure, the auth header from an environment variable, NaN passed
through, and whole runs (a failed shard kept apart and redone alone)."""

import json
import logging
import math

import pytest

from selfplay.config import JudgeKind, ModelConfig
from selfplay.errors import SelfplayError
from selfplay.judge import remote
from selfplay.judge.judging import load_judge
from selfplay.judge.kinds import JudgeRuntime
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


@pytest.fixture
def judge(tiny_policy):
    """The remote judge within a run whose policy is the tiny one (its tokenizer renders `query`)."""

    def load(url, **fields):
        runtime = JudgeRuntime(policy=tiny_policy, model=ModelConfig(path=tiny_policy))
        return load_judge(
            judge_config(kind=JudgeKind.remote, url=url, **{"batch_size": 5, **fields}), runtime=runtime
        )

    return load


@pytest.fixture
def score(judge):
    return lambda url, **fields: judge(url, **fields).scorer.score(ITEMS)


def test_rewards_come_back_in_order_from_concurrent_batches_in_openrlhfs_shape(score, tiny_policy):
    with RewardServer(latency=0.05, mode="templated", template_from=tiny_policy) as server:
        rewards, truncated = score(server.url, concurrency=4)
    assert rewards == [topical_variety(m[-1]["content"], r) for m, r, _ in ITEMS]
    assert truncated == [False] * 23 and server.requests == 5  # ceil(23 / 5)
    body = next(b for b in server.bodies if b["prompts"][0] == "Tell me about topic0 bees.")  # any order
    assert set(body) == {"query", "prompts", "responses", "messages", "metadata"}
    assert body["prompts"][0] == "Tell me about topic0 bees." and body["responses"][0] == ITEMS[0][1]
    from transformers import AutoTokenizer

    rendered = AutoTokenizer.from_pretrained(tiny_policy).apply_chat_template(
        body["messages"][0], tokenize=False
    )
    assert (
        body["query"][0] == rendered and f"<|assistant|> {ITEMS[0][1]}" in rendered
    )  # the policy's template
    assert body["messages"][0][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][0][-1] == {"role": "assistant", "content": ITEMS[0][1]}
    assert body["metadata"][1] == {
        "prompt_id": "p0",
        "sample_index": 1,
        "num_tokens": 3,
        "finish_reason": "stop",
    }


def test_the_judges_own_chat_template_renders_query_and_a_server_that_expects_another_says_so(judge):
    own = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    with RewardServer() as server:
        judge(server.url, chat_template=own).scorer.score(ITEMS[:1])
        assert server.bodies[0]["query"] == [
            f"[system] Be brief.\n[user] Tell me about topic0 bees.\n[assistant] {ITEMS[0][1]}\n"
        ]
        server.mode = "templated"  # expects the policy's template
        server.tokenizer = judge(server.url).scorer.tokenizer
        with pytest.raises(SelfplayError, match=r"HTTP 400 Bad Request: .*query is not the chat-templated"):
            judge(server.url, chat_template=own).scorer.score(ITEMS[:1])


def test_without_a_policy_query_cannot_be_rendered():
    with pytest.raises(SelfplayError, match=r"^judge.kind=remote: no policy here whose tokenizer renders"):
        load_judge(judge_config(kind=JudgeKind.remote, url="http://127.0.0.1:9/x"))


def test_5xx_answers_are_retried_with_backoff_and_each_retry_is_logged(judge, caplog):
    with RewardServer(mode="fail_then_ok", failures=2) as server, caplog.at_level(logging.WARNING):
        scorer = judge(server.url, concurrency=1).scorer
        rewards, _ = scorer.score(ITEMS)
    assert len(rewards) == 23 and scorer.retried == 2 and server.requests == 5 + 2
    retries = [r.getMessage() for r in caplog.records if r.name == "selfplay.judge.remote"]
    assert retries == [
        f"{server.url}: attempt {n} failed (HTTP 503 Service Unavailable: "
        f'{{"error": "warming up"}}); retrying in {delay:g}s (judge.remote.retries=3)'
        for n, delay in ((1, 0.05), (2, 0.1))
    ]


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
def test_every_failure_is_one_line_naming_the_url_and_the_key(score, mode, fields, needle):
    with RewardServer(mode=mode, stall=2.0, failures=100) as server, pytest.raises(SelfplayError) as err:
        score(server.url, concurrency=2, **fields)
    message = str(err.value)
    assert (
        message.startswith(f"judge.remote.url={server.url}: ") and needle in message and "\n" not in message
    ), message


def test_an_unreachable_server_is_retried_by_the_transport_then_one_line(judge, caplog):
    with RewardServer() as server:
        url = server.url
    scorer = judge(url, retries=1).scorer
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(SelfplayError, match=r"judge.remote.url=.*: cannot reach the server \(.*\), 2 tries"),
    ):
        scorer.score(ITEMS[:1])
    assert scorer.retried == 1 and scorer.requests == 1  # one request, its connect retried by httpx
    [retry] = [r.getMessage() for r in caplog.records if r.name == "selfplay.judge.remote"]
    assert (
        retry.startswith(f"{url}: attempt 1 failed (cannot reach the server (") and "retrying in 0s" in retry
    )


def test_the_token_comes_from_the_named_environment_variable(score, monkeypatch):
    with RewardServer(mode="needs_auth", token="t0k") as server:
        with pytest.raises(
            SelfplayError, match="judge.remote.auth_env=RM_TOKEN: the environment variable is not set"
        ):
            score(server.url, auth_env="RM_TOKEN")
        monkeypatch.setenv("RM_TOKEN", "t0k")
        rewards, _ = score(server.url, auth_env="RM_TOKEN")
    assert len(rewards) == 23


def test_nan_rewards_pass_through_to_selection(score):
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


def test_a_run_judged_by_a_server_and_evaluated_by_a_rule(tmp_path, tiny_policy):
    from selfplay import api
    from selfplay.data.jsonl import read_jsonl

    with RewardServer(mode="templated", template_from=tiny_policy) as server:  # the policy's template
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
    assert json.loads((it / "judge" / "_SUCCESS").read_text())["stats"]["retries"] == 0


def test_retries_are_counted_in_the_judge_stages_statistics_across_shard_processes(tmp_path):
    """Each judging shard process leaves its scorer's retry count in the stage's folder; the stage's
    statistics sum them (the first two requests, whichever shard sent them, answer 503 once)."""
    from selfplay import api

    with RewardServer(mode="fail_then_ok", failures=2) as server:
        result = api.run(
            [
                "debug=tiny",
                "generate.backend=hf",
                "loop.iterations=1",
                "loop.progress=false",
                "loop.shards=2",
                "loop.shard_workers=2",
                "loop.workers=false",  # a process per shard
                "loop.stop_after=judge",
                "judge.kind=remote",
                f"judge.remote.url={server.url}",
                "judge.remote.retries=2",
                f"loop.output_dir={tmp_path}",
            ]
        )
    folder = result.run_dir / "iter_000" / "judge"
    stats = json.loads((folder / "_SUCCESS").read_text())["stats"]
    assert stats["retries"] == 2 and len(stats["placement"]) == 2, stats
    assert not list(folder.glob("_retries-*"))  # summed, then removed


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
