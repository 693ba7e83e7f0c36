"""The contact exchange at an edge (SPEC §8), both ends.

At the edge, `exchange_at_edge` answers POST /p/{slug}/exchange: the form goes to the
primary as any request the edge cannot answer (its answer passed back as it is). Only when
the primary cannot be reached at all (the connection is refused or times out, so it never
saw the request) does the edge check the form itself (the same `check_exchange` as the
primary: honeypot, signed token, fields; edges share JWT_SECRET with the primary), mint the
lead's id, keep the lead in its outbox file (app/edge/outbox.py) and tell the visitor "Sent".
`LeadShipper` sends what is kept to the primary's `POST /internal/leads`, oldest first, and
forgets a lead once the primary acknowledges it. The lead id makes a lead sent twice (an
acknowledgement lost) a no-op: the primary's `apply_shipped_lead` stores a lead id once.
On Fly the form is replayed to the primary region like every other write (`fly-replay`).
The hourly limits are the primary's; a lead kept at an edge while the primary is down is
not held to them (the scanner limit still applies per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qsl

import httpx
import msgspec
from litestar import Request, Response, post
from litestar.params import FromPath, JSONBody
from prometheus_client import Counter

from app.api.problems import BODY, problems
from app.cards.types import Card
from app.config import Settings
from app.db import DatabaseDep, isoformat, utc_clock
from app.edge.outbox import EdgeOutbox, backoff
from app.leads.exchange import Refused, check_exchange, sent_page
from app.leads.leads import NewLead, apply_shipped_lead
from app.public.answers import Visit
from app.public.pages import not_found, too_many_requests

log = logging.getLogger("app.edge_leads")

LEADS_PATH = "/internal/leads"
KEPT = Counter("edge_leads_kept", "Leads an edge kept in its outbox while the primary was unreachable")
SHIPPED = Counter("edge_leads_shipped", "Leads an edge shipped to the primary and the primary acknowledged")


class LeadResult(msgspec.Struct, rename="camel"):
    applied: bool  # False: stored before (sent again), or its card is gone; either way the edge may forget it


# --- the primary's end -------------------------------------------------------------------


@post(
    LEADS_PATH, operation_id="applyShippedLead", status_code=200,
    summary="Store a lead an edge kept while the primary was unreachable, once by its lead id",
    responses=problems(401, *BODY, 503),
)
async def receive_lead(request: Request, data: JSONBody[NewLead], db: DatabaseDep) -> LeadResult:
    state = request.app.state
    return LeadResult(applied=await apply_shipped_lead(db, state.outbox, state.settings, data))


# --- the edge's end ----------------------------------------------------------------------


@post("/p/{slug:str}/exchange", include_in_schema=False)
async def exchange_at_edge(request: Request, slug: FromPath[str]) -> Response:
    body = await request.body()
    answer = await request.app.state.primary.send_form(request.scope, body)
    return answer if answer is not None else await keep_here(request, slug, body)


async def keep_here(request: Request, slug: str, body: bytes) -> Response:
    public = request.app.state.public
    settings: Settings = public.settings
    visit = Visit.of(request, settings)
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after).response()
    found = await public.cards.get(slug)  # AskPrimary (a card the copy lacks): the 503 page, via ask_primary
    if not isinstance(found, Card):
        return not_found(found).response()
    posted = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    now = public.counters.seconds()
    checked = check_exchange(settings, found, posted, now, visit.client)
    if isinstance(checked, Refused):
        return checked.response
    outbox: EdgeOutbox = request.app.state.edge_outbox
    lead = msgspec.structs.replace(checked, consented_at=isoformat(utc_clock()))
    await outbox.keep_lead(msgspec.json.encode(lead))
    KEPT.inc()
    return sent_page(found, lead)


class LeadShipper:
    """Sends the leads an edge kept to the primary, oldest first, until each is acknowledged."""

    def __init__(self, outbox: EdgeOutbox, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.primary_internal_url and settings.edge_token, "an edge has both (checked in app.config)"
        self.outbox = outbox
        self._client = httpx.AsyncClient(
            base_url=settings.primary_internal_url, transport=transport, timeout=10.0,
            headers={"Authorization": f"Bearer {settings.edge_token}", "Content-Type": "application/json"},
        )
        self._task: asyncio.Task | None = None
        self.failures = 0

    def retarget(self, settings: Settings) -> None:
        """Ship to another primary from the next attempt on (app/ops/failover.py)."""
        self._client.base_url = settings.primary_internal_url or ""

    async def ship_waiting(self) -> int:
        """Ship every kept lead; returns how many. Raises httpx.HTTPError or RuntimeError (non-2xx),
        leaving that lead and those after it kept."""
        shipped = 0
        while (kept := await self.outbox.oldest_lead()) is not None:
            seq, body = kept
            response = await self._client.post(LEADS_PATH, content=body)
            if not response.is_success:
                raise RuntimeError(f"lead {seq}: the primary answered {response.status_code}: {response.text[:200]}")
            await self.outbox.remove_lead(seq)
            SHIPPED.inc()
            shipped += 1
        self.failures = 0
        return shipped

    async def run(self) -> None:
        while True:
            await self.outbox.leads_added.wait()
            self.outbox.leads_added.clear()
            while True:
                try:
                    await self.ship_waiting()
                    break
                except (httpx.HTTPError, RuntimeError) as exc:
                    self.failures += 1
                    if self.failures == 1:
                        log.warning("shipping kept leads to the primary failed; retrying: %s", exc)
                    await asyncio.sleep(backoff(self.failures))

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()
