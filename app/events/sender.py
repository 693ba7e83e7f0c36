"""The webhook sender (SPEC §9): one task per app, started and stopped by its lifespan, that
turns events into delivery rows and sends the due ones.

Durable, at least once. The fan-out reads the events after `webhook_cursor.last_event`
and, in one transaction, inserts a delivery row for each enabled webhook that sees the
event and moves the cursor past it: a crash either did all of that or none. Sending
changes nothing before the attempt; its outcome is written after it (with the others that
ended meanwhile, one transaction for them all), so a delivery in flight when the process
dies is still pending and is sent again (same webhook-id: the receiver dedupes). Nothing
polls: the task sleeps until the EventBell rings (new events), something wakes it (a test
message, a retry, a freed slot), or the next retry is due.

Bounded: at most PER_ENDPOINT attempts in flight per endpoint and IN_ALL in all, so a slow
receiver holds only its own slots. Each attempt goes to the address the SSRF guard has
just checked (app/events/url_guard.py), on a connection kept per receiver
(app/events/http_post.py), with a 10 s limit on the whole exchange, and never follows a
redirect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import __version__, mail
from app.config import Settings
from app.db import Database, Tx, fetch_all, fetch_one, isoformat
from app.errors import Invalid
from app.events import url_guard
from app.events.events import EventBell
from app.events.http_post import Answer, KeptConnections
from app.events.url_guard import Target
from app.events.webhooks import RESPONSE_KEPT, retry_delay, signed_headers, signing_secrets

log = logging.getLogger("app.events.webhooks")
PER_ENDPOINT = 8  # a receiver 1 ms away takes about 1,000 messages a second (bench/webhooks.py)
IN_ALL = 64
TIMEOUT = 10.0
FAN_OUT_BATCH = 500
GIVE_UP_AFTER = timedelta(days=5)  # of failures since the last success: the endpoint is disabled
IDLE = 3600.0  # nothing due: look again after this long anyway (a clock that jumped, a lost wake)
TIDY_EVERY = 3600.0  # seconds between deletions of old finished deliveries
TIDY_BATCH = 500
RECORD_FAILED_PAUSE = 5.0  # seconds an attempt whose outcome could not be written keeps its slot


# An attempt's outcome: (response status, first 1 KB of the answer, error, latency in ms).
Outcome = tuple[int | None, str | None, str | None, int]


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    webhook: int
    url: str
    message_id: str
    body: str
    attempts: int
    secret: str
    previous_secret: str | None
    previous_secret_until: str | None


# --- SQL -----------------------------------------------------------------------------


async def fan_out_batch(tx: Tx) -> int:
    """Turn up to FAN_OUT_BATCH events past the cursor into deliveries and move the cursor,
    in the caller's transaction; returns how many events were handed out."""
    hooks = await fetch_all(
        tx.conn,
        """SELECT w.id, w.user_id, w.events, w.after_event, u.is_admin FROM webhooks w JOIN users u USING (user_id)
        WHERE w.enabled = 1 AND u.deactivated_at IS NULL""",
    )
    (cursor,) = await (await tx.conn.execute("SELECT last_event FROM webhook_cursor WHERE id = 1")).fetchone()
    # No event at or before the oldest webhook's start goes anywhere: skip them unread.
    start = max(cursor, min((hook["after_event"] for hook in hooks), default=cursor))
    events = await fetch_all(
        tx.conn, "SELECT id, event_id, type, occurred_at, user_id, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (start, FAN_OUT_BATCH),
    )
    if not events:
        if start > cursor:
            await tx.conn.execute("UPDATE webhook_cursor SET last_event = ? WHERE id = 1", (start,))
        return 0
    filters = [(hook["id"], hook["user_id"], bool(hook["is_admin"]), _types(hook["events"]), hook["after_event"]) for hook in hooks]
    rows = []
    for event in events:
        body = None
        for webhook, owner, is_admin, types, after_event in filters:
            if event["id"] > after_event and (is_admin or event["user_id"] == owner) and (types is None or event["type"] in types):
                body = body or spliced_body(event["type"], event["occurred_at"], event["data"])
                rows.append((_delivery_id(), webhook, "msg_" + event["event_id"], event["type"], body, tx.now_text, tx.now_text))
    if rows:
        await tx.conn.executemany(
            """INSERT INTO webhook_deliveries (delivery_id, webhook, message_id, type, body, next_attempt_at, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )
    await tx.conn.execute("UPDATE webhook_cursor SET last_event = ? WHERE id = 1", (events[-1]["id"],))
    return len(events)


def spliced_body(type: str, timestamp: str, data: str) -> str:
    """`body_of` for data stored as JSON already: spliced in, not parsed and dumped again."""
    return f'{{"type":{json.dumps(type)},"timestamp":{json.dumps(timestamp)},"data":{data}}}'


def _types(stored: str) -> frozenset[str] | None:
    types = json.loads(stored)
    return None if types == ["*"] else frozenset(types)


def _delivery_id() -> str:
    return uuid.uuid4().hex


async def select_due(conn, now: str, per_endpoint: int) -> list[Due]:
    """The oldest due deliveries of each enabled endpoint, at most 2 × `per_endpoint` of each
    (those in flight among them): one index seek per endpoint, however long a backlog is
    (CROSS JOIN keeps the webhooks outside; the planner would otherwise scan every delivery)."""
    rows = await fetch_all(
        conn,
        """SELECT d.id, d.webhook, w.url, d.message_id, d.body, d.attempts, w.secret, w.previous_secret, w.previous_secret_until
        FROM webhooks w CROSS JOIN webhook_deliveries d ON d.id IN (
            SELECT id FROM webhook_deliveries WHERE webhook = w.id AND status = 'pending' AND next_attempt_at <= :now
            ORDER BY next_attempt_at, id LIMIT :each)
        WHERE w.enabled = 1 ORDER BY d.next_attempt_at, d.id""",
        {"now": now, "each": 2 * per_endpoint},
    )
    return [Due(**{key: row[key] for key in Due.__slots__}) for row in rows]


async def delete_finished(conn, before: str) -> int:
    """Delete up to TIDY_BATCH finished deliveries made before `before` (ids follow creation)."""
    cursor = await conn.execute(
        """DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
        WHERE created_at < ? AND status != 'pending' ORDER BY id LIMIT ?)""",
        (before, TIDY_BATCH),
    )
    return cursor.rowcount


async def next_due_at(conn, now: str) -> str | None:
    """When the next delivery waiting for a retry of an enabled endpoint is due (the index in time order)."""
    row = await fetch_one(
        conn,
        """SELECT d.next_attempt_at AS due FROM webhook_deliveries d CROSS JOIN webhooks w ON w.id = d.webhook
        WHERE d.status = 'pending' AND d.next_attempt_at > ? AND w.enabled = 1 ORDER BY d.next_attempt_at LIMIT 1""",
        (now,),
    )
    return row["due"] if row else None


# --- the sender ----------------------------------------------------------------------


class WebhookSender:
    """Fans events out into deliveries and sends them; one per app (app.state.webhook_sender)."""

    def __init__(self, settings: Settings, db: Database, bell: EventBell, outbox: mail.Outbox, *,
                 per_endpoint: int = PER_ENDPOINT, in_all: int = IN_ALL, timeout: float = TIMEOUT) -> None:
        self.settings = settings
        self.db = db
        self.bell = bell
        self.outbox = outbox
        self.schedule = settings.webhook_retry_schedule
        self.per_endpoint = per_endpoint
        self.in_all = in_all
        self.timeout = timeout
        self.connections = KeptConnections(f"QR-Contact-Webhooks/{__version__}")
        # How a message is sent: over the network (the unit tests give an in-process receiver's).
        self.post: Callable[[Target, dict[str, str], bytes], Awaitable[Answer]] = self.connections.post
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._in_flight: dict[int, tuple[int, asyncio.Task]] = {}  # delivery row id -> (webhook row id, task)
        self._ended: set[int] = set()  # attempts ended since the due deliveries were last read
        # Outcomes waiting for the next outcome transaction (_record), and the task writing them.
        self._outcomes: list[tuple[Due, Outcome, asyncio.Future]] = []
        self._recording: asyncio.Task | None = None
        self._tidied_at = -TIDY_EVERY

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fanning out, let attempts in flight finish for `grace` seconds, cancel the rest
        (they stay pending and are sent again at the next start)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        attempts = [task for _, task in self._in_flight.values()]
        if attempts:
            _, late = await asyncio.wait(attempts, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._recording is not None:
            await asyncio.gather(self._recording, return_exceptions=True)
        await self.connections.close()
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look for due deliveries now (a test message or a retry was just committed)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            ring = self.bell.next_ring()
            self._wake.clear()
            try:
                await self.fan_out()
                delay = await self._dispatch()
                if time.monotonic() - self._tidied_at >= TIDY_EVERY:
                    self._tidied_at = time.monotonic()
                    await self.tidy()
            except Exception:
                log.exception("webhook sender: unexpected error; looking again in 5 s")
                delay = 5.0
            await self._sleep(ring, delay)

    async def _sleep(self, ring: asyncio.Event, delay: float) -> None:
        waits = [asyncio.ensure_future(ring.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def fan_out(self) -> None:
        """Hand out every event past the cursor, FAN_OUT_BATCH per transaction."""
        async with self.db.read() as conn:
            row = await fetch_one(
                conn,
                """SELECT (SELECT max(id) FROM events) > (SELECT last_event FROM webhook_cursor WHERE id = 1)
                AND EXISTS (SELECT 1 FROM webhooks WHERE enabled = 1) AS more""",
            )
        if not (row and row["more"]):
            # No write transaction when there is nothing new, or no one to send it to: the
            # cursor stays, and a webhook added later starts after its own `after_event`.
            return
        while True:
            async with self.db.write() as tx:
                handed = await fan_out_batch(tx)
            if handed < FAN_OUT_BATCH:
                return

    async def tidy(self) -> None:
        """The delivery log keeps finished deliveries as long as events are kept (EVENTS_RETENTION)."""
        before = isoformat(self.db.now() - timedelta(seconds=self.settings.events_retention))
        while True:
            async with self.db.write() as tx:
                if await delete_finished(tx.conn, before) < TIDY_BATCH:
                    return

    async def _dispatch(self) -> float:
        """Start attempts for due deliveries while slots are free; seconds until the next is due."""
        free = self.in_all - len(self._in_flight)
        now = self.db.now()
        if free > 0:
            # An attempt that ends while the due ones are read may have been read as still due:
            # it committed its outcome after the read began, and has left _in_flight since.
            self._ended.clear()
            async with self.db.read() as conn:
                due = await select_due(conn, isoformat(now), self.per_endpoint)
            due = [delivery for delivery in due if delivery.id not in self._ended]
            busy: dict[int, int] = {}
            for webhook, _ in self._in_flight.values():
                busy[webhook] = busy.get(webhook, 0) + 1
            for delivery in due:  # oldest first, across endpoints
                if len(self._in_flight) >= self.in_all:
                    break
                if delivery.id in self._in_flight or busy.get(delivery.webhook, 0) >= self.per_endpoint:
                    continue
                busy[delivery.webhook] = busy.get(delivery.webhook, 0) + 1
                task = asyncio.create_task(self._attempt(delivery), name=f"webhook-delivery-{delivery.id}")
                self._in_flight[delivery.id] = (delivery.webhook, task)
        async with self.db.read() as conn:
            next_due = await next_due_at(conn, isoformat(now))
        if next_due is None:
            return IDLE
        return min(max((datetime.fromisoformat(next_due) - self.db.now()).total_seconds(), 0.0), IDLE)

    async def _attempt(self, delivery: Due) -> None:
        try:
            outcome = await self.send(delivery)
            await self._record(delivery, outcome)
        except Exception:
            log.exception("webhook sender: delivery %s could not be recorded; it stays pending", delivery.message_id)
            # Its slot stays taken a while: no tight loop of resending while the database fails.
            await asyncio.sleep(RECORD_FAILED_PAUSE)
        finally:
            self._in_flight.pop(delivery.id, None)
            self._ended.add(delivery.id)
            self._wake.set()  # a slot is free

    async def _record(self, delivery: Due, outcome: Outcome) -> None:
        """Write the attempt's outcome, in one transaction with every other that ended
        meanwhile (a group commit: at 1,000 deliveries a second, a transaction each was most
        of the sender's database time). Returns once it is committed; until then the
        delivery is pending, and a crash sends it again. Raises what its transaction raised
        (written alone when the shared one failed)."""
        written = asyncio.get_running_loop().create_future()
        self._outcomes.append((delivery, outcome, written))
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._write_outcomes(), name="webhook-outcomes")
        await written

    async def _write_outcomes(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self._write(batch)
            except Exception:
                # One outcome that cannot be written (a failing email or alert when its endpoint
                # is disabled) must not hold back the others: each again, on its own.
                for item in batch:
                    try:
                        await self._write([item])
                    except Exception as exc:
                        _settle(item[2], exc)
                    else:
                        _settle(item[2], None)
            else:
                for _, _, written in batch:
                    _settle(written, None)

    async def _write(self, batch: list[tuple[Due, Outcome, asyncio.Future]]) -> None:
        async with self.db.write() as tx:
            for delivery, outcome, _ in batch:
                await self._finish(tx, delivery, *outcome)

    async def send(self, delivery: Due) -> Outcome:
        """One attempt: (response status, first 1 KB of the answer, error, latency in ms)."""
        started = time.monotonic()
        status = answer = error = None
        try:
            async with asyncio.timeout(self.timeout):
                target = await url_guard.check(delivery.url, self.settings.webhook_allow_private)
                now = self.db.now()
                body = delivery.body.encode()
                keys = signing_secrets(delivery.secret, delivery.previous_secret, delivery.previous_secret_until, now)
                status, first_bytes = await self.post(target, signed_headers(keys, delivery.message_id, int(now.timestamp()), body), body)
                answer = first_bytes[:RESPONSE_KEPT].decode("utf-8", errors="replace")
        except Invalid as exc:
            error = f"refused by the SSRF guard: {exc.message}"
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except Exception as exc:  # any failure is a failed attempt, retried on the schedule, never a hot loop
            error = f"{type(exc).__name__}: {exc}"[:500]
        if status is not None and 300 <= status < 400:
            error = f"answered {status}: redirects are not followed"
        return status, answer, error, round((time.monotonic() - started) * 1000)

    async def _finish(self, tx: Tx, delivery: Due, status: int | None, answer: str | None, error: str | None,
                      latency: int) -> None:
        """One attempt's outcome, in `tx`: its delivery row, its endpoint's failing streak, and
        the endpoint disabled after a 410 or five days of failures."""
        ok = status is not None and 200 <= status < 300
        attempts = delivery.attempts + 1
        if ok:
            outcome, next_at = "succeeded", tx.now_text
        else:
            delay = None if status == 410 else retry_delay(self.schedule, attempts)
            outcome = "failed" if delay is None else "pending"
            next_at = tx.now_text if delay is None else isoformat(tx.now + timedelta(seconds=delay))
            if error is None:
                error = f"answered {status}"
        cursor = await tx.conn.execute(
            """UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
            response_status = ?, response_body = ?, latency_ms = ?, last_error = ? WHERE id = ?""",
            (outcome, attempts, next_at, tx.now_text, status, answer, latency, None if ok else error, delivery.id),
        )
        if cursor.rowcount == 0:
            return  # the webhook was deleted meanwhile
        if ok:
            await tx.conn.execute("UPDATE webhooks SET failing_since = NULL, last_success_at = ? WHERE id = ?",
                                  (tx.now_text, delivery.webhook))
            return
        await tx.conn.execute("UPDATE webhooks SET failing_since = coalesce(failing_since, ?) WHERE id = ?",
                              (tx.now_text, delivery.webhook))
        if status == 410:
            await self._disable(tx, delivery.webhook, "the receiver answered 410 Gone")
            return
        row = await fetch_one(tx.conn, "SELECT failing_since FROM webhooks WHERE id = ?", (delivery.webhook,))
        if row and row["failing_since"] <= isoformat(tx.now - GIVE_UP_AFTER):
            await self._disable(tx, delivery.webhook, f"every delivery failed for {GIVE_UP_AFTER.days} days")

    async def _disable(self, tx: Tx, webhook: int, reason: str) -> None:
        """Disable the endpoint, email its owner and record a system.alert, all in `tx`."""
        cursor = await tx.conn.execute(
            "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? AND enabled = 1",
            (reason, tx.now_text, webhook),
        )
        if cursor.rowcount == 0:
            return
        row = await fetch_one(
            tx.conn, "SELECT w.webhook_id, w.url, u.user_id, u.email FROM webhooks w JOIN users u USING (user_id) WHERE w.id = ?",
            (webhook,),
        )
        log.warning("webhook %s disabled: %s", row["webhook_id"], reason)
        await mail.enqueue(tx, self.outbox, disabled_email(self.settings, row["email"], row["url"], row["webhook_id"], reason),
                           kind="webhook_disabled", user_id=row["user_id"])
        # The shape of app/ops/alerts.py's alerts, with the webhook named; it belongs to the
        # webhook's owner (admins see it too), so their own webhooks and event feed tell them.
        await tx.emit("system.alert", {
            "alert": "webhook_disabled", "message": f"the webhook to {row['url']} is disabled: {reason}", "severity": "warning",
            "webhookId": row["webhook_id"], "url": row["url"], "reason": reason,
        }, user_id=row["user_id"])


def _settle(written: asyncio.Future, error: Exception | None) -> None:
    """Tell the attempt waiting on `written` its outcome is committed, or why not."""
    if written.done():
        return  # its attempt was cancelled at shutdown
    if error is None:
        written.set_result(None)
    else:
        written.set_exception(error)


def disabled_email(settings: Settings, to: str, url: str, webhook_id: str, reason: str):
    link = f"{settings.public_base_url}/app/account/webhooks/{webhook_id}"
    lines = [f"Your webhook to {url} is disabled: {reason}.",
             "Messages queued for it before wait in its delivery log, and are sent once you enable it again; "
             "events that happen while it is disabled are not sent to it."]
    html = mail.render_html("link.html", lines=lines, link=link, button="Open the webhook",
                            footer="You get this email because you own this webhook on QR Contact.")
    return mail.compose(settings, to=to, subject="Your QR Contact webhook is disabled",
                        text="\n\n".join(lines) + f"\n\nOpen the webhook: {link}\n", html=html)
