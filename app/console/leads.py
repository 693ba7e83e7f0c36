"""The Leads pages: the owner's leads with search and a per-card filter, one lead, its .vcf,
deleting it with a confirmation, and all (or one card's) as CSV. The operations are those
of app.leads.leads, as for /v1/leads."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from app.api import pagination
from app.console.web import page, see_other
from app.db import DatabaseDep
from app.leads import leads
from app.leads.api import csv_response

PER_PAGE = 50
Filter = Annotated[str, QueryParameter(max_length=200)]


@get("/leads")
async def leads_list(
    request: Request, db: DatabaseDep, q: Filter = "", card: Filter = "",
    cursor: Annotated[str, QueryParameter(max_length=18, pattern=r"^[0-9]*$")] = "",
) -> Response:
    query = q.strip()
    user_id = request.user.user_id
    rows = await leads.leads_of(db, user_id, card_id=card or None, query=query or None, limit=PER_PAGE + 1,
                                before_id=pagination.before(cursor or None))
    shown, next_cursor = pagination.page_of(rows, PER_PAGE, lambda row: row[0])
    async with db.read() as conn:
        cards = await leads.lead_cards(conn, user_id)
    return page(request, "console/leads/list.html", section="leads", leads=[lead for _, lead in shown], query=query,
                card=card, cards=cards, next_cursor=next_cursor)


@get("/leads/export.csv")
async def leads_csv(request: Request, db: DatabaseDep, card: Filter = "") -> Response:
    rows = await leads.leads_of(db, request.user.user_id, card_id=card or None)
    return csv_response(leads.to_csv([lead for _, lead in rows]))


@get("/leads/{leadId:str}")
async def lead_page(request: Request, leadId: FromPath[str], db: DatabaseDep) -> Response:
    lead = await leads.lead_of(db, request.user.user_id, leadId)
    return page(request, "console/leads/show.html", section="leads", lead=lead)


@get("/leads/{leadId:str}/vcard")
async def lead_vcard(request: Request, leadId: FromPath[str], db: DatabaseDep) -> Response:
    lead = await leads.lead_of(db, request.user.user_id, leadId)
    return Response(leads.lead_vcard(lead), media_type="text/vcard", headers={
        "Content-Disposition": f'attachment; filename="lead-{lead.lead_id}.vcf"', "Cache-Control": "private, no-cache",
    })


@get("/leads/{leadId:str}/delete")
async def delete_form(request: Request, leadId: FromPath[str], db: DatabaseDep) -> Response:
    lead = await leads.lead_of(db, request.user.user_id, leadId)
    return page(request, "console/leads/delete.html", section="leads", lead=lead)


@post("/leads/{leadId:str}/delete")
async def delete_lead(request: Request, leadId: FromPath[str], db: DatabaseDep) -> Response:
    await leads.delete_lead(db, request.user.user_id, leadId)
    return see_other("/app/leads", flash="lead-deleted")


handlers = [leads_list, leads_csv, lead_page, lead_vcard, delete_form, delete_lead]
