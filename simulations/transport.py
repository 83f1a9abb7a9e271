"""How a drill's alerts reach Firebreak: the real app in process, or a running server over HTTP.

Both post the exact bytes and headers a vendor would send, so the intake's signature checks, replay
cache and body caps are what a drill exercises.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from firebreak.context import ToolContext
from firebreak.simulations.render import Delivery


class Transport(Protocol):
    def post(self, delivery: Delivery) -> tuple[int, Any]: ...
    def close(self) -> None: ...


class InProcessTransport:
    """The real FastAPI app around the drill's context, called through Starlette's TestClient."""

    def __init__(self, ctx: ToolContext) -> None:
        from fastapi.testclient import TestClient

        from firebreak.server.app import create_app

        self.client = TestClient(create_app(ctx, start_worker=False), raise_server_exceptions=False)

    def post(self, delivery: Delivery) -> tuple[int, Any]:
        resp = self.client.post(delivery.path, content=delivery.body, headers=delivery.headers)
        return resp.status_code, _json_or_text(resp.text)

    def close(self) -> None:
        self.client.close()


class HttpTransport:
    """A running `firebreak serve` (or the demo's server) over HTTP."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=30.0)

    def post(self, delivery: Delivery) -> tuple[int, Any]:
        for _ in range(5):
            resp = self.client.post(delivery.path, content=delivery.body, headers=delivery.headers)
            if resp.status_code != 429:
                break
            time.sleep(min(5.0, float(resp.headers.get("retry-after", "1") or 1)))
        return resp.status_code, _json_or_text(resp.text)

    def close(self) -> None:
        self.client.close()


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
