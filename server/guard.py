"""Request guards for every route: body caps, JSON depth and number limits, and the token on /docs.

Why a middleware: a route that reads its body itself (Slack, webhooks) or through FastAPI (the API,
the web forms) must never read more than its cap, and a malformed body must be a 4xx, never a 500.
The cap is enforced while the body streams in (a declared Content-Length over it is refused before
reading anything), so a 100 MB unsigned body costs one chunk, not 100 MB.

Caps (bytes): webhooks 16 MiB, OTLP 32 MiB (it checks its own inflated size), Slack 1 MiB, the API
1 MiB, everything else (web forms) 1 MiB. JSON bodies outside webhooks and OTLP (which parse with
their own bounded parser) are checked before the route sees them: at most 64 levels of nesting,
integers of at most 40 digits, finite numbers, no NaN/Infinity; otherwise 400 naming the limit.

`/docs`, `/redoc` and `/openapi.json` answer only with the API token (or a signed-in web session)
unless FIREBREAK_PUBLIC_DOCS is set; `/metrics` does the same with FIREBREAK_PUBLIC_METRICS (see
server.observability).
"""

from __future__ import annotations

import hmac
import json
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MiB = 1024 * 1024
CAPS: tuple[tuple[str, int], ...] = (
    ("/webhooks/", 16 * MiB),
    ("/v1/", 32 * MiB),
    ("/slack/", 1 * MiB),
    ("/api/", 1 * MiB),
)
DEFAULT_CAP = 1 * MiB
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 40
MAX_FLOAT_CHARS = 64
# Routes whose JSON is parsed by their own bounded parser (pydantic-core, protobuf).
OWN_PARSER = ("/webhooks/", "/v1/")


class JSONLimitError(ValueError):
    """A JSON document over a limit (depth, number size) or not JSON at all; the message names which."""


class NotJSON(JSONLimitError):
    """Not JSON at all (the route's own parser names the error its usual way, a 422)."""


def cap_for(path: str) -> int:
    for prefix, cap in CAPS:
        if path.startswith(prefix):
            return cap
    return DEFAULT_CAP


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONLimitError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise JSONLimitError("a number is too large (or longer than 64 characters)")
    return value


def _constant(text: str) -> Any:
    raise JSONLimitError(f"{text} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (the value itself may be deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
        if deepest > MAX_JSON_DEPTH:
            break
    return deepest


def loads_limited(data: str | bytes) -> Any:
    """`json.loads` with limits: JSONLimitError (a ValueError) naming the problem instead of a crash."""
    try:
        value = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except JSONLimitError:
        raise
    except json.JSONDecodeError as exc:
        raise NotJSON(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJSON(f"not JSON ({exc})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise JSONLimitError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_large(cap: int) -> HTTPException:
    return HTTPException(413, detail=f"body: larger than {cap} bytes ({cap // MiB} MiB) for this route")


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse bodies over the route's cap (413) and JSON over the limits (400), before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        cap = cap_for(path)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > cap:
            await _answer(send, 413, str(_too_large(cap).detail))
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if "json" in content_type and not path.startswith(OWN_PARSER):
            await self._check_json(scope, receive, send, cap)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise _too_large(cap)
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except HTTPException as exc:  # the cap tripped where no exception handler could answer it
            if started or exc.status_code != 413:
                raise
            await _answer(send, 413, str(exc.detail))

    async def _check_json(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _answer(send, 413, str(_too_large(cap).detail))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                loads_limited(body)
            except NotJSON:
                pass
            except JSONLimitError as exc:
                await _answer(send, 400, f"body: {exc}")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --- docs behind the token --------------------------------------------------------------------------


def token_or_session(request: Request) -> bool:
    """The API bearer token, or a signed-in web session (a browser opening /docs)."""
    ctx = request.app.state.ctx
    token = ctx.settings.api_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if token is not None and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.get_secret_value().encode()
    ):
        return True
    from firebreak.server.web import current_session

    return bool(current_session(request, ctx).user)


def _refused() -> JSONResponse:
    return JSONResponse({"detail": "missing or wrong bearer token (FIREBREAK_API_TOKEN), or sign in on the web "
                                   "page; set FIREBREAK_PUBLIC_DOCS=true to open the API docs"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI) -> None:
    """Add the body limits and serve the API docs only to callers with the token (unless opened)."""
    app.add_middleware(BodyLimitMiddleware)
    docs_paths = {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in docs_paths]

    def _open(request: Request) -> bool:
        return bool(request.app.state.ctx.settings.public_docs) or token_or_session(request)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> Response:
        return JSONResponse(app.openapi()) if _open(request) else _refused()

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        if not _open(request):
            return _refused()
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> Response:
        if not _open(request):
            return _refused()
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")
