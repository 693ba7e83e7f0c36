"""Webhooks (SPEC §9, Standard Webhooks v1): the endpoints a user registers, their
deliveries, signing, and the operations the API and the console share.

A member's webhook gets the events a member sees (their own: `events.user_id`); an
admin's, all of them. The sender (app/events/sender.py) turns events into delivery rows
and sends them; everything here is the stored side.

The secret is `whsec_` + base64 of 24 random bytes, shown only on creation and rotation.
It is a signing key, not a password: HMAC needs the key itself, so it is stored as it is
(recoverable), as every Standard Webhooks sender does; a database reader could sign as
us, which is why it is never in an API answer but those two. After a rotation the old
secret keeps signing beside the new one for 24 h (`webhook-signature` then carries two
space-separated `v1,` signatures), so receivers can switch without losing a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import aiosqlite
import msgspec
from prometheus_client import Gauge

from app.db import Database, fetch_all, fetch_one, isoformat
from app.errors import Conflict, Invalid, NotFound
from app.events import url_guard
from app.events.events import EVENT_TYPES
from app.fields import ShortText

SECRET_PREFIX = "whsec_"
ROTATION_OVERLAP = timedelta(hours=24)
MAX_WEBHOOKS = 25  # per account: each is a fan-out target for every event
RESPONSE_KEPT = 1024  # bytes of a receiver's answer kept in the delivery log
TEST_TYPE = "webhook.test"

# --- structs -------------------------------------------------------------------------

EventList = Annotated[list[str], msgspec.Meta(min_length=1, max_length=len(EVENT_TYPES),
                                              examples=[["card.created", "lead.captured"], ["*"]])]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=url_guard.MAX_URL, examples=["https://crm.example.com/hooks/qr"])]


class NewWebhook(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    url: Url
    events: EventList
    description: ShortText | None = None


class WebhookChanges(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: EventList | msgspec.UnsetType = msgspec.UNSET
    description: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Webhook(msgspec.Struct, rename="camel"):
    webhook_id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    # Why it was disabled by the sender (a 410, five days of failures); None otherwise.
    disabled_reason: str | None
    failing_since: str | None
    last_success_at: str | None
    created_at: str
    updated_at: str


class CreatedWebhook(msgspec.Struct, rename="camel"):
    webhook_id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: str
    secret: str  # shown only here and on rotation


class RotatedSecret(msgspec.Struct, rename="camel"):
    webhook_id: str
    secret: str
    previous_secret_expires_at: str


class Delivery(msgspec.Struct, rename="camel"):
    delivery_id: str
    message_id: str  # the webhook-id header, the same on every attempt
    type: str
    status: str  # pending, succeeded, failed
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    latency_ms: int | None
    response_status: int | None
    response_body: str | None  # the first 1 KB of the receiver's answer
    last_error: str | None
    created_at: str


class DeliveryPage(msgspec.Struct, rename="camel"):
    items: list[Delivery]
    next_cursor: str | None


# --- signing -------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed by the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers, with one signature per secret still signing."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_),
    }


def retry_delay(schedule: tuple[int, ...], attempts: int) -> int | None:
    """Seconds to wait after the `attempts`-th failed attempt; None once the schedule is spent."""
    return schedule[attempts - 1] if 1 <= attempts <= len(schedule) else None


def body_of(type: str, timestamp: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": type, "timestamp": timestamp, "data": data}, separators=(",", ":"), ensure_ascii=False)


# --- validation ----------------------------------------------------------------------


def checked_events(events: list[str]) -> list[str]:
    """The event filter: known types, or ["*"]. Raises Invalid (field `events`)."""
    if "*" in events:
        if events != ["*"]:
            raise _invalid("events", 'use ["*"] alone for every type')
        return events
    unknown = sorted({event for event in events if event not in EVENT_TYPES})
    if unknown:
        raise _invalid("events", f"unknown event types: {', '.join(unknown)}")
    return list(dict.fromkeys(events))


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f"{field} {message}", [{"field": field, "message": message, "source": "body"}])


# Read when /metrics is scraped (app/ops/monitoring.py), for the QRContactWebhookDisabled alert.
DISABLED = Gauge(
    "webhooks_disabled",
    "Webhook endpoints the service disabled (410 Gone, or every delivery failed for 5 days) and nobody has enabled or deleted since",
)


# --- SQL -----------------------------------------------------------------------------

WEBHOOK_COLUMNS = (
    "webhook_id, url, events, description, enabled, disabled_reason, failing_since, last_success_at, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "d.id, d.delivery_id, d.message_id, d.type, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.latency_ms, "
    "d.response_status, d.response_body, d.last_error, d.created_at"
)


def webhook_of(row: Any) -> Webhook:
    return Webhook(**{**dict(row), "events": json.loads(row["events"]), "enabled": bool(row["enabled"])})


def delivery_of(row: Any) -> Delivery:
    values = dict(row)
    values.pop("id")
    if values["status"] != "pending":
        values["next_attempt_at"] = None
    return Delivery(**values)


async def select_webhooks(conn: aiosqlite.Connection, user_id: str) -> list[Webhook]:
    rows = await fetch_all(conn, f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE user_id = ? ORDER BY id DESC", (user_id,))
    return [webhook_of(row) for row in rows]


async def select_webhook(conn: aiosqlite.Connection, user_id: str, webhook_id: str) -> Webhook | None:
    row = await fetch_one(conn, f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ? AND user_id = ?",
                          (webhook_id, user_id))
    return webhook_of(row) if row else None


async def webhook_row_id(conn: aiosqlite.Connection, user_id: str, webhook_id: str) -> int:
    row = await fetch_one(conn, "SELECT id FROM webhooks WHERE webhook_id = ? AND user_id = ?", (webhook_id, user_id))
    if row is None:
        raise NotFound("no such webhook")
    return row["id"]


async def insert_delivery(conn: aiosqlite.Connection, webhook: int, message_id: str, type: str, body: str, now: str) -> str:
    delivery_id = uuid.uuid4().hex
    await conn.execute(
        """INSERT INTO webhook_deliveries (delivery_id, webhook, message_id, type, body, next_attempt_at, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (delivery_id, webhook, message_id, type, body, now, now),
    )
    return delivery_id


async def select_deliveries(conn: aiosqlite.Connection, webhook: int, limit: int, before_id: int) -> list[tuple[int, Delivery]]:
    rows = await fetch_all(
        conn,
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook = ? AND d.id < ? ORDER BY d.id DESC LIMIT ?",
        (webhook, before_id, limit),
    )
    return [(row["id"], delivery_of(row)) for row in rows]


async def select_delivery(conn: aiosqlite.Connection, webhook: int, delivery_id: str) -> Delivery | None:
    row = await fetch_one(
        conn, f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook = ? AND d.delivery_id = ?",
        (webhook, delivery_id),
    )
    return delivery_of(row) if row else None


# --- operations ----------------------------------------------------------------------


async def create_webhook(db: Database, user_id: str, new: NewWebhook, allow_private: bool) -> CreatedWebhook:
    """A new enabled webhook and its secret (shown only in this answer). Raises Invalid (a
    refused URL or event type) and Conflict (past MAX_WEBHOOKS)."""
    events = checked_events(new.events)
    await url_guard.check(new.url, allow_private)
    async with db.write() as tx:
        row = await fetch_one(tx.conn, "SELECT count(*) AS n FROM webhooks WHERE user_id = ?", (user_id,))
        if row["n"] >= MAX_WEBHOOKS:
            raise Conflict(f"an account has at most {MAX_WEBHOOKS} webhooks; delete one first")
        created = CreatedWebhook(webhook_id=uuid.uuid4().hex, url=new.url, events=events, description=new.description,
                                 enabled=True, created_at=tx.now_text, secret=new_secret())
        await tx.conn.execute(
            """INSERT INTO webhooks (webhook_id, user_id, url, events, description, secret, after_event, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM events), ?, ?)""",
            (created.webhook_id, user_id, new.url, json.dumps(events), new.description, created.secret, tx.now_text, tx.now_text),
        )
    return created


async def webhooks_of(db: Database, user_id: str) -> list[Webhook]:
    async with db.read() as conn:
        return await select_webhooks(conn, user_id)


async def webhook_of_user(db: Database, user_id: str, webhook_id: str) -> Webhook:
    """Raises NotFound (none, or another account's)."""
    async with db.read() as conn:
        webhook = await select_webhook(conn, user_id, webhook_id)
    if webhook is None:
        raise NotFound("no such webhook")
    return webhook


async def change_webhook(db: Database, user_id: str, webhook_id: str, changes: WebhookChanges, allow_private: bool,
                         wake: Callable[[], None] | None = None) -> Webhook:
    """Raises NotFound and Invalid. Enabling an endpoint clears why it was disabled and its
    failure streak, makes what waited due now and calls `wake` (the sender's) after commit."""
    sets: dict[str, Any] = {}
    if changes.url is not msgspec.UNSET:
        await url_guard.check(changes.url, allow_private)
        sets["url"] = changes.url
    if changes.events is not msgspec.UNSET:
        sets["events"] = json.dumps(checked_events(changes.events))
    if changes.description is not msgspec.UNSET:
        sets["description"] = changes.description
    if changes.enabled is not msgspec.UNSET:
        sets["enabled"] = int(changes.enabled)
        if changes.enabled:
            sets["disabled_reason"] = None
            sets["failing_since"] = None
    async with db.write() as tx:
        await webhook_row_id(tx.conn, user_id, webhook_id)
        sets["updated_at"] = tx.now_text
        if sets.get("enabled"):
            # Turned on (again): it gets the events from now on, not those while it was off
            # (when it was off already; a PATCH that leaves it on changes nothing here).
            await tx.conn.execute(
                """UPDATE webhooks SET after_event = (SELECT coalesce(max(id), 0) FROM events)
                WHERE webhook_id = ? AND user_id = ? AND enabled = 0""",
                (webhook_id, user_id),
            )
        # Column names come from the fixed keys above, never from the request.
        assignments = ", ".join(f"{column} = :{column}" for column in sets)
        await tx.conn.execute(
            f"UPDATE webhooks SET {assignments} WHERE webhook_id = :webhook_id AND user_id = :user_id",
            {**sets, "webhook_id": webhook_id, "user_id": user_id},
        )
        if sets.get("enabled"):
            # Deliveries that waited while it was off are due now.
            await tx.conn.execute(
                """UPDATE webhook_deliveries SET next_attempt_at = ? WHERE status = 'pending'
                AND webhook = (SELECT id FROM webhooks WHERE webhook_id = ?) AND next_attempt_at > ?""",
                (tx.now_text, webhook_id, tx.now_text),
            )
            if wake is not None:
                tx.after_commit(wake)
        webhook = await select_webhook(tx.conn, user_id, webhook_id)
    assert webhook is not None
    return webhook


async def delete_webhook(db: Database, user_id: str, webhook_id: str) -> None:
    """Delete the webhook and its delivery log. Raises NotFound."""
    async with db.write() as tx:
        cursor = await tx.conn.execute("DELETE FROM webhooks WHERE webhook_id = ? AND user_id = ?", (webhook_id, user_id))
    if cursor.rowcount != 1:
        raise NotFound("no such webhook")


async def rotate_secret(db: Database, user_id: str, webhook_id: str) -> RotatedSecret:
    """A new secret; the current one keeps signing beside it for ROTATION_OVERLAP. Raises NotFound."""
    secret = new_secret()
    async with db.write() as tx:
        await webhook_row_id(tx.conn, user_id, webhook_id)
        until = isoformat(tx.now + ROTATION_OVERLAP)
        await tx.conn.execute(
            """UPDATE webhooks SET previous_secret = secret, previous_secret_until = ?, secret = ?, updated_at = ?
            WHERE webhook_id = ? AND user_id = ?""",
            (until, secret, tx.now_text, webhook_id, user_id),
        )
    return RotatedSecret(webhook_id=webhook_id, secret=secret, previous_secret_expires_at=until)


async def send_test(db: Database, user_id: str, webhook_id: str, wake: Callable[[], None]) -> Delivery:
    """Queue a `webhook.test` message to the endpoint (even a disabled one is not sent
    until enabled), due now; `wake` (the sender's) is called once it is committed. Raises NotFound."""
    async with db.write() as tx:
        webhook = await webhook_row_id(tx.conn, user_id, webhook_id)
        message_id = "msg_" + db.next_event_id(tx.now)
        body = body_of(TEST_TYPE, tx.now_text, {"webhookId": webhook_id, "message": "A test message from QR Contact."})
        delivery_id = await insert_delivery(tx.conn, webhook, message_id, TEST_TYPE, body, tx.now_text)
        delivery = await select_delivery(tx.conn, webhook, delivery_id)
        tx.after_commit(wake)
    assert delivery is not None
    return delivery


async def retry_delivery(db: Database, user_id: str, webhook_id: str, delivery_id: str, wake: Callable[[], None]) -> Delivery:
    """Make a delivery due now: one more attempt, with the same webhook-id. Raises NotFound,
    and Conflict when it has succeeded already."""
    async with db.write() as tx:
        webhook = await webhook_row_id(tx.conn, user_id, webhook_id)
        delivery = await select_delivery(tx.conn, webhook, delivery_id)
        if delivery is None:
            raise NotFound("no such delivery")
        if delivery.status == "succeeded":
            raise Conflict("this delivery has succeeded already")
        await tx.conn.execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ? WHERE webhook = ? AND delivery_id = ?",
            (tx.now_text, webhook, delivery_id),
        )
        delivery = await select_delivery(tx.conn, webhook, delivery_id)
        tx.after_commit(wake)
    assert delivery is not None
    return delivery


async def deliveries_of(db: Database, user_id: str, webhook_id: str, limit: int, before_id: int) -> list[tuple[int, Delivery]]:
    """Newest first. Raises NotFound."""
    async with db.read() as conn:
        webhook = await webhook_row_id(conn, user_id, webhook_id)
        return await select_deliveries(conn, webhook, limit, before_id)


def signing_secrets(secret: str, previous: str | None, previous_until: str | None, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one within its 24 h."""
    return [secret, previous] if previous and previous_until and previous_until > isoformat(now) else [secret]


async def count_disabled(conn: aiosqlite.Connection) -> int:
    """Endpoints the sender disabled (it gives a reason; an owner's own switch-off does not)."""
    row = await fetch_one(conn, "SELECT count(*) FROM webhooks WHERE enabled = 0 AND disabled_reason IS NOT NULL")
    return int(row[0]) if row else 0


async def refresh_gauges(db: Database) -> None:
    async with db.read() as conn:
        DISABLED.set(await count_disabled(conn))
