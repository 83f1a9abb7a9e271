"""The offline investigator: a pydantic-ai FunctionModel that drives the same agent loop as an LLM.

It decides its next tool calls from what the previous ones returned (a fixed, sensible plan:
incident -> changes/metrics/Sentry/flags/dependencies -> logs around the onset and similar past
incidents, traces when the trace tools exist), then submits the report built by `agent.triage`
(suspects, features, fitted ranking, fix policy), then requests the proposed fix
through the approval-required action tool. Deterministic: same stores, same clock, same report.
Text from tools is only ever scored as data; nothing in it is executed or obeyed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from firebreak.agent.triage import build_report
from firebreak.agent.triage.observe import Findings, content, findings_from, parse_time
from firebreak.agent.triage.signals import bad_patterns
from firebreak.agent.triage.vocab import TRAFFIC_RE

SUBMIT_TOOL = "submit_report"
ACTION_TOOL = "request_action"
LOOKBACK = timedelta(hours=3)
SERIES_HISTORY = timedelta(minutes=30)
PHASE2 = (
    "recent_changes",
    "metric_anomalies",
    "list_sentry_issues",
    "service_dependencies",
    "flag_history",
    "list_flags",
    "list_dashboards",
    "service_map",
)
PHASE3 = ("log_patterns", "similar_incidents", "trace_errors", "latency_breakdown")
# Only these levels can carry new errors; filtering at the store skips the INFO bulk (10x faster).
PATTERN_LEVELS = ("ERROR", "WARN", "FATAL")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def collect(messages: list[ModelMessage]) -> list[tuple[str, dict[str, Any], Any]]:
    """(tool name, args, result) for every answered tool call, in order."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out: list[tuple[str, dict[str, Any], Any]] = []
    for m in messages:
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                calls[p.tool_call_id] = (p.tool_name, p.args_as_dict())
            elif isinstance(p, ToolReturnPart):
                name, args = calls.get(p.tool_call_id, (p.tool_name, {}))
                outcome = getattr(p, "outcome", "success")
                if outcome in ("retried", "failed", "interrupted"):
                    out.append((name, args, {"error": str(p.content)}))
                elif outcome == "denied":
                    out.append((name, args, {"denied": str(p.content)}))
                else:
                    out.append((name, args, p.content))
            elif isinstance(p, RetryPromptPart) and p.tool_name:
                name, args = calls.get(p.tool_call_id, (p.tool_name, {}))
                out.append((name, args, {"error": str(p.content)}))
    return out


_content = content


class OfflineInvestigator:
    """The model function: one instance per run (it knows the incident and the clock)."""

    def __init__(self, incident_id: str, now: datetime, *, update_minutes: int = 30) -> None:
        self.incident_id = incident_id
        self.now = now
        self.update_minutes = update_minutes

    def model(self) -> FunctionModel:
        from firebreak.agent.triage import warm

        warm()  # cached after the first call; the worker's warm-up lands here before any alert
        return FunctionModel(self, model_name="offline")

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        available = {t.name for t in info.function_tools}
        results = collect(messages)
        done = [name for name, _, _ in results]

        def calls(*pairs: tuple[str, dict[str, Any]]) -> ModelResponse:
            parts = [ToolCallPart(n, a) for n, a in pairs if n in available]
            if not parts:
                return ModelResponse(parts=[TextPart("No tools available to investigate with.")])
            return ModelResponse(parts=parts)

        if ACTION_TOOL in done:
            return ModelResponse(parts=[TextPart(self._closing(results))])
        if SUBMIT_TOOL in done:
            return self._after_submit(results, available)
        if "incident_details" in available and "incident_details" not in done:
            return calls(("incident_details", {"incident_id": self.incident_id}))
        f = findings_from(results, self.now)
        start = f.incident_start()
        since = start - LOOKBACK
        primary = self._primary(f)
        phase2 = [n for n in PHASE2 if n in available and n not in done]
        if phase2 and not any(n in done for n in PHASE2):
            args: dict[str, dict[str, Any]] = {
                "recent_changes": {"since": _iso(since), "until": _iso(self.now), "around": _iso(start), "limit": 50},
                "metric_anomalies": {"since": _iso(since), "until": _iso(self.now), "limit": 50},
                "list_sentry_issues": {"since": _iso(since)},
                "service_dependencies": {},
                "flag_history": {"since": _iso(since)},
                "list_flags": {},
                "list_dashboards": {"service": primary} if primary else {},
                "service_map": {"since": _iso(since), "until": _iso(self.now)},
            }
            return calls(*[(n, args[n]) for n in phase2])
        phase3 = [n for n in PHASE3 if n in available and n not in done]
        if phase3 and not any(n in done for n in PHASE3):
            pivot, after = self._pivot(f, start)
            pairs: list[tuple[str, dict[str, Any]]] = []
            if "log_patterns" in phase3:
                pairs += [
                    (
                        "log_patterns",
                        {
                            "pivot": _iso(pivot),
                            "before_minutes": 30,
                            "after_minutes": after,
                            "level": level,
                            "limit": 50,
                        },
                    )
                    for level in PATTERN_LEVELS
                ]
            if "trace_errors" in phase3 and f.tools_answered & {"service_map"}:
                pairs.append(("trace_errors", {"since": _iso(pivot), "until": _iso(self.now)}))
            if "latency_breakdown" in phase3 and primary and f.trace_edges:
                pairs.append(
                    (
                        "latency_breakdown",
                        {
                            "service": primary,
                            "since": _iso(pivot - timedelta(minutes=30)),
                            "until": _iso(self.now),
                            "pivot": _iso(pivot),
                        },
                    )
                )
            if "similar_incidents" in phase3:
                pairs.append(
                    (
                        "similar_incidents",
                        {"text": self._query_text(f), "k": 5, **({"service": primary} if primary else {})},
                    )
                )
            return calls(*pairs)
        # Who sends the load? Sample the lines naming clients/campaigns and count them.
        if "search_logs" in available and "search_logs" not in done:
            probes = self._traffic_probes(f)
            if probes:
                pivot, _ = self._pivot(f, start)
                return calls(
                    *[
                        (
                            "search_logs",
                            {
                                "service": svc,
                                **({"text": key} if key else {}),
                                "since": _iso(pivot),
                                "until": _iso(self.now),
                                "limit": 500,
                            },
                        )
                        for svc, key in probes
                    ]
                )
        # Resource series: how each service's own cpu/memory/... stands now against its own history
        # (a change-point detector reports only a series' first change; the fault may be a later one).
        if "query_metric" in available and "query_metric" not in done:
            series = self._series_probes(f)
            # Half an hour of history at the finest step the tool gives (not three hours of coarse buckets).
            recent = start - SERIES_HISTORY
            if series:
                return calls(
                    *[
                        ("query_metric", {"service": svc, "name": name, "since": _iso(recent), "until": _iso(self.now)})
                        for svc, name in series
                    ]
                )
        # One retry of log_patterns with the contract's defaults if the first try was refused.
        lp = [r for r in results if r[0] == "log_patterns"]
        if (
            lp
            and len(lp) <= len(PATTERN_LEVELS)
            and all("error" in _content(r[2]) for r in lp)
            and "log_patterns" in available
        ):
            pivot, after = self._pivot(f, start)
            return calls(("log_patterns", {"pivot": _iso(pivot), "after_minutes": min(after, 60)}))
        report = build_report(f, update_minutes=self.update_minutes)
        if SUBMIT_TOOL not in available:
            return ModelResponse(parts=[TextPart(report.model_dump_json())])
        return ModelResponse(parts=[ToolCallPart(SUBMIT_TOOL, {"report": report.model_dump(mode="json")})])

    def _after_submit(self, results: list[tuple[str, dict[str, Any], Any]], available: set[str]) -> ModelResponse:
        submitted = [(a, r) for n, a, r in results if n == SUBMIT_TOOL]
        args, res = submitted[-1]
        content = _content(res)
        report = args.get("report") or {}
        fix = report.get("proposed_fix") if isinstance(report, dict) else None
        if "error" in content or not fix or ACTION_TOOL not in available:
            return ModelResponse(parts=[TextPart("Report submitted; no action requested.")])
        return ModelResponse(parts=[ToolCallPart(ACTION_TOOL, {"fix": fix})])

    def _closing(self, results: list[tuple[str, dict[str, Any], Any]]) -> str:
        for name, _, res in reversed(results):
            if name == ACTION_TOOL:
                c = _content(res)
                if "status" in c:
                    return f"Action finished: {c.get('status')} ({c.get('detail', '')})."
                return f"Action not run: {c.get('denied') or c.get('error') or c.get('value') or res}"
        return "Done."

    @staticmethod
    def _traffic_probes(f: Findings) -> list[tuple[str, str | None]]:
        """(service, key text) for new or surged lines that name a client, campaign, tenant...; and
        (service, None) for a service whose request rate jumped with no such line: sample its logs."""
        probes: list[tuple[str, str | None]] = []
        for b in bad_patterns(f):
            for m in TRAFFIC_RE.finditer(b.example):
                key = b.example[m.start() : m.start(2)].strip(" \"'")
                probe: tuple[str, str | None] = (b.service, key)
                if key and probe not in probes:
                    probes.append(probe)
        probed = {svc for svc, _ in probes}
        for a in f.anomalies:
            name = str(a.get("name") or "").lower()
            svc = str(a.get("service") or "")
            if (
                svc
                and svc not in probed
                and str(a.get("direction")) == "up"
                and "request" in name
                and "error" not in name
                and "second" not in name.replace("per_second", "")
                and float(a.get("change_ratio") or 0) >= 1.8
            ):
                probes.append((svc, None))
                probed.add(svc)
        return probes[:3]

    @staticmethod
    def _series_probes(f: Findings, limit: int = 60) -> list[tuple[str, str]]:
        """(service, metric) of every series the anomaly scan saw that measures a resource, latency or
        errors, once each, resources first: their rise against their own history is how a metrics-only
        incident names its culprit (agent/triage/rises.py)."""
        from firebreak.agent.triage.rises import metric_class

        order = {"resource": 0, "latency": 1, "errors": 2}
        seen: list[tuple[int, tuple[str, str]]] = []
        for a in f.anomalies:
            key = (str(a.get("service") or ""), str(a.get("name") or ""))
            cls = metric_class(key[1])
            if key[0] and cls in order and key not in [k for _, k in seen]:
                seen.append((order[cls], key))
        return [k for _, k in sorted(seen, key=lambda ok: ok[0])][:limit]

    @staticmethod
    def _primary(f: Findings) -> str | None:
        services = [str(s) for s in f.incident.get("services") or []]
        if services:
            return services[0]
        for a in f.alerts:
            if a.get("service"):
                return str(a["service"])
        return None

    def _pivot(self, f: Findings, start: datetime) -> tuple[datetime, int]:
        """Before the earliest sign of trouble and any change that could explain it."""
        times = [start]
        times += [t for a in f.anomalies if (t := parse_time(a.get("onset"))) is not None]
        times += [t for i in f.sentry if (t := parse_time(i.get("first_seen"))) is not None and t <= self.now]
        first = max(min(times), start - timedelta(hours=2))
        change_times = [
            t
            for c in f.changes
            if (t := parse_time(c.get("at"))) is not None and first - timedelta(minutes=60) <= t <= first
        ]
        pivot = min([first, *change_times]) - timedelta(minutes=2)
        after = max(5, math.ceil((self.now - pivot).total_seconds() / 60.0) + 1)
        return pivot, after

    @staticmethod
    def _query_text(f: Findings) -> str:
        parts = [str(f.incident.get("title") or "")]
        parts += [str(a.get("title") or "") for a in f.alerts[:5]]
        return " ".join(p for p in parts if p)[:500] or "incident"
