"""A reward server over HTTP (`judge.kind=remote`): batches of responses POSTed as JSON, rewards read
back, with the request and answer shapes of OpenRLHF's remote reward model so existing servers work.

Request (one per `judge.batch_size` responses):
    {"query":     [conversation + response in a chat template, ...],  # OpenRLHF: the text it scores
     "prompts":   [prompt, ...],              # OpenRLHF: the prompt (raw: the last user message)
     "responses": [response, ...],
     "messages":  [[{"role", "content"}, ..., {"role": "assistant", "content": response}], ...],
     "metadata":  [{"prompt_id", "sample_index", "num_tokens", "finish_reason"}, ...]}
`query` is `messages` rendered by a chat template, as OpenRLHF sends the decoded policy sequence and its
serve_rm tokenises it as is: the judge's own `judge.model.chat_template` if set, else the policy's tokenizer's.
Answer: {"rewards": [float, ...]} in request order (a bare list is accepted too); NaN and inf are
rewards like any other (selection counts and drops them).

The client is httpx: one connection pool per `score` call, `judge.remote.concurrency` requests in flight at once
(threads sharing the client). A failure worth another try is retried `judge.remote.retries` times, each logged:
connection failures by httpx's transport (its backoff), timeouts, a lost connection, 408, 429 and 5xx by
us with exponential backoff; anything else that is wrong (another 4xx, an answer that is not JSON, holds
no rewards, has the wrong number of them or non-numbers) is one line naming the URL and the key.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfplay.config import TINY_MODEL, JudgeConfig
from selfplay.data.records import Message
from selfplay.errors import SelfplayError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


class Retryable(Exception):
    """A failure worth another try (timeout, lost connection, 408/429/5xx)."""


def request_body(
    items: list[tuple[list[Message], str, dict[str, Any]]], render: Callable[[list[Message]], str]
) -> dict[str, Any]:
    """One request's JSON; `render` turns a conversation (the response last) into the `query` text."""
    prompts = [messages[-1]["content"] for messages, _, _ in items]
    responses = [response for _, response, _ in items]
    conversations = [[*messages, {"role": "assistant", "content": r}] for messages, r, _ in items]
    return {
        "query": [render(c) for c in conversations],
        "prompts": prompts,
        "responses": responses,
        "messages": conversations,
        "metadata": [dict(meta) for _, _, meta in items],
    }


def query_tokenizer(cfg: JudgeConfig, key: str, runtime) -> Any:
    """The tokenizer whose chat template renders `query`: the policy's (with model.chat_template), its
    template replaced by `<key>.model.chat_template` when that is set."""
    from selfplay.data.chat import require_chat_template, resolve_chat_template
    from selfplay.models.loading import load_tokenizer

    policy, model = getattr(runtime, "policy", None), getattr(runtime, "model", None)
    if policy is None:
        raise SelfplayError(
            f"{key}.kind=remote: no policy here whose tokenizer renders the request's chat-templated "
            f"`query` (OpenRLHF's format); run it within a run or give model.path"
        )
    if str(policy) == TINY_MODEL and model is not None:  # offline selection names pi_0 as model.path
        from selfplay.models.loading import resolve_policy_path

        policy = resolve_policy_path(model)
    own = resolve_chat_template(cfg.model.chat_template, f"{key}.model.chat_template")
    tokenizer = load_tokenizer(
        str(policy),
        bool(getattr(model, "trust_remote_code", False)),
        "model.path",
        None if own else getattr(model, "chat_template", None),
    )
    if own:
        tokenizer.chat_template = own
    require_chat_template(tokenizer, f"{key}.model.chat_template" if own else "model.path")
    return tokenizer


class Tries:
    """The tries of one batch so far (ours and the transport's connection retries), and why the last
    connect failed."""

    def __init__(self) -> None:
        self.count = 0
        self.why = ""


class RemoteScorer:
    def __init__(self, cfg: JudgeConfig, key: str, runtime=None):
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
        self.tokenizer = query_tokenizer(cfg, key, runtime)
        self.requests = 0
        self.retried = 0  # every retry: ours and the transport's connection retries
        self._lock = threading.Lock()

    def render(self, conversation: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False)

    def score(self, items, progress=None) -> tuple[list[float], list[bool]]:
        import httpx

        step = max(1, self.cfg.batch_size)
        batches = [items[i : i + step] for i in range(0, len(items), step)]
        rewards: list[float] = []
        slots = max(1, self.cfg.remote.concurrency)
        # httpx's transport retries only a failed connect (refused, unreachable, connect timeout), with its
        # own backoff; a timeout, a lost connection or a 408/429/5xx answer is retried in score_batch.
        transport = httpx.HTTPTransport(
            retries=self.cfg.remote.retries,
            limits=httpx.Limits(max_connections=slots, max_keepalive_connections=slots),
        )
        with (
            httpx.Client(
                transport=transport, timeout=self.cfg.remote.timeout, headers=self.headers
            ) as client,
            ThreadPoolExecutor(max_workers=slots) as pool,
        ):
            answers = pool.map(lambda batch: self.score_batch(client, batch), batches)
            for batch, values in zip(batches, answers):  # in order
                rewards += values
                if progress is not None:
                    progress.update(len(batch))
        return rewards, [False] * len(items)

    def score_batch(self, client, batch) -> list[float]:
        body = json.dumps(request_body(batch, self.render)).encode()
        tries = Tries()
        delay = BACKOFF_START
        while True:
            tries.count += 1
            try:
                return self._parse(self._post(client, body, tries), len(batch))
            except Retryable as why:
                if tries.count > self.cfg.remote.retries:
                    raise SelfplayError(self._gave_up(str(why), tries.count)) from None
                self._retrying(tries.count, str(why), delay)
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _gave_up(self, why: str, tries: int) -> str:
        return (
            f"{self.key}.remote.url={self.url}: {why}, {tries} tries ({self.key}.remote.retries="
            f"{self.cfg.remote.retries}, {self.key}.remote.timeout={self.cfg.remote.timeout:g}s)"
        )

    def _retrying(self, attempt: int, why: str, delay: float) -> None:
        """A retry, counted and logged (URL, attempt, reason)."""
        with self._lock:
            self.retried += 1
        log.warning(
            "%s: attempt %d failed (%s); retrying in %gs (%s.remote.retries=%d)",
            self.url,
            attempt,
            why,
            delay,
            self.key,
            self.cfg.remote.retries,
        )

    def _post(self, client, body: bytes, tries: Tries) -> bytes:
        import httpx

        def trace(event: str, info: dict[str, Any]) -> None:
            """httpcore's trace hook: a failed connect, then the transport's retry of it."""
            if event == "connection.connect_tcp.failed":
                tries.why = f"cannot reach the server ({info.get('exception')})"
            elif event == "connection.retry.started":
                self._retrying(tries.count, tries.why, 0)  # the transport's own backoff: 0, 0.5, 1 ... s
                tries.count += 1

        with self._lock:
            self.requests += 1
        try:
            answer = client.post(self.url, content=body, extensions={"trace": trace})
        except httpx.ConnectTimeout:  # the transport has spent its connection retries
            raise SelfplayError(
                self._gave_up(f"no answer within {self.cfg.remote.timeout:g}s", tries.count)
            ) from None
        except httpx.ConnectError as err:
            raise SelfplayError(self._gave_up(f"cannot reach the server ({err})", tries.count)) from None
        except httpx.TimeoutException:
            raise Retryable(f"no answer within {self.cfg.remote.timeout:g}s") from None
        except httpx.TransportError as err:  # a connection lost while sending or reading
            raise Retryable(f"cannot reach the server ({str(err) or type(err).__name__})") from None
        if not answer.is_success:
            detail = answer.content[:300].decode(errors="replace").strip().splitlines()
            text = f"HTTP {answer.status_code} {answer.reason_phrase}" + (
                f": {detail[0][:200]}" if detail else ""
            )
            if answer.status_code in RETRY_STATUS:
                raise Retryable(text)
            hint = (
                f" (is {self.key}.remote.auth_env set to the right variable?)"
                if answer.status_code in (401, 403)
                else ""
            )
            raise SelfplayError(f"{self.key}.remote.url={self.url}: {text}{hint}")
        return answer.content

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
