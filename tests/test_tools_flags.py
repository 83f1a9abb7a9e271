"""Feature flags: flagd file through OpenFeature, history, atomic approval-only actions."""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.context import ToolContext
from firebreak.state.changes import Change
from firebreak.tools.changes import ChangeIn, record_change
from firebreak.tools.flag_store import FlagError, FlagStore, get_flag_store
from firebreak.tools.registry import REGISTRY, ToolError, call_tool, load_tools

AT = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)


@pytest.fixture
def example(ctx: ToolContext, fixtures_dir: Path) -> Path:
    """The flagd project's example file, copied unmodified into the data dir as the flags file."""
    dest = ctx.settings.resolved_flags_file
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fixtures_dir / "flagd-example_flags.flagd.json", dest)
    return dest


def test_actions_are_not_tools() -> None:
    load_tools()
    flag_tools = {n for n, s in REGISTRY.items() if s.family == "flags"}
    assert flag_tools == {"list_flags", "evaluate_flag", "flag_history"}
    assert not {"disable_flag", "enable_flag", "set_flag_variant"} & set(REGISTRY)


def test_fixture_loads_unmodified(fixtures_dir: Path, ctx: ToolContext) -> None:
    src = fixtures_dir / "flagd-example_flags.flagd.json"
    before = src.read_bytes()
    store = FlagStore(src)
    try:
        assert store.evaluate("myBoolFlag")["value"] is True
    finally:
        store.close()
    assert src.read_bytes() == before


def test_list_flags(ctx: ToolContext, example: Path) -> None:
    out = call_tool(ctx, "list_flags", {})
    by_key = {f["key"]: f for f in out["flags"]}
    assert out["total"] == 9 and out["truncated"] is False
    assert by_key["myBoolFlag"] == {
        "key": "myBoolFlag", "state": "ENABLED", "default_variant": "on",
        "variants": {"on": True, "off": False}, "has_targeting": False,
    }
    assert by_key["headerColor"]["has_targeting"] is True
    some = call_tool(ctx, "list_flags", {"search": "color", "limit": 1})
    assert [f["key"] for f in some["flags"]] == ["headerColor"] and some["total"] == 2 and some["truncated"]


@pytest.mark.parametrize(
    ("flag", "context", "value", "variant", "reason"),
    [
        ("myBoolFlag", {}, True, "on", "STATIC"),
        ("myStringFlag", {}, "val1", "key1", "STATIC"),
        ("myIntFlag", {}, 1, "one", "STATIC"),
        ("myFloatFlag", {}, 1.23, "one", "STATIC"),
        ("myObjectFlag", {}, {"key": "val"}, "object1", "STATIC"),
        ("isColorYellow", {"color": "yellow"}, True, "on", "TARGETING_MATCH"),
        ("isColorYellow", {"color": "blue"}, False, "off", "TARGETING_MATCH"),
        ("fibAlgo", {"email": "dev@faas.com"}, "binet", "binet", "TARGETING_MATCH"),  # $ref to $evaluators
        ("fibAlgo", {}, "recursive", "recursive", "DEFAULT"),
        ("targetedFlag", {"email": "me@openfeature.dev"}, "BBB", "second", "TARGETING_MATCH"),
    ],
)
def test_evaluate_flag_through_openfeature(
    ctx: ToolContext, example: Path, flag: str, context: dict[str, object], value: object, variant: str, reason: str
) -> None:
    out = call_tool(ctx, "evaluate_flag", {"flag": flag, "context": context})
    assert (out["value"], out["variant"], out["reason"]) == (value, variant, reason)


def test_fractional_targeting_is_stable(ctx: ToolContext, example: Path) -> None:
    ctx_ = {"email": "someone@faas.com"}
    first = call_tool(ctx, "evaluate_flag", {"flag": "headerColor", "context": ctx_})
    assert first["reason"] == "TARGETING_MATCH" and first["variant"] in {"red", "blue", "green", "yellow"}
    assert call_tool(ctx, "evaluate_flag", {"flag": "headerColor", "context": ctx_}) == first


def test_unknown_flag_and_missing_file(ctx: ToolContext, example: Path) -> None:
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "evaluate_flag", {"flag": "nope"})
    assert exc.value.status == 404 and "unknown flag 'nope'" in exc.value.message and "myBoolFlag" in exc.value.message
    example.unlink()
    assert call_tool(ctx, "list_flags", {})["flags"] == []
    with pytest.raises(ToolError) as gone:
        call_tool(ctx, "evaluate_flag", {"flag": "myBoolFlag"})
    assert gone.value.status == 404 and "unknown flag 'myBoolFlag' (known flags: none)" in gone.value.message


def test_broken_file_is_a_clear_error(ctx: ToolContext, example: Path) -> None:
    example.write_text("{not json")
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "list_flags", {})
    assert exc.value.status == 503 and "not valid flagd" in exc.value.message


def test_seed_validates_and_writes_flagd_format(ctx: ToolContext) -> None:
    store = get_flag_store(ctx)
    store.seed({"mailer-retry-v2": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                    "defaultVariant": "off"}})
    data = json.loads(ctx.settings.resolved_flags_file.read_text())
    assert data["$schema"].startswith("https://flagd.dev/schema")
    assert data["flags"]["mailer-retry-v2"]["defaultVariant"] == "off"
    assert call_tool(ctx, "evaluate_flag", {"flag": "mailer-retry-v2"})["value"] is False
    with pytest.raises(FlagError, match=r"flags\.bad: .*defaultVariant 'x' is not one of the variants"):
        store.seed({"bad": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "x"}})
    with pytest.raises(FlagError, match=r"flags\.bad\.state"):
        store.seed({"bad": {"state": "ON", "variants": {"a": 1}}})
    with pytest.raises(FlagError, match=r"flags\.bad\.colour"):
        store.seed({"bad": {"state": "ENABLED", "variants": {"a": 1}, "colour": "x"}})


def test_actions_write_atomically_keep_history_and_record_changes(ctx: ToolContext, example: Path) -> None:
    store = get_flag_store(ctx)
    assert call_tool(ctx, "evaluate_flag", {"flag": "myBoolFlag"})["value"] is True
    inode_before = example.stat().st_ino

    res = store.apply("disable_flag", "myBoolFlag", actor="U123", at=AT)
    assert res.changed and res.previous and res.previous["state"] == "ENABLED" and res.current["state"] == "DISABLED"
    assert "ENABLED default=on -> DISABLED default=on" in repr(res)
    assert example.stat().st_ino != inode_before  # replaced by rename, not rewritten in place
    assert not [p for p in example.parent.iterdir() if p.name.endswith(".tmp")]
    data = json.loads(example.read_text())
    assert data["flags"]["myBoolFlag"]["state"] == "DISABLED"
    assert data["$evaluators"]["emailWithFaas"]  # the rest of the file is kept
    assert data["flags"]["myBoolFlag"]["metadata"] == {"version": "v2"}

    out = call_tool(ctx, "evaluate_flag", {"flag": "myBoolFlag"})
    assert out["reason"] == "DISABLED" and out["value"] is None and "DISABLED" in out["note"]

    again = store.apply("disable_flag", "myBoolFlag", actor="U123", at=AT)
    assert again.changed is False and "nothing written" in again.message

    store.apply("enable_flag", "myBoolFlag", actor="U123", at=AT + timedelta(minutes=1))
    res3 = store.apply("set_flag_variant", "myBoolFlag", "off", actor="U456", at=AT + timedelta(minutes=2))
    assert res3.change_id is not None
    assert call_tool(ctx, "evaluate_flag", {"flag": "myBoolFlag"})["value"] is False

    hist = store.history_entries()
    assert [h["action"] for h in hist] == ["disable_flag", "enable_flag", "set_flag_variant"]
    assert hist[0]["previous"]["state"] == "ENABLED" and hist[0]["actor"] == "U123"

    with ctx.db.session() as s:
        rows = s.query(Change).filter(Change.kind == "flag").order_by(Change.at).all()
        assert [(r.flag, r.state, r.variant, r.author) for r in rows] == [
            ("myBoolFlag", "DISABLED", "on", "U123"),
            ("myBoolFlag", "ENABLED", "on", "U123"),
            ("myBoolFlag", "ENABLED", "off", "U456"),
        ]
        assert rows[0].from_value["state"] == "ENABLED" and rows[0].source == "approval"

    events = call_tool(ctx, "flag_history", {"flag": "myBoolFlag"})["events"]
    assert [e["variant"] for e in events] == ["off", "on", "on"]  # newest first
    assert (events[0]["previous"], events[0]["previous_state"]) == ("on", "ENABLED")
    assert (events[-1]["previous"], events[-1]["previous_state"]) == ("on", "ENABLED")


def test_action_errors(ctx: ToolContext, example: Path) -> None:
    store = get_flag_store(ctx)
    with pytest.raises(FlagError, match="unknown flag 'ghost'"):
        store.apply("disable_flag", "ghost", actor="u", at=AT)
    with pytest.raises(FlagError, match=r"no variant 'maybe' \(variants: on, off\)"):
        store.apply("set_flag_variant", "myBoolFlag", "maybe", actor="u", at=AT)
    with pytest.raises(FlagError, match="unknown flag action"):
        store.apply("delete_flag", "myBoolFlag", actor="u", at=AT)
    assert store.history_entries() == []


def test_external_edit_is_seen(ctx: ToolContext, example: Path) -> None:
    assert call_tool(ctx, "evaluate_flag", {"flag": "myStringFlag"})["value"] == "val1"
    data = json.loads(example.read_text())
    data["flags"]["myStringFlag"]["defaultVariant"] = "key2"
    tmp = example.with_suffix(".new")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, example)
    assert call_tool(ctx, "evaluate_flag", {"flag": "myStringFlag"})["value"] == "val2"


def test_concurrent_actions_do_not_lose_writes(ctx: ToolContext, example: Path) -> None:
    store = get_flag_store(ctx)
    other = FlagStore(example, ctx=ctx)  # a second process-like writer on the same file
    keys = ["myBoolFlag", "myStringFlag", "myFloatFlag", "myIntFlag", "myObjectFlag", "isColorYellow"]
    errors: list[BaseException] = []

    def run(i: int, key: str) -> None:
        try:
            (store if i % 2 else other).apply("disable_flag", key, actor="u", at=AT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, k)) for i, k in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors
    flags = json.loads(example.read_text())["flags"]
    assert all(flags[k]["state"] == "DISABLED" for k in keys)


def test_flag_history_from_webhooks_infers_previous(ctx: ToolContext) -> None:
    with ctx.db.session() as s:
        for minute, variant in ((0, "off"), (10, "on")):
            record_change(s, ChangeIn(kind="flag", flag="mailer-retry-v2", variant=variant,
                                      at=AT + timedelta(minutes=minute), author="alice"), source="webhook")
    out = call_tool(ctx, "flag_history", {})
    assert [e["variant"] for e in out["events"]] == ["on", "off"]
    assert out["events"][0]["previous"] == "off" and out["events"][0]["previous_state"] is None
    assert out["events"][1]["previous"] is None
    recent = call_tool(ctx, "flag_history", {"since": (AT + timedelta(minutes=5)).isoformat()})
    assert len(recent["events"]) == 1 and recent["total"] == 1
    none = call_tool(ctx, "flag_history", {"flag": "ghost"})
    assert none["events"] == [] and "no recorded change for flag 'ghost'" in none["note"]
