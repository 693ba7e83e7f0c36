"""The share page: a card's invitations by email, SMS, WhatsApp and LinkedIn, made by
sharing.share (the operation behind POST /v1/cards/{cardId}/share), and the result of a
share: each recipient's invitation, with the deep link to tap for the channels that have
no provider behind them.

The deep links carry the invitation's token, which is stored only as a hash, so the
result cannot be read back from the database: the POST keeps it for RESULT_FOR in the
app's memory store, under a random key bound to the account, and redirects to it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from app.cards import cards
from app.cards.types import Card
from app.config import SettingsDep
from app.console.web import field_error, form_of, page, see_other, sentence
from app.db import DatabaseDep
from app.errors import Invalid, Limited
from app.fields import Message, Recipient, limits_of
from app.sharing import sharing

RESULT_STORE = "console-share-results"
RESULT_FOR = 600  # seconds a share's result page can be opened again
MAX_RECIPIENTS = sharing.RECIPIENTS_MOST
CHANNEL_FIELDS = {"email": "Email addresses", "sms": "Phone numbers for SMS", "whatsapp": "Phone numbers for WhatsApp"}
LABELS = {**CHANNEL_FIELDS, "linkedin": "LinkedIn", "message": "Message", "recipients": "Recipients"}
# Emails may be separated by anything that cannot be in an address; phone numbers hold spaces.
SEPARATORS = {"email": r"[\s,;]+", "sms": r"[\n,;]+", "whatsapp": r"[\n,;]+"}


class ShareResult(msgspec.Struct):
    user_id: str
    card_id: str
    invitations: list[sharing.SharedInvitation]


def _split(channel: str, text: str) -> list[str]:
    return [item.strip() for item in re.split(SEPARATORS[channel], text) if item.strip()]


def _recipients(values: dict[str, Any]) -> tuple[list[sharing.ShareRecipient], list[str], dict[str, str]]:
    """The form's recipients in order, the form field each came from, and the errors found
    before the operation is called (too many, too long, none at all)."""
    recipients, fields, errors = [], [], {}
    for channel in CHANNEL_FIELDS:
        for item in _split(channel, values[channel]):
            if field_error(item, Recipient):
                errors[channel] = f"“{item[:40]}…” is too long for a recipient" if len(item) > 254 else f"“{item}” is not valid"
            recipients.append(sharing.ShareRecipient(channel, item))
            fields.append(channel)
    if values["linkedin"]:
        recipients.append(sharing.ShareRecipient("linkedin"))
        fields.append("linkedin")
    if not recipients:
        errors["recipients"] = "Add at least one email address or phone number, or choose LinkedIn"
    elif len(recipients) > MAX_RECIPIENTS:
        errors["recipients"] = (
            f"At most {MAX_RECIPIENTS} recipients in one share; there are {len(recipients)}. Send the rest in another share"
        )
    return recipients, fields, errors


def _invalid_recipients(exc: Invalid, recipients: list[sharing.ShareRecipient], fields: list[str]) -> dict[str, str]:
    """sharing.check_recipients' errors (recipients[i].to) said next to the form field of each recipient."""
    bad: dict[str, list[str]] = {}
    advice: dict[str, str] = {}
    for error in exc.errors or []:
        index = int(re.search(r"\[(\d+)\]", error["field"]).group(1))
        field = fields[index]
        bad.setdefault(field, []).append(recipients[index].to or "")
        advice[field] = error["message"]
    return {field: f"Not valid: {', '.join(items)}. Use {advice[field]}" for field, items in bad.items()}


def _share_page(request: Request, card: Card, *, status: int = 200, values: dict, errors: dict | None = None) -> Response:
    return page(
        request, "console/share/form.html", status=status, section="cards", card=card, values=values,
        errors=errors or {}, labels=LABELS, max_recipients=MAX_RECIPIENTS, emails_per_day=sharing.EMAILS_PER_DAY,
    )


@get("/cards/{cardId:str}/share")
async def share_form(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    values = {"email": "", "sms": "", "whatsapp": "", "linkedin": False, "message": ""}
    return _share_page(request, card, values=values)


@post("/cards/{cardId:str}/share")
async def share_card(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    form = await form_of(request)
    values = {channel: form.get(channel, "") for channel in CHANNEL_FIELDS}
    values["linkedin"] = form.get("linkedin") == "yes"
    # A message is one paragraph (it goes into an SMS and a mail header's neighbourhood).
    values["message"] = " ".join(form.get("message", "").split())
    recipients, fields, errors = _recipients(values)
    if field_error(values["message"], Message):
        errors["message"] = f"Use at most {limits_of(Message).max_length} characters; this one has {len(values['message'])}"
    if errors:
        return _share_page(request, card, status=422, values=values, errors=errors)
    try:
        answers = await sharing.share(
            db, request.app.state.outbox, settings, card, request.user.user_id, recipients, values["message"] or None
        )
    except Invalid as exc:
        return _share_page(request, card, status=422, values=values, errors=_invalid_recipients(exc, recipients, fields))
    except Limited as exc:
        return _share_page(request, card, status=429, values=values, errors={"email": sentence(exc.message, end="")})
    key = secrets.token_urlsafe(16)
    result = ShareResult(request.user.user_id, card.card_id, answers)
    store = request.app.stores.get(RESULT_STORE)
    await store.delete_expired()
    await store.set(key, msgspec.json.encode(result), expires_in=RESULT_FOR)
    new = [answer for answer in answers if answer.status != "duplicate"]
    if not new:
        flash = "shared-none"
    elif all(answer.channel == "email" for answer in new):
        flash = f"shared-emails:{len(new)}"
    else:
        flash = f"shared-links:{len(new)}"
    return see_other(f"/app/cards/{card.card_id}/share/{key}", flash=flash)


@get("/cards/{cardId:str}/share/{key:str}")
async def share_result(request: Request, cardId: FromPath[str], key: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    stored = await request.app.stores.get(RESULT_STORE).get(key) if len(key) <= 64 else None
    result = msgspec.json.decode(stored, type=ShareResult) if stored else None
    if result is None or result.user_id != request.user.user_id or result.card_id != card.card_id:
        # Kept for a few minutes only: every invitation is in the card's list, without its link.
        return Redirect(f"/app/cards/{card.card_id}/invitations", status_code=302)
    return page(request, "console/share/result.html", section="cards", card=card, invitations=result.invitations)


handlers = [share_form, share_card, share_result]
