"""The fix policy: one action per suspect kind from what exists (previous versions, fallback flags,
the owner of an exhausted resource), alternatives in order, and no parameter that the stores do not
know (a service, flag, version or host seen nowhere is refused when the fix is built)."""

from __future__ import annotations

from firebreak.agent.triage import fix_policy, suspects
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.pipeline import build_report
from tests.triage_worlds import T0, at, pattern, pool_world, signals_world


def cands(f: object) -> tuple[Context, dict[tuple[str, str], Candidate]]:
    ctx = Context(f)  # type: ignore[arg-type]
    return ctx, {(c.suspect.kind, c.suspect.ref): c for c in suspects.generate(ctx)}


def flat(c: Candidate, ctx: Context) -> list[dict[str, object]]:
    return [fx.flat() for fx in suspects.fixes_for(c, ctx)]


def test_deploy_rolls_back_to_the_version_it_replaced() -> None:
    ctx, cs = cands(pool_world())
    assert flat(cs[("deploy", "2.0")], ctx)[0] == {"action": "rollback", "service": "api", "to": "1.9"}


def test_a_version_the_stores_never_saw_is_refused_and_a_restart_offered_instead() -> None:
    f = pool_world()
    f.changes[0]["previous_version"] = "1.9; rm -rf /"
    ctx, cs = cands(f)
    c = cs[("deploy", "2.0")]
    assert flat(c, ctx) == [{"action": "restart", "service": "api"}]
    assert any("not a name the stores know" in e.finding for e in c.evidence)


def test_a_service_with_shell_syntax_is_never_an_action_parameter() -> None:
    f = pool_world()
    f.changes.append(
        {"id": 7, "kind": "config", "service": "api`reboot`", "at": at(11), "key": "x", "from_value": 1, "to_value": 2}
    )
    ctx, cs = cands(f)
    assert flat(cs[("config", "x")], ctx) == []


def test_third_party_uses_its_fallback_flag_before_failing_over_the_caller() -> None:
    ctx, cs = cands(pool_world())
    fixes = flat(cs[("dependency", "smsco")], ctx)
    assert fixes[0] == {"action": "enable_flag", "flag": "smsco-fallback-provider"}
    assert {"action": "failover", "service": "web"} in fixes[1:]


def test_third_party_without_a_fallback_flag_fails_over_the_caller_we_run() -> None:
    f = pool_world()
    f.flags = f.flags[1:]
    ctx, cs = cands(f)
    assert flat(cs[("dependency", "smsco")], ctx)[0] == {"action": "failover", "service": "web"}


def test_a_flag_routing_to_the_failing_vendor_is_switched_to_another_variant() -> None:
    f = pool_world()
    f.flags.append(
        {
            "key": "sms-provider",
            "state": "ENABLED",
            "variants": {"smsco": "smsco", "relay": "relay"},
            "default_variant": "smsco",
        }
    )
    ctx, _ = cands(f)
    assert fix_policy.fallback_flag(ctx, "smsco") == ("sms-provider", "set_flag_variant", "relay")


def test_exhaustion_acts_on_the_owner_restart_for_leaks_scale_for_saturation() -> None:
    ctx, cs = cands(pool_world())
    assert flat(cs[("resource", "memory")], ctx)[0] == {"action": "restart", "service": "api"}
    assert flat(cs[("resource", "connections")], ctx)[0] == {"action": "scale", "service": "api"}


def test_flag_switched_on_is_disabled_and_config_is_reverted() -> None:
    ctx, cs = cands(pool_world())
    assert flat(cs[("flag", "web-dark-mode")], ctx)[0] == {"action": "disable_flag", "flag": "web-dark-mode"}
    assert flat(cs[("config", "db.log_level")], ctx)[0] == {
        "action": "revert_config",
        "service": "db",
        "key": "db.log_level",
    }


def test_certificate_data_and_traffic_fixes_name_what_the_logs_name() -> None:
    ctx, cs = cands(signals_world())
    assert flat(cs[("certificate", "ledger.internal.example")], ctx)[0] == {
        "action": "renew_certificate",
        "ref": "ledger.internal.example",
    }
    assert flat(cs[("data", "invoices")], ctx)[0] == {"action": "restore_data", "ref": "invoices"}
    assert flat(cs[("traffic", "bulkbot-7")], ctx)[0] == {
        "action": "block_traffic",
        "service": "gateway",
        "source": "bulkbot-7",
    }


def test_a_campaign_is_scaled_for_not_blocked() -> None:
    f = signals_world()
    f.patterns.append(pattern("gateway", "checkout slow campaign=spring-sale", first=11, level="WARN"))
    ctx, cs = cands(f)
    assert flat(cs[("traffic", "spring-sale")], ctx)[0] == {"action": "scale", "service": "gateway"}


def test_report_proposes_the_top_hypothesis_fix_with_alternatives() -> None:
    report = build_report(pool_world(), update_minutes=30)
    top = report.hypotheses[0]
    assert report.proposed_fix == top.fix
    assert report.proposed_fix is not None
    report.proposed_fix.validate_catalog()
    first = report.proposed_fix
    assert all(fx.action != first.action or fx.parameters != first.parameters for fx in top.alternatives)
    assert report.next_update_due is not None and report.next_update_due > T0
