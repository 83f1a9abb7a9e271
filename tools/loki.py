"""Loki adapter: `query_range` (LogQL) over HTTP, used instead of the embedded store when
`settings.loki_url` is set. Streams are selected by the `service` label (the label most Promtail /
Alloy pipelines attach; a team using another label can relabel), levels by a `level` label filter.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import httpx

from firebreak.tools.log_store import LogLine, from_us, normalize_level, to_us
from firebreak.tools.registry import ToolError

log = logging.getLogger("firebreak.backends")

SERVICE_LABEL = "service"
LEVEL_LABELS = ("level", "detected_level", "severity", "lvl")
_LOGQL_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def logql_string(value: str) -> str:
    """Quote a value as a LogQL double-quoted string literal."""
    return '"' + value.translate(_LOGQL_STRING_ESCAPES) + '"'


def build_logql(*, service: str | None, level: str | None, text: str | None, regex: bool = False) -> str:
    """Stream selector + line filter + level label filter, e.g. `{service="api"} |= "timeout"`."""
    selector = (
        "{" + f"{SERVICE_LABEL}={logql_string(service)}" + "}" if service else "{" + f'{SERVICE_LABEL}=~".+"' + "}"
    )
    parts = [selector]
    if text:
        parts.append(("|~ " if regex else "|= ") + logql_string(text))
    if level:
        lv = normalize_level(level)
        # Loki pipelines write levels in any case; match the common spellings case-insensitively.
        spellings = {"WARN": "warn|warning", "ERROR": "error|err", "FATAL": "fatal|critical|crit"}.get(lv, lv.lower())
        parts.append(f'| level=~"(?i)({spellings})"')
    return " ".join(parts)


class LokiClient:
    """A thin `query_range` client; errors come back as ToolError with Loki's own sentence."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _fail(self, path: str, message: str, status: int) -> ToolError:
        log.warning("Loki call failed: GET %s%s: %s", self.base_url, path, message)
        return ToolError(message, status=status)

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.get(path, params=dict(params))
        except httpx.HTTPError as exc:
            raise self._fail(path, f"Loki at {self.base_url} could not be reached: {exc}", 502) from None
        if resp.status_code >= 400:
            raise self._fail(path, f"Loki rejected the query: {_error_text(resp)}", _status(resp))
        try:
            body = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            ctype = resp.headers.get("content-type", "").split(";")[0] or "no content type"
            raise self._fail(path, f"FIREBREAK_LOKI_URL {self.base_url} does not answer as Loki: {path} gave HTTP "
                             f"{resp.status_code} {ctype}, not JSON; check the URL points at Loki", 502) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise self._fail(path, f"FIREBREAK_LOKI_URL {self.base_url} does not answer as Loki: {path} gave JSON "
                             "that is not a Loki API answer", 502)
        if body.get("status") != "success":
            raise self._fail(path, f"Loki rejected the query: {body.get('error') or 'no reason given'}", 502)
        return body

    def query_range(
        self,
        query: str,
        *,
        start: datetime,
        end: datetime,
        limit: int = 100,
        direction: Literal["forward", "backward"] = "backward",
    ) -> list[LogLine]:
        """Log lines of a LogQL stream query, in the order Loki returns for `direction`."""
        body = self._get(
            "/loki/api/v1/query_range",
            {
                "query": query,
                "start": str(to_us(start) * 1000),
                "end": str(to_us(end) * 1000),
                "limit": str(limit),
                "direction": direction,
            },
        )
        data = body.get("data") or {}
        if data.get("resultType") != "streams":
            raise ToolError(
                f"Loki answered with {data.get('resultType')!r}, not log streams: use a log query", status=422
            )
        lines: list[LogLine] = []
        for stream in data.get("result") or []:
            labels: dict[str, str] = stream.get("stream") or {}
            service = labels.get(SERVICE_LABEL) or labels.get("service_name") or labels.get("job") or "unknown"
            level = next((labels[k] for k in LEVEL_LABELS if labels.get(k)), "INFO")
            attrs = {k: v for k, v in labels.items() if k != SERVICE_LABEL and k not in LEVEL_LABELS}
            for value in stream.get("values") or []:
                ts_ns, message = value[0], value[1]
                extra = dict(attrs)
                if len(value) > 2 and isinstance(value[2], dict):  # structured metadata (Loki 3)
                    extra.update(value[2])
                lines.append(LogLine(from_us(int(ts_ns) // 1000), service, normalize_level(level), message, extra))
        lines.sort(key=lambda ln: ln.ts, reverse=direction == "backward")
        return lines[:limit]

    def label_values(self, label: str, *, start: datetime, end: datetime) -> list[str]:
        body = self._get(
            f"/loki/api/v1/label/{label}/values",
            {"start": str(to_us(start) * 1000), "end": str(to_us(end) * 1000)},
        )
        return [str(v) for v in body.get("data") or []]


def _status(resp: httpx.Response) -> int:
    return 422 if resp.status_code == 400 else 502


def _error_text(resp: httpx.Response) -> str:
    """Loki 2.x answers errors as plain text, 3.x as JSON {"message": ...}: read both."""
    text = resp.text.strip()
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("error") or text)
    text = re.sub(r"\s+", " ", text)[:500]
    return f"{text} (HTTP {resp.status_code})" if text else f"HTTP {resp.status_code}"
