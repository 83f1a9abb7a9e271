"""The flag store: a flagd flag file evaluated through OpenFeature, and the approval-only flag actions.

The file (`FIREBREAK_FLAGS_FILE`, default `flags.flagd.json` in the data dir) is in flagd's own format,
so flagd itself, or any OpenFeature client with the flagd provider in file mode, can watch the same file.
Evaluation goes through the OpenFeature SDK with the flagd provider's FILE resolver (in-process), so an
answer here is the answer an application would get.

Actions (disable, enable, set default variant) are a plain Python API used by `tools.executors` after a
person approved them; they are deliberately not registered as tools (the read-only tools are in
`tools.flags`). Each one rewrites the file atomically (temp file + `os.replace`, under a file lock),
appends the previous definition to a history file next to it, and records a `Change(kind="flag")` with
the previous and new definitions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from firebreak.context import ToolContext

# The one list of flag actions: the agent's action catalog and the executor take it from here.
FlagAction = Literal["disable_flag", "enable_flag", "set_flag_variant"]
FLAG_ACTIONS: tuple[str, ...] = get_args(FlagAction)
SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"


class FlagError(ValueError):
    """A flag action or seed that cannot be carried out (unknown flag or variant, bad definition)."""


class FlagFileError(RuntimeError):
    """The flag file exists but cannot be read as a flagd flag file."""


class FlagDefinition(BaseModel):
    """One flag in flagd's shape; used to validate, never to rewrite (unknown flagd keys are refused,
    as flagd's own parser refuses them)."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["ENABLED", "DISABLED"]
    variants: dict[str, Any] = Field(min_length=1)
    defaultVariant: str | None = None  # noqa: N815 (flagd's spelling)
    targeting: dict[str, Any] | None = None
    metadata: dict[str, str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _default_is_a_variant(self) -> FlagDefinition:
        if self.defaultVariant is not None and self.defaultVariant not in self.variants:
            raise ValueError(
                f"defaultVariant {self.defaultVariant!r} is not one of the variants ({', '.join(self.variants)})"
            )
        return self


def validate_flags(flags: dict[str, Any]) -> None:
    """Raise FlagError naming the flag and field of the first problem."""
    if not isinstance(flags, dict):
        raise FlagError("flags: expected a mapping of flag key to definition")
    for key, definition in flags.items():
        if not isinstance(key, str) or not key:
            raise FlagError(f"flags: flag keys must be non-empty strings, got {key!r}")
        try:
            FlagDefinition.model_validate(definition)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise FlagError(f"flags.{key}{'.' + loc if loc else ''}: {err['msg']}") from None


def _value_type(definition: dict[str, Any]) -> str:
    """The OpenFeature type to resolve with, from the variant values (default variant first)."""
    variants = definition.get("variants") or {}
    values = list(variants.values())
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "float"
    return "object"


_TYPE_DEFAULTS: dict[str, Any] = {"boolean": False, "string": "", "integer": 0, "float": 0.0, "object": {}}


class FlagActionResult(BaseModel):
    """What an approved flag action did; `changed` is false when the flag already was that way."""

    action: str
    flag: str
    changed: bool
    previous: dict[str, Any] | None
    current: dict[str, Any]
    change_id: int | None = None
    message: str

    def __repr__(self) -> str:  # executors put this in the approval result: keep it one short sentence
        return self.message

    __str__ = __repr__


class FlagStore:
    """The flagd file at `path`, an OpenFeature client over it, and atomic, recorded actions."""

    def __init__(self, path: Path, ctx: ToolContext | None = None) -> None:
        self.path = Path(path)
        self.ctx = ctx
        self.history_path = self.path.with_name(self.path.name + ".history.jsonl")
        self._lock = threading.RLock()
        self._domain = f"firebreak-flags-{uuid.uuid4().hex}"
        self._provider: Any = None
        self._provider_sig: tuple[int, int, int] | None = None

    # ----------------------------------------------------------------------------------------- reading

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def read(self) -> dict[str, Any]:
        """The whole flag file as a dict (`{"flags": {}}` when there is no file yet)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"flags": {}}
        except OSError as exc:
            raise FlagFileError(f"flag file {self.path}: {exc.strerror or exc}") from None
        try:
            if self.path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text) if text.strip() else {}
        except (ValueError, ImportError) as exc:
            raise FlagFileError(f"flag file {self.path} is not valid flagd JSON/YAML: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("flags", {}), dict):
            raise FlagFileError(f"flag file {self.path}: expected an object with a 'flags' mapping")
        for key, definition in (data.get("flags") or {}).items():  # shapes every reader relies on
            if not isinstance(definition, dict):
                raise FlagFileError(f"flag file {self.path}: flags.{key}: expected an object (state, variants...)")
            if not isinstance(definition.get("variants") or {}, dict):
                raise FlagFileError(f"flag file {self.path}: flags.{key}.variants: expected a mapping of name to value")
        data.setdefault("flags", {})
        return data

    def flags(self) -> dict[str, dict[str, Any]]:
        return dict(self.read()["flags"])

    def get(self, flag: str) -> dict[str, Any]:
        flags = self.flags()
        if flag not in flags:
            known = ", ".join(sorted(flags)[:30]) or "none"
            raise FlagError(f"unknown flag {flag!r} (known flags: {known})")
        return dict(flags[flag])

    # -------------------------------------------------------------------------------------- evaluating

    def _client(self) -> Any:
        """An OpenFeature client bound to a flagd FILE-mode provider for this file.

        The provider also polls the file, but a store re-creates it whenever the file's signature changed
        so an evaluation right after a write never sees the old flags.
        """
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType

        with self._lock:
            sig = self._signature()
            if sig is None:
                raise FlagError(f"no flag file at {self.path} (no flags defined)")
            if self._provider is None or sig != self._provider_sig:
                provider = FlagdProvider(
                    resolver_type=ResolverType.FILE, offline_flag_source_path=str(self.path), deadline_ms=500
                )
                try:
                    api.set_provider_and_wait(provider, domain=self._domain)
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        provider.shutdown()
                    raise FlagFileError(f"flagd provider could not load {self.path}: {exc}") from None
                self._provider, self._provider_sig = provider, sig
            return api.get_client(domain=self._domain)

    def evaluate(self, flag: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resolve `flag` for an evaluation context the way an application with OpenFeature would."""
        from openfeature.evaluation_context import EvaluationContext

        definition = self.get(flag)
        kind = _value_type(definition)
        attrs = dict(context or {})
        targeting_key = attrs.pop("targetingKey", None) or attrs.pop("targeting_key", None)
        ec = EvaluationContext(
            targeting_key=None if targeting_key is None else str(targeting_key), attributes=attrs
        )
        client = self._client()
        getter = {
            "boolean": client.get_boolean_details, "string": client.get_string_details,
            "integer": client.get_integer_details, "float": client.get_float_details,
            "object": client.get_object_details,
        }[kind]
        details = getter(flag, _TYPE_DEFAULTS[kind], ec)
        reason = str(getattr(details.reason, "value", details.reason) or "UNKNOWN")
        error = getattr(details.error_code, "value", details.error_code)
        out: dict[str, Any] = {
            "flag": flag, "value": details.value, "variant": details.variant, "reason": reason,
            "state": definition.get("state"), "type": kind, "error": None, "note": "",
        }
        if reason == "DISABLED":
            out["value"] = None
            out["note"] = "flag is DISABLED: applications get the default value written in their code"
        elif error:
            out["value"] = None
            out["error"] = f"{error}: {details.error_message or ''}".strip().rstrip(":")
        return out

    # ---------------------------------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise read-modify-write across threads and processes (approvals, drills, CLI)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        """Atomic replace: a reader (flagd, a provider's poll) sees the old file or the new one, never half."""
        if self.path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        else:
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def seed(self, flags: dict[str, Any], *, metadata: dict[str, Any] | None = None) -> None:
        """Write the whole flag file from a scenario's `flags` mapping (drills, demo); validated first."""
        validate_flags(flags)
        data: dict[str, Any] = {"$schema": SCHEMA_URL}
        if metadata:
            data["metadata"] = metadata
        data["flags"] = json.loads(json.dumps(flags))
        with self._file_lock():
            self._write(data)

    def apply(
        self,
        action: str,
        flag: str,
        variant: str | None = None,
        *,
        actor: str,
        at: datetime,
        note: str = "",
        source: str = "approval",
        session: Session | None = None,
    ) -> FlagActionResult:
        """Carry out one approved flag action; only `tools.executors` (and drills) should call this."""
        if action not in FLAG_ACTIONS:
            raise FlagError(f"unknown flag action {action!r} ({', '.join(FLAG_ACTIONS)})")
        if at.tzinfo is None:
            raise FlagError("at: timestamp has no timezone")
        with self._file_lock():
            data = self.read()
            flags = data["flags"]
            if flag not in flags:
                known = ", ".join(sorted(flags)[:30]) or "none"
                raise FlagError(f"unknown flag {flag!r} (known flags: {known})")
            previous = dict(flags[flag])
            current = dict(previous)
            if action == "disable_flag":
                current["state"] = "DISABLED"
            elif action == "enable_flag":
                current["state"] = "ENABLED"
            else:
                if variant is None:
                    raise FlagError("set_flag_variant needs a variant")
                names = list(previous.get("variants") or {})
                if variant not in names:
                    raise FlagError(f"flag {flag!r} has no variant {variant!r} (variants: {', '.join(names)})")
                current["defaultVariant"] = variant
            if current == previous:
                return FlagActionResult(
                    action=action, flag=flag, changed=False, previous=previous, current=current,
                    message=f"flag {flag} already {self._describe(current)}: nothing written",
                )
            validate_flags({flag: current})
            flags[flag] = current
            self._write(data)
            self._append_history(
                {"at": at.astimezone(UTC).isoformat(), "actor": actor, "action": action, "flag": flag,
                 "previous": previous, "current": current, "note": note}
            )
        message = f"flag {flag}: {self._describe(previous)} -> {self._describe(current)}"
        if action == "set_flag_variant" and current.get("targeting"):
            message += " (targeting rules still apply; the default variant serves contexts they do not match)"
        change_id = self._record(flag, previous, current, action, actor, at, note, source, session)
        return FlagActionResult(
            action=action, flag=flag, changed=True, previous=previous, current=current,
            change_id=change_id, message=message,
        )

    def disable(self, flag: str, *, actor: str, at: datetime, **kw: Any) -> FlagActionResult:
        return self.apply("disable_flag", flag, actor=actor, at=at, **kw)

    def enable(self, flag: str, *, actor: str, at: datetime, **kw: Any) -> FlagActionResult:
        return self.apply("enable_flag", flag, actor=actor, at=at, **kw)

    def set_variant(self, flag: str, variant: str, *, actor: str, at: datetime, **kw: Any) -> FlagActionResult:
        return self.apply("set_flag_variant", flag, variant, actor=actor, at=at, **kw)

    @staticmethod
    def _describe(definition: dict[str, Any]) -> str:
        return f"{definition.get('state')} default={definition.get('defaultVariant')}"

    def _append_history(self, entry: dict[str, Any]) -> None:
        with open(self.history_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def history_entries(self) -> list[dict[str, Any]]:
        """The file-side history: every definition this store replaced, oldest first."""
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def _record(
        self, flag: str, previous: dict[str, Any], current: dict[str, Any], action: str, actor: str,
        at: datetime, note: str, source: str, session: Session | None,
    ) -> int | None:
        from firebreak.tools.changes import ChangeIn, record_change

        change = ChangeIn(
            kind="flag", flag=flag, variant=current.get("defaultVariant"), state=current.get("state"),
            at=at, author=actor, note=(note or f"{action} ({source})"),
        )
        change.from_value, change.to_value = previous, current
        if session is not None:
            return record_change(session, change, source=source, now=at).id
        if self.ctx is None:
            return None
        with self.ctx.db.session() as s:
            return record_change(s, change, source=source, now=at).id

    def close(self) -> None:
        with self._lock:
            if self._provider is None:
                return
            from openfeature import api
            from openfeature.provider.no_op_provider import NoOpProvider

            with contextlib.suppress(Exception):
                api.set_provider(NoOpProvider(), domain=self._domain)
            with contextlib.suppress(Exception):
                self._provider.shutdown()
            self._provider = None
            self._provider_sig = None


def get_flag_store(ctx: ToolContext) -> FlagStore:
    """The context's flag store over `settings.resolved_flags_file` (opened once per context)."""
    return ctx.resource("flag_store", lambda: FlagStore(ctx.settings.resolved_flags_file, ctx=ctx))
