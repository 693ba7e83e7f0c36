"""The events as people read them on the console's Activity page (SPEC §9): newest first,
each with the email of whoever acted and a line saying what happened.

The reads are the page's own (the API pages oldest first, app/events/events.py); who sees
what is the same: an admin every event, a member those whose user is them.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import msgspec

from app.db import fetch_all
from app.events.events import Event, select_events

# What each type means, said for people ("<who> <label>").
LABELS = {
    "user.registered": "joined", "user.invited": "invited someone to the team", "user.deactivated": "deactivated an account",
    "user.reactivated": "reactivated an account", "user.role_changed": "changed an account's role",
    "card.created": "created a card", "card.updated": "edited a card", "card.deleted": "deleted a card",
    "card.transferred": "handed a card over", "card.scanned": "scanned or viewed", "lead.captured": "received a lead",
    "share.created": "shared a card", "invitation.opened": "opened an invitation", "invitation.clicked": "clicked an invitation",
    "invitation.converted": "signed up from an invitation", "apikey.created": "created an API key",
    "apikey.revoked": "revoked an API key", "system.alert": "system alert",
}


class ActivityItem(msgspec.Struct):
    event: Event
    actor: str | None  # the actor's email, when there is one and the account still exists
    label: str
    subject: str  # the card, account or key it was about, when the data names one
    card_id: str | None  # a card to link to (None for a deleted card)
    counts: str  # for card.scanned: "2 scans, 1 view"


async def events_before(
    conn: aiosqlite.Connection, *, viewer: str | None, before: str | None, types: list[str] | None, limit: int,
) -> list[Event]:
    """Events before the eventId `before` (the newest when None), newest first, of `viewer`'s
    user id or all when None (an admin)."""
    return await select_events(conn, viewer=viewer, types=types, bound=None if before is None else ("event_id < ?", before),
                               order="id DESC", limit=limit)


async def emails_of(conn: aiosqlite.Connection, user_ids: set[str]) -> dict[str, str]:
    """The email of each of these accounts that still exists."""
    if not user_ids:
        return {}
    ids = sorted(user_ids)
    rows = await fetch_all(conn, f"SELECT user_id, email FROM users WHERE user_id IN ({', '.join('?' * len(ids))})", ids)
    return {row["user_id"]: row["email"] for row in rows}


def _counts(data: dict[str, Any]) -> str:
    parts = []
    for key, one in (("scans", "scan"), ("views", "view"), ("saves", "save")):
        if isinstance(count := data.get(key), int) and count:
            parts.append(f"{count} {one if count == 1 else key}")
    return ", ".join(parts)


def item_of(event: Event, emails: dict[str, str]) -> ActivityItem:
    data = event.data
    subject = next((str(data[key]) for key in ("fullName", "name", "email", "slug", "message") if data.get(key)), "")
    card_id = data.get("cardId") if event.type != "card.deleted" and isinstance(data.get("cardId"), str) else None
    return ActivityItem(
        event=event, actor=emails.get(event.actor_id) if event.actor_id else None, label=LABELS.get(event.type, event.type),
        subject=subject, card_id=card_id, counts=_counts(data) if event.type == "card.scanned" else "",
    )


async def activity(
    conn: aiosqlite.Connection, *, viewer: str | None, before: str | None, types: list[str] | None, limit: int,
) -> tuple[list[ActivityItem], str | None]:
    """A page of the Activity list and the cursor of the next (older) one, None on the last."""
    events = await events_before(conn, viewer=viewer, before=before, types=types, limit=limit + 1)
    page = events[:limit]
    emails = await emails_of(conn, {event.actor_id for event in page if event.actor_id})
    return [item_of(event, emails) for event in page], page[-1].event_id if len(events) > limit else None
