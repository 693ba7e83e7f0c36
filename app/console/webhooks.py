"""The Webhooks pages under Account (SPEC §9): the account's webhooks and a form to add one
(its secret shown once, on the answer to the POST, like an API key), one webhook with its
delivery log, and its actions: send a test, retry a delivery, rotate the secret (the new
one shown once), enable or disable, delete with a confirmation. The operations are those
of app/events/webhooks.py, as for /v1/webhooks."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from app.api import pagination
from app.config import SettingsDep
from app.console.web import form_of, page, see_other
from app.db import Database, DatabaseDep
from app.errors import Conflict, Invalid
from app.events import webhooks
from app.events.events import EVENT_TYPES

PER_PAGE = 25
LABELS = {"url": "URL", "events": "Events", "description": "Description"}


def _events_of(form: dict[str, str]) -> list[str]:
    if form.get("all-events") == "yes":
        return ["*"]
    return [event for event in EVENT_TYPES if form.get(f"event-{event}") == "yes"]


async def _list_page(request: Request, db: Database, *, status: int = 200, values: dict | None = None,
                     errors: dict | None = None, created: webhooks.CreatedWebhook | None = None) -> Response:
    hooks = await webhooks.webhooks_of(db, request.user.user_id)
    return page(request, "console/webhooks/list.html", status=status, section="account", webhooks=hooks,
                values=values or {"url": "", "events": ["*"], "description": ""}, errors=errors or {}, created=created,
                event_types=EVENT_TYPES)


@get("/account/webhooks")
async def webhooks_page(request: Request, db: DatabaseDep) -> Response:
    return await _list_page(request, db)


@post("/account/webhooks")
async def create_webhook(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    form = await form_of(request)
    values = {"url": form.get("url", "").strip(), "events": _events_of(form), "description": form.get("description", "").strip()}
    errors = {}
    if not values["url"]:
        errors["url"] = "Enter the address that should receive the events, like https://crm.example.com/hooks/qr"
    if not values["events"]:
        errors["events"] = "Choose at least one kind of event, or all of them"
    if len(values["description"]) > 200:
        errors["description"] = "Keep it under 200 characters"
    if not errors:
        new = webhooks.NewWebhook(url=values["url"], events=values["events"], description=values["description"] or None)
        try:
            created = await webhooks.create_webhook(db, request.user.user_id, new, settings.webhook_allow_private)
        except Invalid as exc:
            errors = {error["field"]: _said(error["message"]) for error in exc.errors or [{"field": "url", "message": exc.message}]}
        except Conflict as exc:
            errors = {"url": _said(exc.message)}
        else:
            # The secret exists on this answer only (pages are never cached: Cache-Control no-store).
            return await _list_page(request, db, status=201, created=created)
    return await _list_page(request, db, status=422, values=values, errors=errors)


def _said(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


async def _show(request: Request, db: Database, webhook_id: str, *, cursor: str = "", status: int = 200,
                rotated: webhooks.RotatedSecret | None = None) -> Response:
    user_id = request.user.user_id
    webhook = await webhooks.webhook_of_user(db, user_id, webhook_id)
    rows = await webhooks.deliveries_of(db, user_id, webhook_id, PER_PAGE + 1, pagination.before(cursor or None))
    shown, next_cursor = pagination.page_of(rows, PER_PAGE, lambda row: row[0])
    return page(request, "console/webhooks/show.html", status=status, section="account", webhook=webhook,
                deliveries=[delivery for _, delivery in shown], next_cursor=next_cursor, rotated=rotated)


@get("/account/webhooks/{webhookId:str}")
async def webhook_page(request: Request, webhookId: FromPath[str], db: DatabaseDep,
                       cursor: Annotated[str, QueryParameter(max_length=18, pattern=r"^[0-9]*$")] = "") -> Response:
    return await _show(request, db, webhookId, cursor=cursor)


@post("/account/webhooks/{webhookId:str}/test")
async def send_test(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Response:
    await webhooks.send_test(db, request.user.user_id, webhookId, request.app.state.webhook_sender.wake)
    return see_other(f"/app/account/webhooks/{webhookId}", flash="webhook-test-sent")


@post("/account/webhooks/{webhookId:str}/deliveries/{deliveryId:str}/retry")
async def retry_delivery(request: Request, webhookId: FromPath[str], deliveryId: FromPath[str], db: DatabaseDep) -> Response:
    await webhooks.retry_delivery(db, request.user.user_id, webhookId, deliveryId, request.app.state.webhook_sender.wake)
    return see_other(f"/app/account/webhooks/{webhookId}", flash="webhook-retried")


@post("/account/webhooks/{webhookId:str}/rotate")
async def rotate_secret(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Response:
    rotated = await webhooks.rotate_secret(db, request.user.user_id, webhookId)
    # Shown on this answer only, never through a redirect or a cookie.
    return await _show(request, db, webhookId, rotated=rotated)


@post("/account/webhooks/{webhookId:str}/enabled")
async def set_enabled(request: Request, webhookId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    enabled = (await form_of(request)).get("enabled") == "yes"
    await webhooks.change_webhook(db, request.user.user_id, webhookId, webhooks.WebhookChanges(enabled=enabled),
                                  settings.webhook_allow_private, request.app.state.webhook_sender.wake)
    return see_other(f"/app/account/webhooks/{webhookId}", flash="webhook-enabled" if enabled else "webhook-disabled")


@get("/account/webhooks/{webhookId:str}/delete")
async def delete_form(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Response:
    webhook = await webhooks.webhook_of_user(db, request.user.user_id, webhookId)
    return page(request, "console/webhooks/delete.html", section="account", webhook=webhook)


@post("/account/webhooks/{webhookId:str}/delete")
async def delete_webhook(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Response:
    await webhooks.delete_webhook(db, request.user.user_id, webhookId)
    return see_other("/app/account/webhooks", flash="webhook-deleted")


handlers = [webhooks_page, create_webhook, webhook_page, send_test, retry_delivery, rotate_secret, set_enabled, delete_form,
            delete_webhook]
