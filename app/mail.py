"""Email: the outbox (a queue table in SQLite), its worker, and how messages are built and sent.

A job is a row of `email_outbox` that `enqueue` inserts in the same transaction as what
caused it (a registration, an invitation); it holds the whole message, dated with the
transaction's time, and the transaction wakes the worker once it commits. The worker,
started in the app's lifespan, takes due jobs one at a time: it first counts the attempt
and moves the job's next attempt into the future (committed), then delivers, then marks
the job sent. A crash at any point leaves the job pending, and every start makes all
pending jobs due at once, so queued mail goes out as soon as the service is back.

Delivery is therefore at least once: a crash between the server accepting a message and
the commit that marks it sent repeats it, with the same Message-ID (fixed when the job is
queued), so mail clients and filters can recognise the repeat.

Failures are retried after RETRY_DELAYS (30 s, then growing to hours); after MAX_ATTEMPTS,
or at once when the server refuses the recipient or the message for good (5xx), the job
is `failed`. With SMTP_URL unset, each message is written as an .eml file to the outbox
folder instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import smtplib
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit

import aiosqlite
import jinja2
from prometheus_client import Counter, Gauge

from app.config import Settings
from app.db import Database, Tx, fetch_one, isoformat

log = logging.getLogger("app.mail")

# Seconds to wait after the 1st, 2nd, ... failed attempt: the first retry within a
# minute, the last ones hours apart, so a server that is down for an afternoon loses nothing.
RETRY_DELAYS = (30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
SMTP_TIMEOUT = 20
IDLE_POLL = 60.0  # the idle worker looks at the table at least this often (seconds)
KEEP_FINISHED = timedelta(days=30)  # sent and failed jobs are kept this long, without their message
TIDY_EVERY = 3600.0

QUEUE = "email"
QUEUE_DEPTH = Gauge("queue_depth", "Jobs waiting in a queue (refreshed on every scrape)", ["queue"])
QUEUE_FAILED = Counter("queue_jobs_failed", "Jobs that failed for good", ["queue"])
# Exported from the start (at 0), so rate() and increase() see the first failure.
QUEUE_DEPTH.labels(QUEUE)
QUEUE_FAILED.labels(QUEUE)

Outcome = Literal["sent", "failed"]


class PermanentFailure(Exception):
    """The server refused the recipient or the message for good (a 5xx reply)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    id: int
    message_id: str
    kind: str
    recipient: str
    message: bytes
    attempts: int
    created_at: str
    invitation_id: int | None


# What the module that queues a kind of job does when one ends, sent or failed: it runs
# inside the transaction that finishes the job, and registers with it what follows the commit.
Listener = Callable[[Tx, Job, Outcome], Awaitable[None]]


# --- messages ------------------------------------------------------------------------


def sender(settings: Settings) -> Address:
    """MAIL_FROM as an address (config checked that it parses to exactly one)."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    return message["From"].addresses[0]


def address(addr: str, display_name: str = "") -> Address:
    """A plain address (the app.fields.Email shape: one @, no spaces, quotes, brackets or
    commas) as a header value. Built from its parts rather than parsed, so an odd but
    accepted address (`a..b@x`) cannot make it fail; an international domain is
    IDNA-encoded, so only a non-ASCII local part needs SMTPUTF8."""
    local, _, domain = addr.rpartition("@")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return Address(display_name=display_name, username=local, domain=domain)


def named(policy: Policy, plain: Address, display_name: str, header: str = "Reply-To") -> Address:
    """`plain` with `display_name`, when the header fits on one line; else `plain` alone.

    CPython's header folding (both SMTP policies) can drop the quotes around a display
    name it splits over lines, so a long name with a comma ("Doe, Jane …") would turn
    Reply-To (or From) into two addresses. A header that fits is written as it is, quoted;
    a longer one goes without its name rather than with a wrong address.
    """
    with_name = Address(display_name=display_name, username=plain.username, domain=plain.domain)
    folded = policy.fold(header, policy.header_factory(header, with_name))
    return with_name if folded.count(policy.linesep) == 1 else plain


def compose(
    settings: Settings, *, to: str, subject: str, text: str, html: str, reply_to: tuple[str, str] | None = None,
    from_name: str | None = None,
) -> EmailMessage:
    """A message with a plain-text part and an HTML alternative, From MAIL_FROM (`enqueue` dates it).

    `to` and the address of `reply_to` (display name, address) must be plain addresses
    (app.fields.Email). `from_name` replaces MAIL_FROM's display name (a message sent on
    someone's behalf comes from their name, at the service's own address, which is the
    one its SPF and DKIM vouch for). Headers go through email.headerregistry, which
    refuses line breaks (ValueError), so no value can add a header or a recipient.
    """
    recipient = address(to)
    answer = address(reply_to[1]) if reply_to else None
    utf8 = not all(a.addr_spec.isascii() for a in (recipient, answer) if a is not None)
    message = EmailMessage(policy=SMTPUTF8 if utf8 else SMTP)
    message["From"] = settings.mail_from if from_name is None else named(message.policy, sender(settings), from_name, "From")
    message["To"] = recipient
    if answer is not None:
        message["Reply-To"] = named(message.policy, answer, reply_to[0])
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{sender(settings).domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


# The HTML parts: app/templates/mail/, each extending layout.html, every value escaped.
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def render_html(template: str, **values: object) -> str:
    """A message's HTML part from app/templates/mail/ (the plain-text part stays the caller's)."""
    return TEMPLATES.get_template(template).render(**values)


# --- SQL -----------------------------------------------------------------------------

JOB_COLUMNS = "id, message_id, kind, recipient, message, attempts, created_at, invitation_id"


# Every kind of mail the outbox sends; a module adding one names it here (the table
# keeps the kind as text, migration 0022).
MailKind = Literal[
    "verification", "invitation", "password_reset", "email_change", "team_invitation", "lead", "lead_card", "webhook_disabled"
]
MAIL_KINDS: frozenset[str] = frozenset(get_args(MailKind))


async def enqueue(
    tx: Tx,
    outbox: Outbox,
    message: EmailMessage,
    *,
    kind: MailKind,
    user_id: str | None = None,
    invitation_id: int | None = None,
) -> str:
    """Queue a message in the caller's transaction, dated with its time; returns its
    Message-ID. The outbox is woken once the transaction commits, to send it at once.
    Raises ValueError for a kind not in MailKind."""
    if kind not in MAIL_KINDS:
        raise ValueError(f"unknown kind of mail: {kind!r}")
    message["Date"] = format_datetime(tx.now, usegmt=True)
    now = tx.now_text
    await tx.conn.execute(
        """INSERT INTO email_outbox (message_id, kind, recipient, message, user_id, invitation_id,
            next_attempt_at, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            message["Message-ID"], kind, message["To"].addresses[0].addr_spec, message.as_bytes(),
            user_id, invitation_id, now, now,
        ),
    )
    tx.after_commit(outbox.wake)
    return message["Message-ID"]


async def claim_due(conn: aiosqlite.Connection, now: datetime) -> Job | None:
    """The next due job, with this attempt counted and its retry time already set."""
    row = await fetch_one(
        conn,
        f"""SELECT {JOB_COLUMNS} FROM email_outbox
        WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1""",
        (isoformat(now),),
    )
    if row is None:
        return None
    attempts = row["attempts"] + 1
    retry_at = now + timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])
    await conn.execute(
        "UPDATE email_outbox SET attempts = ?, next_attempt_at = ? WHERE id = ?",
        (attempts, isoformat(retry_at), row["id"]),
    )
    return Job(**{**dict(row), "attempts": attempts, "message": bytes(row["message"])})


async def finish_job(conn: aiosqlite.Connection, job: Job, outcome: Outcome, error: str | None, now: str) -> bool:
    """Mark a job sent or failed and drop its message; False when it is gone (account deleted)."""
    cursor = await conn.execute(
        """UPDATE email_outbox SET status = ?, message = NULL, last_error = ?, finished_at = ?
        WHERE id = ? AND status = 'pending'""",
        (outcome, error, now, job.id),
    )
    return cursor.rowcount == 1


async def record_error(conn: aiosqlite.Connection, job: Job, error: str) -> None:
    await conn.execute("UPDATE email_outbox SET last_error = ? WHERE id = ?", (error, job.id))


async def make_all_due(conn: aiosqlite.Connection, now: str) -> int:
    """Make every pending job due now (at start: the restart may be what fixed the problem)."""
    cursor = await conn.execute(
        "UPDATE email_outbox SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at > ?", (now, now)
    )
    return cursor.rowcount


async def next_due(conn: aiosqlite.Connection) -> tuple[int, str | None]:
    """How many jobs are pending, and when the first of them is due."""
    row = await fetch_one(
        conn, "SELECT count(*) AS waiting, min(next_attempt_at) AS due FROM email_outbox WHERE status = 'pending'"
    )
    return row["waiting"], row["due"]


async def delete_finished(conn: aiosqlite.Connection, before: datetime) -> int:
    cursor = await conn.execute(
        "DELETE FROM email_outbox WHERE status IN ('sent', 'failed') AND finished_at < ?", (isoformat(before),)
    )
    return cursor.rowcount


async def queue_state(conn: aiosqlite.Connection) -> tuple[int, int]:
    """(waiting, retrying): pending jobs, and those among them that have failed an attempt."""
    row = await fetch_one(
        conn,
        "SELECT count(*) AS waiting, coalesce(sum(attempts > 0), 0) AS retrying FROM email_outbox WHERE status = 'pending'",
    )
    return row["waiting"], row["retrying"]


# --- transports ----------------------------------------------------------------------


@functools.cache
def tls_context() -> ssl.SSLContext:
    # Made once: loading the system's CA certificates costs tens of milliseconds.
    return ssl.create_default_context()


def send_smtp(url: str, envelope_from: str, job: Job) -> None:
    """Deliver one message over SMTP (STARTTLS when offered; smtps:// is TLS from the start;
    a user and password only ever over TLS).

    Raises PermanentFailure for a 5xx refusal of the recipient or the message; anything
    else raised (refused connection, timeout, 4xx, failed login) is worth a retry.
    """
    parts = urlsplit(url)
    encrypted = parts.scheme == "smtps"
    if encrypted:
        client: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT, context=tls_context())
    else:
        client = smtplib.SMTP(parts.hostname, parts.port or 587, timeout=SMTP_TIMEOUT)
    try:
        client.ehlo()
        if not encrypted and client.has_extn("starttls"):
            client.starttls(context=tls_context())
            client.ehlo()
            encrypted = True
        if parts.username:
            if not encrypted:
                # A server (or someone in between) that offers no STARTTLS gets no password.
                raise smtplib.SMTPException("the server offers no STARTTLS; the password is only sent encrypted")
            client.login(unquote(parts.username), unquote(parts.password or ""))
        headers = job.message.partition(b"\r\n\r\n")[0]
        options = [] if job.recipient.isascii() and headers.isascii() else ["SMTPUTF8"]
        try:
            client.sendmail(envelope_from, [job.recipient], job.message, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            if 500 <= code < 600:
                raise PermanentFailure(f"recipient refused: {code} {reply.decode(errors='replace')}") from None
            raise
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentFailure(f"the server cannot take this address: {exc}") from None
        except smtplib.SMTPDataError as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"message refused: {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}") from None
            raise
    finally:
        # The message is accepted once sendmail returns: a failing QUIT must not make it a retry.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()


def eml_name(job: Job) -> str:
    """The file a job is written to: the same on every attempt, so a repeat overwrites it."""
    stamp = job.created_at[:19].replace("-", "").replace(":", "")
    return f"{stamp}Z-{job.message_id.strip('<>').partition('@')[0]}.eml"


def write_eml(folder: Path, job: Job) -> None:
    """Write the message into the outbox folder, whole (temp file, fsync, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / eml_name(job)
    partial = path.with_suffix(".part")
    with open(partial, "wb") as file:
        file.write(job.message)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


# --- the worker ----------------------------------------------------------------------


class Outbox:
    """The worker that sends queued email: one per app, started and stopped by its lifespan."""

    def __init__(self, settings: Settings, listeners: Mapping[str, Listener] | None = None) -> None:
        self._listeners = dict(listeners or {})
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._tidied_at = -TIDY_EVERY
        if settings.smtp_url:
            envelope_from = sender(settings).addr_spec
            url = settings.smtp_url
            self._transport: Callable[[Job], None] = lambda job: send_smtp(url, envelope_from, job)
        else:
            folder = settings.outbox_dir
            self._transport = lambda job: write_eml(folder, job)

    def start(self, db: Database) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(db), name="email-outbox")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop after the delivery in progress, if any, has finished (waiting at most `grace` seconds).

        A delivery cut short stays pending and is repeated at the next start.
        """
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look for due jobs now (`enqueue` has it called once the transaction that queued one commits)."""
        self._wake.set()

    async def _run(self, db: Database) -> None:
        try:
            async with db.write() as tx:
                if made_due := await make_all_due(tx.conn, tx.now_text):
                    log.info("email outbox: %d waiting messages are due again after the restart", made_due)
        except Exception:
            log.exception("email outbox: could not reschedule waiting mail")
        while not self._stopping:
            # Cleared before looking, so a wake() during the look or the delivery is not lost.
            self._wake.clear()
            try:
                async with db.write() as tx:
                    job = await claim_due(tx.conn, tx.now)
                if job is not None:
                    await self._deliver(db, job)
                    continue
                delay = await self._idle_for(db)
            except Exception:
                log.exception("email outbox: unexpected error; looking again in 5 s")
                delay = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _deliver(self, db: Database, job: Job) -> None:
        if job.attempts > MAX_ATTEMPTS:
            # Its last attempt was cut short by a crash: the bound holds even then.
            await self._finish(db, job, "failed", f"gave up after {MAX_ATTEMPTS} attempts")
            return
        try:
            await asyncio.to_thread(self._transport, job)
        except PermanentFailure as exc:
            await self._finish(db, job, "failed", str(exc))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if job.attempts >= MAX_ATTEMPTS:
                await self._finish(db, job, "failed", error)
            else:
                log.warning("email outbox: attempt %d of %s failed, retrying later: %s", job.attempts, job.message_id, error)
                async with db.write() as tx:
                    await record_error(tx.conn, job, error)
        else:
            await self._finish(db, job, "sent", None)

    async def _finish(self, db: Database, job: Job, outcome: Outcome, error: str | None) -> None:
        listener = self._listeners.get(job.kind)
        async with db.write() as tx:
            finished = await finish_job(tx.conn, job, outcome, error, tx.now_text)
            if finished and outcome == "failed":
                tx.after_commit(functools.partial(_count_failure, job, error))
            if finished and listener is not None:
                await listener(tx, job, outcome)

    async def _idle_for(self, db: Database) -> float:
        """Seconds until the next job is due (at most IDLE_POLL); tidies old jobs now and then."""
        if time.monotonic() - self._tidied_at >= TIDY_EVERY:
            self._tidied_at = time.monotonic()
            async with db.write() as tx:
                await delete_finished(tx.conn, tx.now - KEEP_FINISHED)
        async with db.read() as conn:
            waiting, due = await next_due(conn)
        QUEUE_DEPTH.labels(QUEUE).set(waiting)
        if due is None:
            return IDLE_POLL
        return min(max((datetime.fromisoformat(due) - db.now()).total_seconds(), 0.0), IDLE_POLL)


def _count_failure(job: Job, error: str | None) -> None:
    QUEUE_FAILED.labels(QUEUE).inc()
    log.error("email outbox: %s to %s failed for good after %d attempts: %s", job.message_id, job.recipient, job.attempts, error)


async def health_check(outbox: Outbox, db: Database) -> str:
    """The queue's line in /health: ok, retrying (with counts), stopped, or an error."""
    if not outbox.running:
        return "stopped"
    try:
        async with db.read() as conn:
            waiting, retrying = await queue_state(conn)
    except Exception as exc:  # reported, not raised: the database check says whether that is fatal
        return f"error: {type(exc).__name__}"
    QUEUE_DEPTH.labels(QUEUE).set(waiting)
    if retrying:
        return f"retrying: {waiting} waiting, {retrying} after a failed attempt"
    return "ok"


async def refresh_gauges(db: Database) -> None:
    async with db.read() as conn:
        waiting, _ = await queue_state(conn)
    QUEUE_DEPTH.labels(QUEUE).set(waiting)
