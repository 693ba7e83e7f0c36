"""Leads: the types, the SQL and the operations of the contact exchange (SPEC §8).

`capture_lead` is the one operation that stores a lead, whichever door it came in by (the
card page's form at the primary, or a lead an edge kept while the primary was down): in
one transaction it checks the limits, writes the row, and queues the owner's email and,
when asked, the visitor's copy of the card; the outbox is woken after the commit.

A lead belongs to the account that owned the card when it arrived and is deleted with that
account. It is kept when its card is deleted (the console and the API say "deleted card",
from the card's name and slug kept in the row): the owner asked for these people's details
through that card, and deleting a card is not asking to forget who answered it.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import aiosqlite
import msgspec

from app import mail
from app.cards import vcard
from app.cards.content import split_full_name
from app.cards.store import CARD_COLUMNS
from app.cards.store import card_from_row as card_of_row
from app.cards.types import Card
from app.config import Settings
from app.db import Database, Tx, fetch_all, fetch_one, isoformat
from app.errors import Limited, NotFound
from app.fields import csv_cell
from app.leads.form import Submitted, consent_text

HOUR = timedelta(hours=1)

# --- types ---------------------------------------------------------------------------


class Lead(msgspec.Struct, rename="camel"):
    """A lead as the API, the console and the account export show it."""

    lead_id: str
    card_id: str
    card_slug: str
    card_name: str
    card_deleted: bool  # the card was deleted since; the lead is kept
    name: str
    email: str | None
    phone: str | None
    company: str | None
    note: str | None
    consent_text: str  # the sentence the visitor agreed to, verbatim
    consented_at: str
    wants_card: bool  # the visitor asked for the owner's card by email
    created_at: str


class LeadPage(msgspec.Struct, rename="camel"):
    items: list[Lead]
    next_cursor: str | None


class NewLead(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A lead on its way to be stored: checked already (app.leads.form), with its key minted."""

    lead_id: str
    card_id: str
    name: str
    email: str | None
    phone: str | None
    company: str | None
    note: str | None
    consent_text: str
    consented_at: str | None  # None: the transaction's time (the primary's own form)
    wants_card: bool
    client_key: str

    @classmethod
    def of(cls, card: Card, sent: Submitted, client_key: str, consented_at: str | None = None,
           lead_id: str | None = None) -> NewLead:
        return cls(
            lead_id=lead_id or uuid.uuid4().hex, card_id=card.card_id, name=sent.name, email=sent.email or None,
            phone=sent.phone or None, company=sent.company or None, note=sent.note or None,
            consent_text=consent_text(card.full_name), consented_at=consented_at, wants_card=sent.wants_card,
            client_key=client_key,
        )


# --- SQL -----------------------------------------------------------------------------

_COLUMNS = """leads.id, leads.lead_id, leads.card_id, leads.card_slug, leads.card_name,
    cards.id IS NULL AS card_deleted, leads.name, leads.email, leads.phone, leads.company, leads.note,
    leads.consent_text, leads.consented_at, leads.wants_card, leads.created_at"""
_FROM = "FROM leads LEFT JOIN cards ON cards.card_id = leads.card_id"


def _lead(row: Any) -> Lead:
    values = dict(row)
    del values["id"]
    values["card_deleted"] = bool(values["card_deleted"])
    values["wants_card"] = bool(values["wants_card"])
    return Lead(**values)


def _search(query: str) -> str:
    """A LIKE pattern matching `query` anywhere, its own % and _ taken literally."""
    return "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_leads(
    conn: aiosqlite.Connection, user_id: str, *, card_id: str | None = None, query: str | None = None,
    limit: int = -1, before_id: int = 2**63 - 1,
) -> list[tuple[int, Lead]]:
    """The account's leads, newest first, with their row ids (the cursor); `limit` -1 for all."""
    where = ["leads.user_id = :user_id", "leads.id < :before"]
    params: dict[str, Any] = {"user_id": user_id, "before": before_id, "limit": limit}
    if card_id:
        where.append("leads.card_id = :card_id")
        params["card_id"] = card_id
    if query:
        where.append(
            "(leads.name LIKE :q ESCAPE '\\' OR leads.email LIKE :q ESCAPE '\\' OR leads.phone LIKE :q ESCAPE '\\'"
            " OR leads.company LIKE :q ESCAPE '\\' OR leads.note LIKE :q ESCAPE '\\')"
        )
        params["q"] = _search(query)
    rows = await fetch_all(
        conn, f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)} ORDER BY leads.id DESC LIMIT :limit", params
    )
    return [(row["id"], _lead(row)) for row in rows]


async def get_lead(conn: aiosqlite.Connection, user_id: str, lead_id: str) -> Lead | None:
    row = await fetch_one(conn, f"SELECT {_COLUMNS} {_FROM} WHERE leads.user_id = ? AND leads.lead_id = ?", (user_id, lead_id))
    return None if row is None else _lead(row)


async def lead_cards(conn: aiosqlite.Connection, user_id: str) -> list[tuple[str, str, bool]]:
    """The cards the account has leads from (id, name, deleted), for the per-card filter."""
    rows = await fetch_all(
        conn,
        """SELECT leads.card_id, max(leads.card_name) AS card_name, max(cards.id IS NULL) AS deleted
        FROM leads LEFT JOIN cards ON cards.card_id = leads.card_id
        WHERE leads.user_id = ? GROUP BY leads.card_id ORDER BY card_name""",
        (user_id,),
    )
    return [(row["card_id"], row["card_name"], bool(row["deleted"])) for row in rows]


async def recent_count(conn: aiosqlite.Connection, column: str, value: str, since: str) -> int:
    assert column in ("card_id", "client_key")
    row = await fetch_one(conn, f"SELECT count(*) AS n FROM leads WHERE {column} = ? AND created_at > ?", (value, since))
    return row["n"]


async def insert_lead(conn: aiosqlite.Connection, user_id: str, card: Card, lead: NewLead, now: str) -> bool:
    """Store the lead; False when a lead with its id is stored already (shipped again)."""
    cursor = await conn.execute(
        """INSERT INTO leads (lead_id, user_id, card_id, card_slug, card_name, name, email, phone, company, note,
            consent_text, consented_at, wants_card, client_key, created_at)
        VALUES (:lead_id, :user_id, :card_id, :card_slug, :card_name, :name, :email, :phone, :company, :note,
            :consent_text, coalesce(:consented_at, :now), :wants_card, :client_key, :now)
        ON CONFLICT (lead_id) DO NOTHING""",
        {**msgspec.structs.asdict(lead), "user_id": user_id, "card_slug": card.slug, "card_name": card.full_name, "now": now},
    )
    return cursor.rowcount == 1


async def card_by_id(conn: aiosqlite.Connection, card_id: str) -> Card | None:
    row = await fetch_one(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE card_id = ?", (card_id,))
    return None if row is None else card_of_row(row)


async def owner_of(conn: aiosqlite.Connection, card_id: str) -> tuple[str, str] | None:
    """The user id and account email of the card's owner now (None when the card is gone)."""
    row = await fetch_one(
        conn, "SELECT users.user_id, users.email FROM cards JOIN users USING (user_id) WHERE cards.card_id = ?", (card_id,)
    )
    return None if row is None else (row["user_id"], row["email"])


async def delete_lead_row(conn: aiosqlite.Connection, user_id: str, lead_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM leads WHERE user_id = ? AND lead_id = ?", (user_id, lead_id))
    return cursor.rowcount == 1


# --- messages ------------------------------------------------------------------------


def lead_vcard(lead: Lead | NewLead) -> str:
    """The visitor as a vCard 3.0 (the console's and the API's .vcf of one lead), the name
    split by the cards' rule (app/cards/content.py)."""
    name = split_full_name(lead.name)
    lines = [
        "N:" + vcard.structured(name.family, name.given, name.middle, name.prefix, name.suffix),
        "FN:" + vcard.escape(lead.name),
    ]
    if lead.company:
        lines.append("ORG:" + vcard.escape(lead.company))
    if lead.email:
        lines.append("EMAIL;TYPE=INTERNET:" + vcard.escape(lead.email))
    if lead.phone:
        lines.append("TEL;TYPE=CELL:" + vcard.escape(lead.phone))
    if lead.note:
        lines.append("NOTE:" + vcard.escape(lead.note))
    return vcard.assemble(lines, 3)


def owner_email(settings: Settings, to: str, card: Card, lead: NewLead) -> EmailMessage:
    details = [("Name", lead.name), ("Email", lead.email), ("Phone", lead.phone), ("Company", lead.company), ("Note", lead.note)]
    shown = [(label, value) for label, value in details if value]
    link = f"{settings.public_base_url}/app/leads/{lead.lead_id}"
    text = [f"{lead.name} shared their details with you from your card “{card.full_name}”.", ""]
    text += [f"{label}: {value}" for label, value in shown]
    text += ["", f"They agreed: “{lead.consent_text}”", "", f"See the lead: {link}"]
    html = mail.render_html(
        "lead.html", name=lead.name, card_name=card.full_name, details=shown, consent=lead.consent_text, link=link,
        button="Open your leads", footer="You get this email because someone used the form under your QR Contact card.",
    )
    reply_to = (lead.name, lead.email) if lead.email else None
    return mail.compose(settings, to=to, subject=f"New contact from your card: {lead.name}", text="\n".join(text) + "\n",
                        html=html, reply_to=reply_to)


def card_email(settings: Settings, card: Card, lead: NewLead) -> EmailMessage:
    """The visitor's copy of the owner's card, with the card's .vcf attached."""
    assert lead.email is not None, "form.field_errors asks for an address when the card is wanted"
    link = f"{settings.public_base_url}/p/{card.slug}"
    role = ", ".join(part for part in (card.title, card.organization) if part)
    text = [f"Here is {card.full_name}'s contact card, as you asked.", role, "",
            f"Open the card: {link}", "Their vCard is attached: open it to save the contact."]
    html = mail.render_html(
        "lead_card.html", name=card.full_name, role=role, link=link, button="Open the card",
        footer="You get this email because you asked for this card on its page. We will not send you more.",
    )
    message = mail.compose(settings, to=lead.email, subject=f"{card.full_name}'s contact card",
                           text="\n".join(line for line in text if line is not None) + "\n", html=html,
                           reply_to=(card.full_name, card.email))
    message.add_attachment(card.vcard().encode(), maintype="text", subtype="vcard", filename=f"{card.slug}.vcf")
    return message


# --- operations ----------------------------------------------------------------------


async def capture_lead(
    db: Database, outbox: mail.Outbox, settings: Settings, card: Card, lead: NewLead, *, limited: bool = True
) -> bool:
    """Store a lead from `card`'s page and queue its emails; True if stored now, False if it
    was stored before (the same lead_id). Raises NotFound (the card is gone) and Limited
    (over LEADS_PER_IP_HOUR or LEADS_PER_CARD_HOUR, when `limited`)."""
    async with db.write() as tx:
        owner = await owner_of(tx.conn, card.card_id)
        if owner is None:
            raise NotFound("no such card")
        if limited:
            await _refuse_over_limits(tx, settings, lead)
        if not await insert_lead(tx.conn, owner[0], card, lead, tx.now_text):
            return False
        await mail.enqueue(tx, outbox, owner_email(settings, owner[1], card, lead), kind="lead", user_id=owner[0])
        if lead.wants_card:
            await mail.enqueue(tx, outbox, card_email(settings, card, lead), kind="lead_card", user_id=owner[0])
        # Here, after the insert that happens once per lead_id, so a lead an edge ships
        # again records no second event. Its public shape only: no contact details beyond
        # name and company (the lead itself holds those), never the client key.
        await tx.emit("lead.captured", {"leadId": lead.lead_id, "cardId": card.card_id, "cardSlug": card.slug,
                                        "userId": owner[0], "name": lead.name, "company": lead.company},
                      user_id=owner[0])
    return True


async def apply_shipped_lead(db: Database, outbox: mail.Outbox, settings: Settings, lead: NewLead) -> bool:
    """A lead an edge kept while the primary was unreachable: stored once by its lead_id
    (True if now), without the hourly limits (the visitor was told "Sent" already); False
    too when its card was deleted meanwhile (nothing to tell its owner through)."""
    async with db.read() as conn:
        card = await card_by_id(conn, lead.card_id)
    if card is None:
        return False
    try:
        return await capture_lead(db, outbox, settings, card, lead, limited=False)
    except NotFound:
        return False


async def _refuse_over_limits(tx: Tx, settings: Settings, lead: NewLead) -> None:
    since = isoformat(tx.now - HOUR)
    if await recent_count(tx.conn, "client_key", lead.client_key, since) >= settings.leads_per_ip_hour:
        raise Limited("too many contact details sent from this address; try again later", retry_after=3600)
    if await recent_count(tx.conn, "card_id", lead.card_id, since) >= settings.leads_per_card_hour:
        raise Limited("this card has taken too many contact details this hour; try again later", retry_after=3600)


async def leads_of(
    db: Database, user_id: str, *, card_id: str | None = None, query: str | None = None, limit: int = -1,
    before_id: int = 2**63 - 1,
) -> list[tuple[int, Lead]]:
    async with db.read() as conn:
        return await list_leads(conn, user_id, card_id=card_id, query=query, limit=limit, before_id=before_id)


async def lead_of(db: Database, user_id: str, lead_id: str) -> Lead:
    """The account's lead. Raises NotFound (no such lead, or another account's)."""
    async with db.read() as conn:
        lead = await get_lead(conn, user_id, lead_id)
    if lead is None:
        raise NotFound("no such lead")
    return lead


async def delete_lead(db: Database, user_id: str, lead_id: str) -> None:
    """Delete the account's lead. Raises NotFound."""
    async with db.write() as tx:
        if not await delete_lead_row(tx.conn, user_id, lead_id):
            raise NotFound("no such lead")


CSV_HEADER = ["created_at", "name", "email", "phone", "company", "note", "card", "card_slug", "card_deleted",
              "consent_text", "consented_at", "wants_card", "lead_id"]


def to_csv(leads: list[Lead]) -> str:
    """The leads as a CSV table; a cell a spreadsheet would run as a formula starts with an apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for lead in leads:
        row = [lead.created_at, lead.name, lead.email or "", lead.phone or "", lead.company or "", lead.note or "",
               lead.card_name, lead.card_slug, "yes" if lead.card_deleted else "no", lead.consent_text,
               lead.consented_at, "yes" if lead.wants_card else "no", lead.lead_id]
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()
