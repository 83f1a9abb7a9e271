"""Readers that turn team knowledge into memory records: Markdown runbooks/FAQ and Slack exports.

Markdown is split at headings so a hit points at the section that answers, not at a whole file.
Slack's standard workspace export (a folder per channel, a JSON file per day, `users.json`,
`channels.json`; also as the .zip Slack hands out) is grouped into threads: a thread is what people
remember ("we saw this in #incidents last spring"), single messages are too short to match.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firebreak.memory.search_records import MemoryRecord

MAX_SECTION_CHARS = 1500
MD_SUFFIXES = (".md", ".markdown")
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class ImportProblem(ValueError):
    """A file that cannot be imported, named with the reason."""


def _rid(prefix: str, *parts: str) -> str:
    return prefix + ":" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter (`services:` / `service:` are used as filters); the rest of the text."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        return {}, text
    return (meta if isinstance(meta, dict) else {}), text[end + 4 :].lstrip("\n")


def _chunks(body: str) -> list[str]:
    """A long section split at paragraph boundaries into pieces the embedder sees whole."""
    if len(body) <= MAX_SECTION_CHARS:
        return [body]
    out: list[str] = []
    cur = ""
    for para in re.split(r"\n\s*\n", body):
        if cur and len(cur) + len(para) + 2 > MAX_SECTION_CHARS:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
        while len(cur) > MAX_SECTION_CHARS:
            out.append(cur[:MAX_SECTION_CHARS])
            cur = cur[MAX_SECTION_CHARS:]
    if cur.strip():
        out.append(cur)
    return out


def markdown_records(path: Path, *, root: Path | None = None, services: Iterable[str] = ()) -> list[MemoryRecord]:
    """One record per heading section (headings inside code fences ignored), titled with its heading path."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(f"{path}: cannot read as UTF-8 text: {exc}") from exc
    from firebreak.redact import redact_text

    raw = redact_text(raw)  # before sections are cut: a secret split across chunks would escape the rules
    meta, text = _front_matter(raw)
    rel = str(path.relative_to(root)) if root is not None else path.name
    fm_services = meta.get("services") or meta.get("service") or []
    file_services = [fm_services] if isinstance(fm_services, str) else [str(s) for s in fm_services]
    doc_title = str(meta.get("title") or path.stem.replace("-", " ").replace("_", " "))
    sections: list[tuple[list[str], list[str]]] = [([], [])]
    stack: list[tuple[int, str]] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m:
            level = len(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2).strip()))
            sections.append(([h for _, h in stack], []))
        else:
            sections[-1][1].append(line)
    known = list(services)
    has_h1 = any(_HEADING.match(ln) and ln.startswith("# ") for ln in text.splitlines())
    records: list[MemoryRecord] = []
    for heads, lines in sections:
        body = "\n".join(lines).strip()
        if not body:
            continue
        parts = heads if has_h1 else [doc_title, *heads]
        path_title = " > ".join(parts) if parts else doc_title
        found = file_services or [s for s in known if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", body, re.I)]
        for n, chunk in enumerate(_chunks(body)):
            records.append(
                MemoryRecord(
                    id=_rid("runbook", rel, path_title, str(n)),
                    kind="runbook",
                    title=path_title,
                    text=f"{path_title}\n{chunk}",
                    source=f"{rel}#{_slug(heads[-1]) if heads else ''}".rstrip("#"),
                    services=sorted(set(found)),
                    origin=str(path.resolve()),
                )
            )
    return records


def is_slack_export(folder: Path) -> bool:
    if (folder / "channels.json").exists() or (folder / "users.json").exists():
        return True
    return any(p.is_dir() and any(_DAY_FILE.match(f.name) for f in p.iterdir()) for p in folder.iterdir())


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportProblem(f"{path}: not valid JSON: {exc}") from exc


def _clean_slack_text(text: str, users: dict[str, str], channels: dict[str, str]) -> str:
    """Slack mrkdwn -> plain text: mentions resolved to names, links to their labels."""

    def link(m: re.Match[str]) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith("@"):
            return "@" + (label or users.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or channels.get(target[1:], target[1:]))
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    from firebreak.redact import redact_text

    text = re.sub(r"<([^<>]+)>", link, text or "")
    return redact_text(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def slack_records(folder: Path, *, services: Iterable[str] = ()) -> list[MemoryRecord]:
    """One record per thread (a parent message and its replies, across day files) per channel."""
    users: dict[str, str] = {}
    if (folder / "users.json").exists():
        for u in _load_json(folder / "users.json") or []:
            if isinstance(u, dict) and u.get("id"):
                prof = u.get("profile") or {}
                name = prof.get("display_name") or u.get("real_name") or prof.get("real_name") or u.get("name")
                users[str(u["id"])] = str(name or u["id"])
    channels: dict[str, str] = {}
    if (folder / "channels.json").exists():
        for c in _load_json(folder / "channels.json") or []:
            if isinstance(c, dict) and c.get("id"):
                channels[str(c["id"])] = str(c.get("name") or c["id"])
    known = list(services)
    records: list[MemoryRecord] = []
    for chan_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        day_files = sorted(f for f in chan_dir.iterdir() if _DAY_FILE.match(f.name))
        if not day_files:
            continue
        threads: dict[str, list[dict[str, Any]]] = {}
        for day in day_files:
            messages = _load_json(day)
            if not isinstance(messages, list):
                raise ImportProblem(f"{day}: expected a JSON list of messages")
            for i, msg in enumerate(messages):
                if not isinstance(msg, dict) or "ts" not in msg:
                    raise ImportProblem(f"{day}: message {i}: ts: missing")
                if msg.get("subtype") in ("channel_join", "channel_leave", "channel_purpose", "channel_topic"):
                    continue
                threads.setdefault(str(msg.get("thread_ts") or msg["ts"]), []).append(msg)
        channel = chan_dir.name
        for thread_ts, msgs in threads.items():
            msgs.sort(key=lambda m: float(m["ts"]))
            lines = []
            for m in msgs:
                who = (
                    (m.get("user_profile") or {}).get("display_name")
                    or (m.get("user_profile") or {}).get("real_name")
                    or users.get(str(m.get("user", "")))
                    or m.get("username")
                    or m.get("user")
                    or "someone"
                )
                raw = str(m.get("text", ""))
                for att in m.get("attachments") or []:  # alert bots put their content in attachments
                    if isinstance(att, dict):
                        extra = att.get("text") or att.get("fallback") or att.get("title") or ""
                        if extra and extra not in raw:
                            raw = f"{raw}\n{extra}" if raw else str(extra)
                body = _clean_slack_text(raw, users, channels).strip()
                if body:
                    lines.append(f"{who}: {body}")
            if not lines:
                continue
            first = lines[0].split(": ", 1)[-1].splitlines()[0]
            title = first if len(first) <= 120 else first[:117] + "…"
            text = "\n".join([f"#{channel}: {title}", *lines])
            try:
                started = datetime.fromtimestamp(float(thread_ts), tz=UTC)
            except ValueError as exc:
                raise ImportProblem(f"{chan_dir}: thread {thread_ts}: ts: not a Slack timestamp") from exc
            found = [s for s in known if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text, re.I)]
            records.append(
                MemoryRecord(
                    id=f"slack:{channel}:{thread_ts}",
                    kind="slack",
                    title=title,
                    text=text,
                    source=f"slack:#{channel}",
                    services=sorted(set(found)),
                    started_at=started,
                    origin=f"slack:{channel}",
                )
            )
    return records


def collect(path: Path, *, services: Iterable[str] = ()) -> tuple[list[MemoryRecord], set[str]]:
    """Records under `path` (a Markdown file, a folder of them, a Slack export folder or .zip) and the
    origins they replace (a re-import of a file drops sections that were removed from it).

    Runbooks and Slack threads come from outside: secrets in them are redacted before they are indexed.
    """
    from firebreak.redact import redact_text

    recs, origins = _collect(path, services=services)
    return [r.model_copy(update={"title": redact_text(r.title), "text": redact_text(r.text),
                                 "root_cause": redact_text(r.root_cause)}) for r in recs], origins


def _collect(path: Path, *, services: Iterable[str] = ()) -> tuple[list[MemoryRecord], set[str]]:
    services = list(services)
    if not path.exists():
        raise ImportProblem(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() in MD_SUFFIXES:
            recs = markdown_records(path, services=services)
            return recs, {str(path.resolve())}
        if path.suffix.lower() == ".zip":
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    with zipfile.ZipFile(path) as zf:
                        zf.extractall(tmp)
                except zipfile.BadZipFile as exc:
                    raise ImportProblem(f"{path}: not a readable zip file") from exc
                root = Path(tmp)
                inner = [p for p in root.iterdir() if p.is_dir()]
                if not is_slack_export(root) and len(inner) == 1 and is_slack_export(inner[0]):
                    root = inner[0]
                if not is_slack_export(root):
                    raise ImportProblem(f"{path}: not a Slack export (no channel folders with day files)")
                recs = slack_records(root, services=services)
                return recs, {r.origin for r in recs if r.origin}
        raise ImportProblem(
            f"{path}: unsupported file type {path.suffix or '(none)'}: give Markdown (.md), a Slack export "
            "folder or .zip (incidents go in with `firebreak incidents import`)"
        )
    records: list[MemoryRecord] = []
    origins: set[str] = set()
    if is_slack_export(path):
        recs = slack_records(path, services=services)
        records += recs
        origins |= {r.origin for r in recs if r.origin}
    for md in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MD_SUFFIXES):
        records += markdown_records(md, root=path, services=services)
        origins.add(str(md.resolve()))
    if not records and not origins:
        raise ImportProblem(f"{path}: nothing to import (no Markdown files, no Slack channel folders)")
    return records, origins
