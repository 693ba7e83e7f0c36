"""Sharing: invitations over email, SMS, WhatsApp and LinkedIn, and their tracked links
(the k-factor they lead to is app/sharing/kfactor.py).

A share makes one invitation per recipient, each with a random token (stored as a hash)
behind a tracked link, /i/{token}. Email invitations are queued in the outbox in the same
transaction; SMS, WhatsApp and LinkedIn answer with a ready deep link and call no
provider. The same sender, recipient and UTC day is one invitation (a UNIQUE constraint),
so a repeat is reported as `duplicate` and sends nothing. `share`, `record_click` and
`record_open` are the operations: each writes in one transaction and registers with it
what follows its commit (waking the outbox, counting its funnel event).

The funnel, where `status` is the furthest stage reached and each stage keeps its first time:
  queued → sent   the SMTP server took the email (the link channels start at sent)
  opened          /i/{token}/open.gif, the email's 1×1 image
  clicked         /i/{token}, which then goes on to the card page
  converted       a registration with the token (accounts.register)
Requests that bots.countable refuses (HEAD, crawlers, link previews, mail scanners) move
nothing: one list of such user agents serves scans and invitations alike. The open
pixel also counts when Gmail's or Yahoo's image proxy fetches it (bots.countable_open):
they fetch a message's images when the person opens it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Annotated, Any, Literal
from urllib.parse import quote

import aiosqlite
import msgspec
from prometheus_client import Counter

from app import mail
from app.accounts import users
from app.brand import store as brand_store
from app.cards.cards import image_url, shows_team_logo
from app.cards.types import Card
from app.cards.vcard import vcard
from app.config import Settings
from app.db import Database, Tx, fetch_all, fetch_one, isoformat
from app.errors import Invalid, Limited
from app.fields import EMAIL_PATTERN, Message, Recipient
from app.public.looks import accent_of
from app.tokens import token_hash

RECIPIENTS_MOST = 50  # in one share
EMAILS_PER_DAY = 200  # email invitations one account may send per UTC day: no open spam relay
INVITE_VALID_FOR = timedelta(days=30)  # how long a token can still be used to register
# A transparent 1×1 GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EMAIL = re.compile(EMAIL_PATTERN)
PHONE = re.compile(r"^\+[0-9][0-9 ().-]*$")

VIRAL_EVENTS = Counter("viral_events", "Invitation funnel events", ["event_type", "channel"])
EVENT_TYPES = ("sent", "opened", "clicked", "converted", "failed")
CHANNELS = ("email", "sms", "whatsapp", "linkedin")
for _event in EVENT_TYPES:  # every series exported from 0, so increase() sees the first event
    for _channel in CHANNELS:
        VIRAL_EVENTS.labels(_event, _channel)

Channel = Literal["email", "sms", "whatsapp", "linkedin"]


# --- structs -------------------------------------------------------------------------


class ShareRecipient(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    channel: Channel
    # An email address for email, an international phone number (+…) for sms and
    # whatsapp; none for linkedin, which posts to the sender's own feed.
    to: Recipient | None = None


class ShareRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    recipients: Annotated[list[ShareRecipient], msgspec.Meta(min_length=1, max_length=RECIPIENTS_MOST)]
    message: Message | None = None


class SharedInvitation(msgspec.Struct, rename="camel"):
    invitation_id: str
    channel: str
    recipient: str | None
    # queued (email, waiting for the queue), sent (a link channel), or duplicate
    status: str
    # The deep link for sms, whatsapp and linkedin; null for email and duplicates.
    share_url: str | None


class ShareResponse(msgspec.Struct, rename="camel"):
    invitations: list[SharedInvitation]


class Invitation(msgspec.Struct, rename="camel"):
    invitation_id: str
    card_id: str
    channel: str
    recipient: str | None
    message: str | None
    status: str
    created_at: str
    sent_at: str | None
    opened_at: str | None
    clicked_at: str | None
    converted_at: str | None


class InvitationPage(msgspec.Struct, rename="camel"):
    items: list[Invitation]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A checked recipient: how it is shown, and the key that makes two shares "the same recipient"."""

    channel: Channel
    recipient: str | None
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class Redeemable:
    id: int
    channel: str


# --- recipients, links and the email -------------------------------------------------


def check_recipients(card: Card, recipients: list[ShareRecipient]) -> list[Target]:
    """Validate each recipient for its channel. Raises Invalid naming every bad one."""
    targets, errors = [], []
    for index, item in enumerate(recipients):
        field = f"recipients[{index}].to"
        if item.channel == "email":
            if item.to is None or not EMAIL.fullmatch(item.to):
                errors.append({"field": field, "message": "an email address such as jane@example.com", "source": "body"})
                continue
            targets.append(Target("email", item.to, item.to.lower()))
        elif item.channel in ("sms", "whatsapp"):
            digits = re.sub(r"[^0-9]", "", item.to or "")
            if item.to is None or not PHONE.fullmatch(item.to) or not 7 <= len(digits) <= 15:
                errors.append(
                    {"field": field, "message": "an international phone number such as +44 20 7946 0958", "source": "body"}
                )
                continue
            targets.append(Target(item.channel, "+" + digits, "+" + digits))
        else:
            if item.to is not None:
                errors.append(
                    {"field": field, "message": "leave out: a LinkedIn share goes to your own feed", "source": "body"}
                )
                continue
            # A LinkedIn post has no recipient: one post per card per day.
            targets.append(Target("linkedin", None, f"linkedin:{card.card_id}"))
    if errors:
        raise Invalid("some recipients are not valid for their channel", errors=errors)
    return targets


def tracked_link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/i/{token}"


def deep_link(target: Target, card: Card, link: str, message: str | None) -> str:
    """The ready-to-open link for a channel that has no provider behind it."""
    text = f"{message} {link}" if message else f"{card.full_name} shared a contact card with you: {link}"
    if target.channel == "sms":
        return f"sms:{target.recipient}?body={quote(text, safe='')}"  # RFC 5724
    if target.channel == "whatsapp":
        return f"https://wa.me/{target.recipient.lstrip('+')}?text={quote(text, safe='')}"
    return f"https://www.linkedin.com/sharing/share-offsite/?url={quote(link, safe='')}"


def invitation_email(
    settings: Settings, card: Card, to: str, token: str, message: str | None, owner_email: str
) -> EmailMessage:
    """The email of a share (SPEC §8 "Show it in person"): from the sender's name at the
    service's address, Reply-To the card owner's account email, with their photo, title and
    organization, and the card's vCard attached (saved without opening a page)."""
    link = tracked_link(settings, token)
    role = ", ".join(part for part in (card.title, card.organization) if part)
    who = f"{card.full_name} ({role})" if role else card.full_name
    text = [f"{who} shared their contact card with you."]
    if message:
        text += ["", f"“{message}”"]
    text += ["", f"Open the card and save the contact: {link}", "Their vCard is attached too: open it to save the contact.",
             "", "Sent by QR Contact on their behalf."]
    body = mail.render_html(
        "invitation.html", name=card.full_name, title=card.title, organization=card.organization, message=message,
        link=link, photo=image_url(settings.public_base_url, card, "photo"),
        button="Open the card", footer="Sent by QR Contact on their behalf.",
        # The team's look (SPEC §10) when the card wears it: its accent on the button, its logo and name on top.
        accent=accent_of(card), team_logo=image_url(settings.public_base_url, card, "logo") if shows_team_logo(card) else None,
        team_name=card.brand.name if card.brand else None,
    )
    email = mail.compose(
        settings,
        to=to,
        subject=f"{card.full_name} shared their contact card with you",
        text="\n".join(text) + "\n",
        html=body,
        reply_to=(card.full_name, owner_email),
        from_name=card.full_name,
    )
    email.add_attachment(vcard(card, 3).encode(), maintype="text", subtype="vcard", filename=f"{card.slug}.vcf")
    return email


# --- SQL -----------------------------------------------------------------------------

INVITATION_COLUMNS = (
    "i.invitation_id, c.card_id, i.channel, i.recipient, i.message, i.status, i.created_at, "
    "i.sent_at, i.opened_at, i.clicked_at, i.converted_at"
)


async def insert_invitation(
    conn: aiosqlite.Connection, card: Card, sender_id: str, target: Target, message: str | None, token: str, now: datetime
) -> tuple[int, str] | None:
    """Insert an invitation; returns (row id, invitation id), or None when it is a duplicate."""
    stamp = isoformat(now)
    row = await fetch_one(
        conn,
        """INSERT INTO invitations (invitation_id, token_hash, card_id, sender_id, channel, recipient,
            recipient_key, day, message, status, created_at, sent_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (sender_id, recipient_key, day) DO NOTHING
        RETURNING id, invitation_id""",
        (
            uuid.uuid4().hex, token_hash(token), card.id, sender_id, target.channel, target.recipient, target.key,
            now.date().isoformat(), message, "queued" if target.channel == "email" else "sent", stamp,
            None if target.channel == "email" else stamp,
        ),
    )
    return (row["id"], row["invitation_id"]) if row else None


async def existing_invitation_id(conn: aiosqlite.Connection, sender_id: str, key: str, day: str) -> str:
    row = await fetch_one(
        conn, "SELECT invitation_id FROM invitations WHERE sender_id = ? AND recipient_key = ? AND day = ?", (sender_id, key, day)
    )
    return row["invitation_id"]


async def emails_on(conn: aiosqlite.Connection, sender_id: str, day: str) -> int:
    row = await fetch_one(
        conn, "SELECT count(*) AS n FROM invitations WHERE sender_id = ? AND day = ? AND channel = 'email'", (sender_id, day)
    )
    return row["n"]


async def list_invitations(conn: aiosqlite.Connection, card: Card, limit: int, before: int) -> list[Any]:
    return await fetch_all(
        conn,
        f"""SELECT i.id, {INVITATION_COLUMNS} FROM invitations i JOIN cards c ON c.id = i.card_id
        WHERE i.card_id = ? AND i.id < ? ORDER BY i.id DESC LIMIT ?""",
        (card.id, before, limit),
    )


async def list_sender_invitations(conn: aiosqlite.Connection, user_id: str, limit: int, before: int) -> list[Any]:
    """A page of every invitation the account sent, newest first, with its card's name."""
    return await fetch_all(
        conn,
        f"""SELECT i.id, {INVITATION_COLUMNS}, c.full_name AS card_name FROM invitations i JOIN cards c ON c.id = i.card_id
        WHERE i.sender_id = ? AND i.id < ? ORDER BY i.id DESC LIMIT ?""",
        (user_id, before, limit),
    )


async def list_user_invitations(conn: aiosqlite.Connection, user_id: str) -> list[Invitation]:
    rows = await fetch_all(
        conn,
        f"""SELECT {INVITATION_COLUMNS} FROM invitations i JOIN cards c ON c.id = i.card_id
        WHERE i.sender_id = ? ORDER BY i.id""",
        (user_id,),
    )
    return [Invitation(**dict(row)) for row in rows]


async def invitation_for_token(conn: aiosqlite.Connection, token: str) -> Any | None:
    """The invitation behind a tracked link, with its card's slug, or None."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    return await fetch_one(
        conn,
        """SELECT i.id, i.channel, i.opened_at, i.clicked_at, c.slug
        FROM invitations i JOIN cards c ON c.id = i.card_id WHERE i.token_hash = ?""",
        (token_hash(token),),
    )


# Each stage moves the status forward only (a click seen before the email was marked sent,
# or an open after a click, keeps the furthest stage) and records its first time only.
async def mark_opened(conn: aiosqlite.Connection, invitation_id: int, now: str) -> bool:
    cursor = await conn.execute(
        """UPDATE invitations SET opened_at = ?,
            status = CASE WHEN status IN ('queued', 'sent', 'failed') THEN 'opened' ELSE status END
        WHERE id = ? AND opened_at IS NULL""",
        (now, invitation_id),
    )
    return cursor.rowcount == 1


async def mark_clicked(conn: aiosqlite.Connection, invitation_id: int, now: str) -> bool:
    cursor = await conn.execute(
        """UPDATE invitations SET clicked_at = ?,
            status = CASE WHEN status IN ('queued', 'sent', 'opened', 'failed') THEN 'clicked' ELSE status END
        WHERE id = ? AND clicked_at IS NULL""",
        (now, invitation_id),
    )
    return cursor.rowcount == 1


async def usable_invitation(conn: aiosqlite.Connection, token: str, now: datetime) -> Redeemable | None:
    """An invitation a registration may redeem: known, not yet converted, younger than INVITE_VALID_FOR."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    row = await fetch_one(
        conn,
        "SELECT id, channel FROM invitations WHERE token_hash = ? AND converted_at IS NULL AND created_at >= ?",
        (token_hash(token), isoformat(now - INVITE_VALID_FOR)),
    )
    return Redeemable(row["id"], row["channel"]) if row else None


async def mark_converted(conn: aiosqlite.Connection, invitation: Redeemable, user_id: str, now: datetime) -> bool:
    """Whether this converted it now (False: it was converted before)."""
    cursor = await conn.execute(
        "UPDATE invitations SET converted_at = ?, converted_user_id = ?, status = 'converted' WHERE id = ? AND converted_at IS NULL",
        (isoformat(now), user_id, invitation.id),
    )
    return cursor.rowcount == 1


async def mark_email_outcome(conn: aiosqlite.Connection, invitation_id: int, outcome: mail.Outcome, now: str) -> None:
    """Sent moves an invitation to `sent`, failed to `failed`."""
    if outcome == "sent":
        await conn.execute(
            """UPDATE invitations SET sent_at = coalesce(sent_at, ?),
                status = CASE status WHEN 'queued' THEN 'sent' ELSE status END WHERE id = ?""",
            (now, invitation_id),
        )
    else:
        await conn.execute(
            "UPDATE invitations SET status = CASE status WHEN 'queued' THEN 'failed' ELSE status END WHERE id = ?",
            (invitation_id,),
        )


# --- metrics -------------------------------------------------------------------------


def count_event(event_type: str, channel: str) -> None:
    VIRAL_EVENTS.labels(event_type, channel).inc()


def count_after_commit(tx: Tx, event_type: str, channel: str) -> None:
    """Count a funnel event once `tx` has committed (a rolled back one happened to nobody)."""
    tx.after_commit(functools.partial(count_event, event_type, channel))


# --- operations ----------------------------------------------------------------------


async def record_email_outcome(tx: Tx, job: mail.Job, outcome: mail.Outcome) -> None:
    """The outbox finished an invitation's email (its mail.Listener): the invitation moves
    on in the funnel, and the event is counted once that commits."""
    if job.invitation_id is None:
        return
    await mark_email_outcome(tx.conn, job.invitation_id, outcome, tx.now_text)
    count_after_commit(tx, outcome, "email")


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


async def share(
    db: Database, outbox: mail.Outbox, settings: Settings, card: Card, sender_id: str,
    recipients: list[ShareRecipient], message: str | None,
) -> list[SharedInvitation]:
    """One invitation per recipient: emails queued, deep links for the other channels.
    Raises Invalid (a recipient not valid for its channel) and Limited (past EMAILS_PER_DAY)."""
    targets = check_recipients(card, recipients)
    shared: list[SharedInvitation] = []
    async with db.write() as tx:
        conn, now = tx.conn, tx.now
        owner = await users.get_user(conn, card.user_id)
        look = (await brand_store.get_stored(conn)).look()
        branded = card if look is None else msgspec.structs.replace(card, brand=look)
        for target in targets:
            token = secrets.token_urlsafe(24)
            inserted = await insert_invitation(conn, card, sender_id, target, message, token, now)
            if inserted is None:
                existing = await existing_invitation_id(conn, sender_id, target.key, now.date().isoformat())
                shared.append(SharedInvitation(existing, target.channel, target.recipient, "duplicate", None))
            elif target.channel == "email":
                email = invitation_email(settings, branded, target.recipient, token, message, owner.email)
                await mail.enqueue(tx, outbox, email, kind="invitation", user_id=sender_id, invitation_id=inserted[0])
                shared.append(SharedInvitation(inserted[1], "email", target.recipient, "queued", None))
            else:
                link = deep_link(target, card, tracked_link(settings, token), message)
                shared.append(SharedInvitation(inserted[1], target.channel, target.recipient, "sent", link))
                count_after_commit(tx, "sent", target.channel)
        if await emails_on(conn, sender_id, now.date().isoformat()) > EMAILS_PER_DAY:
            # Raised inside the transaction: nothing of this share is kept.
            raise Limited(
                f"at most {EMAILS_PER_DAY} email invitations a day; try again tomorrow (UTC)",
                retry_after=_seconds_to_midnight(now),
            )
        await tx.emit("share.created", share_event_data(card, shared), actor_id=sender_id, user_id=sender_id)
    return shared


def share_event_data(card: Card, shared: list[SharedInvitation]) -> dict:
    """One share request in its event: the card, and each recipient as the sender was
    answered (the addresses are the sender's own data, seen by them and admins only);
    never the tokens nor the tracked or deep links that carry them."""
    channels: dict[str, int] = {}
    for item in shared:
        channels[item.channel] = channels.get(item.channel, 0) + 1
    return {
        "cardId": card.card_id, "slug": card.slug, "count": len(shared),
        "new": sum(item.status != "duplicate" for item in shared), "channels": channels,
        "recipients": [{"invitationId": item.invitation_id, "channel": item.channel, "recipient": item.recipient,
                        "status": item.status} for item in shared],
    }


async def record_click(db: Database, invitation: Any) -> None:
    """A person followed the tracked link of `invitation` (a row of `invitation_for_token`): clicked, counted once."""
    async with db.write() as tx:
        if await mark_clicked(tx.conn, invitation["id"], tx.now_text):
            count_after_commit(tx, "clicked", invitation["channel"])
            await emit_funnel(tx, "invitation.clicked", invitation["id"])


async def record_open(db: Database, invitation: Any) -> None:
    """A person opened the email of `invitation` (a row of `invitation_for_token`): opened, counted once."""
    async with db.write() as tx:
        if await mark_opened(tx.conn, invitation["id"], tx.now_text):
            count_after_commit(tx, "opened", invitation["channel"])
            await emit_funnel(tx, "invitation.opened", invitation["id"])


async def emit_funnel(tx: Tx, type: str, invitation_row_id: int, actor_id: str | None = None) -> None:
    """Record an invitation's step (opened, clicked, converted) as the sender's event, done
    by a visitor (None) or the account it became; called only when the step was counted, so once each."""
    row = await fetch_one(
        tx.conn,
        """SELECT i.invitation_id, i.sender_id, i.channel, i.status, c.card_id, c.slug
        FROM invitations i JOIN cards c ON c.id = i.card_id WHERE i.id = ?""",
        (invitation_row_id,),
    )
    data = {"invitationId": row["invitation_id"], "cardId": row["card_id"], "slug": row["slug"],
            "channel": row["channel"], "status": row["status"]}
    await tx.emit(type, data, actor_id=actor_id, user_id=row["sender_id"])
