"""A reward server over HTTP (`judge.kind=remote`): batches of responses POSTed as JSON, rewards read
back, with the request and answer shapes of OpenRLHF's remote reward model so existing servers work.

Request (one per `judge.batch_size` responses):
    {"query":     [prompt + response, ...],   # OpenRLHF: the text the server scores
     "prompts":   [prompt, ...],              # OpenRLHF: the prompt part of each query
     "responses": [response, ...],
     "messages":  [[{"role", "content"}, ..., {"role": "assistant", "content": response}], ...],
     "metadata":  [{"prompt_id", "sample_index", "num_tokens", "finish_reason"}, ...]}
`prompt` is the last user message. Answer: {"rewards": [float, ...]} in request order (a bare list is
accepted too); NaN and inf are rewards like any other (selection counts and drops them).

`judge.remote.concurrency` requests are in flight at once (threads; the standard library's HTTP client, no
extra dependency). A timeout, a lost connection, 429 or a 5xx answer is retried `judge.remote.retries` times
with exponential backoff; anything else that is wrong (another 4xx, an answer that is not JSON, holds
no rewards, has the wrong number of them or non-numbers) is one line naming the URL and the key.
"""

from __future__ import annotations

import json
import numbers
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfplay.config import JudgeConfig
from selfplay.errors import SelfplayError

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


class Retryable(Exception):
    """A failure worth another try (timeout, connection, 429/5xx)."""


def request_body(items: list[tuple[list[dict[str, Any]], str, dict[str, Any]]]) -> dict[str, Any]:
    prompts = [messages[-1]["content"] for messages, _, _ in items]
    responses = [response for _, response, _ in items]
    return {
        "query": [p + r for p, r in zip(prompts, responses)],
        "prompts": prompts,
        "responses": responses,
        "messages": [[*messages, {"role": "assistant", "content": r}] for messages, r, _ in items],
        "metadata": [dict(meta) for _, _, meta in items],
    }


class RemoteScorer:
    def __init__(self, cfg: JudgeConfig, key: str, runtime=None):  # the run's runtime: unused
        check_remote(cfg, key)
        self.cfg, self.key = cfg, key
        self.url = str(cfg.remote.url)
        self.headers = {"Content-Type": "application/json"}
        if cfg.remote.auth_env:
            token = os.environ.get(cfg.remote.auth_env)
            if not token:
                raise SelfplayError(
                    f"{key}.remote.auth_env={cfg.remote.auth_env}: the environment variable is not set (it holds the "
                    f"bearer token for {self.url})"
                )
            self.headers["Authorization"] = f"Bearer {token}"
        self.requests = 0
        self.retried = 0

    def score(self, items, progress=None) -> tuple[list[float], list[bool]]:
        step = max(1, self.cfg.batch_size)
        batches = [items[i : i + step] for i in range(0, len(items), step)]
        rewards: list[float] = []
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.remote.concurrency)) as pool:
            for batch, values in zip(batches, pool.map(self.score_batch, batches)):  # in order
                rewards += values
                if progress is not None:
                    progress.update(len(batch))
        return rewards, [False] * len(items)

    def score_batch(self, batch) -> list[float]:
        body = json.dumps(request_body(batch)).encode()
        delay, attempt = BACKOFF_START, 0
        while True:
            try:
                return self._parse(self._post(body), len(batch))
            except Retryable as why:
                if attempt >= self.cfg.remote.retries:
                    raise SelfplayError(
                        f"{self.key}.remote.url={self.url}: {why}, {attempt + 1} tries ({self.key}.remote.retries="
                        f"{self.cfg.remote.retries}, {self.key}.remote.timeout={self.cfg.remote.timeout:g}s)"
                    ) from None
                attempt += 1
                self.retried += 1
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _post(self, body: bytes) -> bytes:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.remote.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as err:
            detail = err.read(300).decode(errors="replace").strip().splitlines()
            text = f"HTTP {err.code} {err.reason}" + (f": {detail[0][:200]}" if detail else "")
            if err.code in RETRY_STATUS:
                raise Retryable(text) from None
            hint = (
                f" (is {self.key}.remote.auth_env set to the right variable?)"
                if err.code in (401, 403)
                else ""
            )
            raise SelfplayError(f"{self.key}.remote.url={self.url}: {text}{hint}") from None
        except TimeoutError:
            raise Retryable(f"no answer within {self.cfg.remote.timeout:g}s") from None
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise Retryable(f"no answer within {self.cfg.remote.timeout:g}s") from None
            raise Retryable(f"cannot reach the server ({reason})") from None

    def _parse(self, raw: bytes, expected: int) -> list[float]:
        def bad(what: str) -> SelfplayError:
            return SelfplayError(
                f'{self.key}.remote.url={self.url}: {what}; expected {{"rewards": [{expected} numbers]}}'
            )

        try:
            answer = json.loads(raw)
        except ValueError:
            return_text = raw[:80].decode(errors="replace")
            raise bad(f"the answer is not JSON ({return_text!r})") from None
        rewards = answer.get("rewards") if isinstance(answer, dict) else answer
        if not isinstance(rewards, list):
            keys = sorted(answer)[:5] if isinstance(answer, dict) else type(answer).__name__
            raise bad(f"the answer holds no list of rewards ({keys})")
        if len(rewards) != expected:
            raise bad(f"{len(rewards)} rewards for {expected} responses")
        out = []
        for value in rewards:
            if isinstance(value, list) and len(value) == 1:  # [[r], ...]: one score per row
                value = value[0]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise bad(f"a reward is {value!r:.40}, not a number")
            out.append(float(value))  # NaN and inf too: selection counts and drops them
        return out


def check_remote(cfg: JudgeConfig, key: str) -> None:
    from urllib.parse import urlparse

    if not cfg.remote.url:
        raise SelfplayError(
            f"{key}.remote.url: required with {key}.kind=remote (e.g. http://rm-host:5000/get_reward)"
        )
    parsed = urlparse(str(cfg.remote.url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SelfplayError(f"{key}.remote.url={cfg.remote.url}: expected an http:// or https:// URL")
    for name, value, low in (
        ("batch_size", cfg.batch_size, 1),
        ("remote.concurrency", cfg.remote.concurrency, 1),
        ("remote.retries", cfg.remote.retries, 0),
    ):
        if value < low:
            raise SelfplayError(f"{key}.{name}={value} must be >= {low}")
    if cfg.remote.timeout <= 0:
        raise SelfplayError(f"{key}.remote.timeout={cfg.remote.timeout} must be > 0")
