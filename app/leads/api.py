"""The leads API (SPEC §8): the caller's leads, one lead, deleting one, and all as CSV.

Owner-only: a lead is the business of the account that owned the card when it arrived
("the owner's Leads"); a team admin sees their own leads, not the others'.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, Router, delete, get
from litestar.params import FromPath, QueryParameter

from app.api import pagination
from app.api.openapi import TEXT, media_types
from app.api.problems import AUTHENTICATED, WRITE, problems
from app.db import DatabaseDep
from app.leads.leads import Lead, LeadPage, delete_lead, lead_of, leads_of, to_csv

CardFilter = Annotated[str | None, QueryParameter(max_length=64, description="only the leads from this card")]
Search = Annotated[
    str | None, QueryParameter(max_length=200, description="only leads whose name, email, phone, company or note contain this")
]


def csv_response(body: str) -> Response[str]:
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="leads.csv"', "Cache-Control": "private, no-cache",
    })


@get(
    "/", operation_id="listLeads", summary="The caller's leads, newest first", responses=problems(*AUTHENTICATED, 400, 422),
)
async def list_leads_handler(
    request: Request, db: DatabaseDep, cardId: CardFilter = None, q: Search = None,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT, cursor: pagination.Cursor = None,
) -> LeadPage:
    rows = await leads_of(db, request.user.user_id, card_id=cardId, query=q, limit=limit + 1,
                          before_id=pagination.before(cursor))
    page, next_cursor = pagination.page_of(rows, limit, lambda row: row[0])
    return LeadPage(items=[lead for _, lead in page], next_cursor=next_cursor)


# Declared before /{leadId}: a static path wins over a parameter in Litestar's router anyway.
@get(
    "/export.csv", operation_id="exportLeads", summary="All the caller's leads as CSV (formula-like cells neutralised)",
    media_type="text/csv", responses=problems(*AUTHENTICATED, 400, 422),
    operation_class=media_types(200, {"text/csv": TEXT}),
)
async def export_leads_handler(request: Request, db: DatabaseDep, cardId: CardFilter = None) -> Response[str]:
    rows = await leads_of(db, request.user.user_id, card_id=cardId)
    return csv_response(to_csv([lead for _, lead in rows]))


@get("/{leadId:str}", operation_id="getLead", summary="One of the caller's leads", responses=problems(*AUTHENTICATED, 400, 404))
async def get_lead_handler(request: Request, leadId: FromPath[str], db: DatabaseDep) -> Lead:
    return await lead_of(db, request.user.user_id, leadId)


@delete(
    "/{leadId:str}", operation_id="deleteLead", summary="Delete one of the caller's leads", status_code=204,
    responses=problems(*AUTHENTICATED, *WRITE, 400, 404),
)
async def delete_lead_handler(request: Request, leadId: FromPath[str], db: DatabaseDep) -> None:
    await delete_lead(db, request.user.user_id, leadId)


router = Router(
    "/leads", route_handlers=[list_leads_handler, export_leads_handler, get_lead_handler, delete_lead_handler], tags=["leads"],
)
