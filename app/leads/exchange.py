"""POST /p/{slug}/exchange: the card page's contact exchange form, answered at the primary.

Parse, check, call `capture_lead`, answer a page: "Sent" (200), the form again with what
was wrong (400 for a missing, forged or expired token, with a fresh one; 422 for the
fields), or a short page (400 honeypot, 404/410 no card, 429 over a limit). Every refusal
is a friendly page with a 4xx status, and nothing is kept.

`check_exchange` is what the edge (app/edge/leads.py) runs too, when it keeps a lead itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request, Response, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from app.cards.types import Card
from app.config import Settings
from app.errors import Limited, NotFound
from app.leads import form
from app.leads.leads import NewLead, capture_lead
from app.public.answers import Visit
from app.public.pages import GONE, PAGE_STYLE, TEMPLATES, Answer, exchange_page, not_found, page_answer, too_many_requests

FIELDS = ("name", "email", "phone", "company", "note")
HONEYPOT_PAGE = page_answer(400, "Not sent", "This form could not be sent. Please go back to the card and try again.")
TOKEN_MESSAGE = {
    "missing": "This form could not be checked. Please send it again.",
    "bad": "This form could not be checked. Please send it again.",
    "expired": "This form was open for more than a day. Please send it again.",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """Why an exchange POST is refused, as a page."""

    response: Response


async def submitted_form(request: Request) -> dict[str, str]:
    """The posted form as plain strings (an unparsable or non-form body is an empty form)."""
    try:
        data = await request.form()
    except Exception:  # noqa: BLE001 - a malformed body is a refused form, never a 5xx
        return {}
    return {key: value for key, value in data.items() if isinstance(value, str)}


def check_exchange(settings: Settings, card: Card, posted: dict[str, str], now: float, client: str) -> NewLead | Refused:
    """The lead the form describes, or the page refusing it (honeypot, token, fields)."""
    if posted.get(form.HONEYPOT):
        return Refused(HONEYPOT_PAGE.response())
    sent = form.Submitted.of(posted)
    values = {name: getattr(sent, name) for name in FIELDS}
    checked = (sent.consent, sent.wants_card)
    fresh = form.issue_token(settings.jwt_secret, card.slug, form.window_start(now))
    if problem := form.token_problem(settings.jwt_secret, card.slug, posted.get("token"), now):
        return Refused(exchange_page(400, card, fresh, values, {"form": TOKEN_MESSAGE[problem]}, checked))
    if errors := form.field_errors(sent):
        return Refused(exchange_page(422, card, fresh, values, errors, checked))
    return NewLead.of(card, sent, form.client_key(settings.jwt_secret, client))


def sent_page(card: Card, lead: NewLead) -> Response:
    text = f"Thank you. {card.full_name} has your details."
    if lead.wants_card:
        text += " Their card is on its way to your inbox."
    body = TEMPLATES.get_template("message.html").render(title="Sent", text=text, style=PAGE_STYLE).encode()
    return Answer(200, [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")], body).response()


PAGES = {
    status: ResponseSpec(str, description=description, media_type="text/html", generate_examples=False)
    for status, description in {
        400: "Missing, forged or expired form token (the form again, with a fresh token), or the honeypot filled",
        404: "No such card", 410: "The card was deleted",
        422: "A field is not acceptable, or consent is not given (the form again, each error by its field)",
        429: "Over the per-client or per-card limit of the hour (Retry-After)",
    }.items()
}


@post(
    "/p/{slug:str}/exchange", operation_id="exchangeContact", status_code=200, tags=["public"],
    summary="Send your contact details to the card's owner (the card page's form)",
    description="An HTML form post (application/x-www-form-urlencoded): name, email, phone, company, note, "
    "consent=yes, send_card=yes, and the page's token. Answers HTML pages for people.",
    responses=PAGES,
)
async def exchange(request: Request, slug: FromPath[str]) -> Response:
    public = request.app.state.public
    settings: Settings = public.settings
    visit = Visit.of(request, settings)
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after).response()
    found = await public.cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found).response()
    checked = check_exchange(settings, found, await submitted_form(request), public.counters.seconds(), visit.client)
    if isinstance(checked, Refused):
        return checked.response
    try:
        await capture_lead(request.app.state.db, request.app.state.outbox, settings, found, checked)
    except Limited as exc:
        return too_many_requests(exc.retry_after).response()
    except NotFound:
        return GONE.response()
    return sent_page(found, checked)


handlers = [exchange]
