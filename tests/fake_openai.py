"""A local OpenAI-compatible chat-completions server for tests (real HTTP on 127.0.0.1).

`FakeOpenAI(responder)` serves `POST /v1/chat/completions` (and `/chat/completions`); `responder`
receives the request JSON and returns either an assistant message dict (`{"content": ...}` or
`{"tool_calls": [{"name": ..., "arguments": {...}}]}`) or `(status, body)` to answer with an error.
Every request is kept in `.requests`, so tests can check what the model was shown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "dict[str, Any] | tuple[int, dict[str, Any]]"]


class FakeOpenAI:
    def __init__(self, responder: Responder, *, model: str = "fake-model") -> None:
        self.responder = responder
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._counter = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with fake._lock:
                    fake.requests.append(body)
                    fake._counter += 1
                    n = fake._counter
                answer = fake.responder(body)
                if isinstance(answer, tuple):
                    self._send(answer[0], answer[1])
                    return
                self._send(200, fake._completion(answer, n))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _completion(self, message: dict[str, Any], n: int) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        finish = "stop"
        if message.get("tool_calls"):
            finish = "tool_calls"
            msg["tool_calls"] = [
                {
                    "id": tc.get("id") or f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": tc["name"], "arguments": json.dumps(tc.get("arguments", {}))},
                }
                for i, tc in enumerate(message["tool_calls"])
            ]
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 1_700_000_000 + n,
            "model": self.model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def tool_results(request: dict[str, Any]) -> dict[str, str]:
    """Tool name -> last result content seen in the conversation (for scripted responders)."""
    names: dict[str, str] = {}
    out: dict[str, str] = {}
    for m in request.get("messages", []):
        for tc in m.get("tool_calls") or []:
            names[tc["id"]] = tc["function"]["name"]
        if m.get("role") == "tool":
            out[names.get(m.get("tool_call_id", ""), "?")] = str(m.get("content"))
    return out
