"""A real reward server on loopback for the remote judge's tests and bench: OpenRLHF's request shape in,
{"rewards": [...]} out, with a real reward function behind it (the built-in topical_variety rule on the
last user message and the response) and switchable failures.

    with RewardServer() as server:          # server.url, server.requests, server.mode = "..."
        ...

Modes: "ok"; "fail_then_ok" (the first `failures` requests answer 503); "stall" (sleep `stall` s, then
answer); "malformed" (not JSON); "wrong_size" (one reward too many); "no_rewards" ({"scores": ...});
"nan" (the first reward NaN); "needs_auth" (401 without `Authorization: Bearer <token>`); "templated"
(400 unless every `query` is its `messages` rendered by the chat template of the tokenizer at
`template_from`, as OpenRLHF's serve_rm expects the text it tokenises).
`latency` adds seconds per request (a GPU reward model's forward pass), `capacity` caps the requests
served at once (more wait), like a server with a fixed number of model replicas.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selfplay.judge.rules import topical_variety


class RewardServer:
    def __init__(self, mode: str = "ok", failures: int = 2, stall: float = 5.0, latency: float = 0.0,
                 capacity: int | None = None, token: str = "s3cret", template_from: str | None = None):  # fmt: skip
        self.mode, self.failures, self.stall, self.latency, self.token = mode, failures, stall, latency, token
        self.tokenizer = None
        if template_from is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(template_from)
        self.requests = 0
        self.scored = 0
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(capacity) if capacity else None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests += 1
                    n = server.requests
                    server.bodies.append(body)
                status, answer = server.answer(n, body, self.headers.get("Authorization"))
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/get_reward"

    def rewards(self, body: dict) -> list[float]:
        if self.slots is not None:
            self.slots.acquire()
        try:
            if self.latency:
                time.sleep(self.latency)
            values = [topical_variety(p, r) for p, r in zip(body["prompts"], body["responses"])]
        finally:
            if self.slots is not None:
                self.slots.release()
        with self.lock:
            self.scored += len(values)
        return values

    def answer(self, n: int, body: dict, auth: str | None):
        mode = self.mode
        if mode == "fail_then_ok" and n <= self.failures:
            return 503, {"error": "warming up"}
        if mode == "stall":
            time.sleep(self.stall)
        if mode == "malformed":
            return 200, b"<html>oops</html>"
        if mode == "needs_auth" and auth != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        if mode == "templated":
            assert self.tokenizer is not None, "mode templated needs template_from"
            for query, messages in zip(body["query"], body["messages"]):
                if query != self.tokenizer.apply_chat_template(messages, tokenize=False):
                    return 400, {"error": f"query is not the chat-templated conversation: {query[:60]!r}"}
        rewards = self.rewards(body)
        if mode == "wrong_size":
            rewards.append(0.0)
        if mode == "no_rewards":
            return 200, {"scores": rewards}
        if mode == "nan" and rewards:
            rewards[0] = float("nan")
        return 200, {"rewards": rewards}

    def __enter__(self) -> RewardServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
