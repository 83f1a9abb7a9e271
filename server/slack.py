"""Slack: the Web API calls Firebreak makes, and `POST /slack/interactions` for Approve/Reject clicks.

Web API calls go through slack_sdk's WebClient with `base_url = FIREBREAK_SLACK_API_URL` when set (tests
point it at a local fake). A failed call is logged and reported as None/False, never raised: Slack being
down must not stop an approval, which then waits on the web page and the CLI.

Interactions are checked with slack_sdk's SignatureVerifier (v0, 5-minute window, against the context's
clock), acknowledged at once and worked on in a background task, as Slack wants an answer within 3 s.
Only a signed click from a user id in FIREBREAK_APPROVERS decides anything (see server.approvals.decide).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firebreak.context import ToolContext
from firebreak.redact import redact_obj, redact_text
from firebreak.server import slack_blocks as sb
from firebreak.server.deps import Ctx
from firebreak.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()
SLACK_API_URL = "https://slack.com/api/"
WEB_TIMEOUT_SECONDS = 10


# ------------------------------------------------------------------------------------------ Web API


def slack_enabled(settings: Settings) -> bool:
    """Posting needs both a bot token and a channel; otherwise approvals go to the web page and CLI."""
    return settings.slack_bot_token is not None and bool(settings.slack_channel)


def client(settings: Settings) -> Any:
    """A WebClient for the configured workspace (imported lazily: the CLI need not load slack_sdk)."""
    from slack_sdk import WebClient

    base = settings.slack_api_url or SLACK_API_URL
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=base if base.endswith("/") else base + "/",
                     timeout=WEB_TIMEOUT_SECONDS)


def post(
    settings: Settings, *, text: str, blocks: list[dict[str, Any]] | None = None,
    thread_ts: str | None = None, broadcast: bool = False, channel: str | None = None,
) -> tuple[str, str] | None:
    """chat.postMessage; returns (channel id, ts) or None when Slack is off or refused."""
    if not slack_enabled(settings):
        return None
    # Slack is a way out: whatever the message quotes (titles, notes, evidence) is redacted here too.
    kwargs: dict[str, Any] = {"channel": channel or settings.slack_channel, "text": redact_text(text)}
    if blocks:
        kwargs["blocks"] = redact_obj(blocks)
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
        if broadcast:
            kwargs["reply_broadcast"] = True
    try:
        resp = client(settings).chat_postMessage(**kwargs)
    except Exception as exc:  # SlackApiError, connection errors: logged, the flow goes on without Slack
        log.warning("Slack chat.postMessage failed: %s", exc)
        return None
    return str(resp.get("channel") or kwargs["channel"]), str(resp["ts"])


def update(settings: Settings, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> bool:
    """chat.update of a message Firebreak posted (the approval request after its decision)."""
    if not slack_enabled(settings):
        return False
    try:
        client(settings).chat_update(channel=channel, ts=ts, text=redact_text(text), blocks=redact_obj(blocks))
    except Exception as exc:
        log.warning("Slack chat.update failed: %s", exc)
        return False
    return True


def ephemeral(
    settings: Settings, *, user: str, text: str, channel: str | None, response_url: str | None,
    thread_ts: str | None = None,
) -> bool:
    """A message only `user` sees: chat.postEphemeral when we can, else the click's response_url."""
    text = redact_text(text)
    if settings.slack_bot_token is not None and channel:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            client(settings).chat_postEphemeral(**kwargs)
            return True
        except Exception as exc:
            log.warning("Slack chat.postEphemeral failed: %s", exc)
    if response_url:
        try:
            r = httpx.post(response_url, json={"response_type": "ephemeral", "replace_original": False,
                                               "text": text}, timeout=WEB_TIMEOUT_SECONDS)
            return r.is_success
        except httpx.HTTPError as exc:
            log.warning("Slack response_url failed: %s", exc)
    return False


# ------------------------------------------------------------------------------------- interactions


class _ClockAdapter:
    """SignatureVerifier wants `now() -> float`; drills run on a simulated clock."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx

    def now(self) -> float:
        return self._ctx.clock.now().timestamp()


def verify_signature(ctx: ToolContext, body: bytes, headers: dict[str, str]) -> bool:
    from slack_sdk.signature import SignatureVerifier

    secret = ctx.settings.slack_signing_secret
    if secret is None or not secret.get_secret_value().strip():
        return False
    verifier = SignatureVerifier(secret.get_secret_value(), clock=_ClockAdapter(ctx))  # type: ignore[arg-type]
    try:
        return verifier.is_valid_request(body, headers)
    except (ValueError, TypeError):  # a timestamp that is not a number
        return False


class SlackUser(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)


class SlackAction(BaseModel):
    model_config = ConfigDict(extra="allow")
    action_id: str
    value: str | None = None


class SlackChannel(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class SlackContainer(BaseModel):
    model_config = ConfigDict(extra="allow")
    channel_id: str | None = None
    message_ts: str | None = None


class SlackMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    ts: str | None = None
    thread_ts: str | None = None


class BlockActions(BaseModel):
    """The parts of a `block_actions` payload Firebreak reads."""

    model_config = ConfigDict(extra="allow")
    type: str
    user: SlackUser
    actions: list[SlackAction] = Field(default_factory=list)
    channel: SlackChannel | None = None
    container: SlackContainer | None = None
    message: SlackMessage | None = None
    response_url: str | None = None

    @property
    def channel_id(self) -> str | None:
        if self.channel is not None:
            return self.channel.id
        return self.container.channel_id if self.container else None

    @property
    def thread_ts(self) -> str | None:
        if self.message is not None:
            return self.message.thread_ts
        return None


def parse_payload(body: bytes) -> dict[str, Any]:
    """The form field `payload` as JSON; HTTPException 400 naming the problem otherwise."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPException(400, detail="body: not UTF-8 form data") from None
    raw = form.get("payload")
    if not raw:
        raise HTTPException(400, detail="payload: missing form field")
    from firebreak.server.guard import JSONLimitError, loads_limited

    try:  # bounded: nesting and huge numbers in a signed payload are a 400, not a crash
        data = loads_limited(raw[0])
    except JSONLimitError as exc:
        raise HTTPException(400, detail=f"payload: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(400, detail="payload: expected a JSON object")
    return data


@router.post("/slack/interactions")
async def interactions(request: Request, background: BackgroundTasks,
                       ctx: Ctx) -> Response:
    """Slack interactivity endpoint: verify, acknowledge at once, decide in the background."""
    if ctx.settings.slack_signing_secret is None:
        log.info("refused Slack interaction (401): FIREBREAK_SLACK_SIGNING_SECRET is not set")
        raise HTTPException(401, detail="Slack interactions disabled: set FIREBREAK_SLACK_SIGNING_SECRET")
    body = await request.body()
    if not verify_signature(ctx, body, dict(request.headers)):
        log.info("refused Slack interaction (401): missing, wrong or stale X-Slack-Signature")
        raise HTTPException(401, detail="missing, wrong or stale Slack signature (X-Slack-Signature)")
    data = parse_payload(body)
    if data.get("type") != "block_actions":
        return Response(status_code=200)  # other interaction types are acknowledged and ignored
    try:
        payload = BlockActions.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise HTTPException(400, detail=f"payload.{loc}: {err['msg']}") from None
    retry = request.headers.get("x-slack-retry-num")
    background.add_task(handle_block_actions, ctx, payload, bool(retry))
    return Response(status_code=200)


def handle_block_actions(ctx: ToolContext, payload: BlockActions, is_retry: bool = False) -> None:
    """Turn each clicked Firebreak button into a decision; tell the clicker when nothing happened."""
    from firebreak.server.approvals import decide

    user = payload.user.id

    def tell(text: str) -> None:
        ephemeral(ctx.settings, user=user, text=text, channel=payload.channel_id,
                  response_url=payload.response_url, thread_ts=payload.thread_ts)

    for action in payload.actions:
        if action.action_id not in sb.ACTION_IDS:
            tell(f"Unknown action `{action.action_id}`: this button is not one Firebreak knows, nothing was done.")
            continue
        value = (action.value or "").strip()
        if action.action_id == sb.ACTION_CLOSE:
            from firebreak.server.updates import close_from_slack

            answer = close_from_slack(ctx, user, value) if value else "The Close button carried no incident id."
            if answer:
                tell(answer)
            continue
        choice = None
        if action.action_id == sb.ACTION_APPROVE_ALT:
            value, _, choice = value.partition(sb.ALT_SEPARATOR)
        if not value:
            tell(f"Action `{action.action_id}` carried no approval id: nothing was done.")
            continue
        decision = "reject" if action.action_id == sb.ACTION_REJECT else "approve"
        try:
            outcome = decide(ctx, value, user=user, decision=decision, via="slack", choice=choice or None,
                             auth="slack_signature")
        except Exception:
            log.exception("decision on %s failed", value)
            tell(f"Firebreak could not record your decision on `{value}` (internal error); "
                 "use the web page or `firebreak approvals`.")
            continue
        if not outcome.ok and not (is_retry and outcome.code == "already_decided"):
            tell(outcome.message)
