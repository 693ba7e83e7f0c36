"""The webhooks API (SPEC §9): /v1/webhooks, its test message, secret rotation and delivery
log. Owner-only: another account's webhook is a 404, an admin's included. The operations
are in app/events/webhooks.py; the sender (app.state.webhook_sender) is woken by them."""

from __future__ import annotations

from litestar import Request, Router, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from app.api import pagination
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.config import SettingsDep
from app.db import DatabaseDep
from app.events import webhooks
from app.events.webhooks import CreatedWebhook, Delivery, DeliveryPage, NewWebhook, RotatedSecret, Webhook, WebhookChanges


def _wake(request: Request):
    return request.app.state.webhook_sender.wake


@post(
    "/", operation_id="createWebhook", summary="Register a webhook (its secret is shown once)", status_code=201,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 409),
)
async def create_webhook_handler(request: Request, data: JSONBody[NewWebhook], db: DatabaseDep,
                                 settings: SettingsDep) -> CreatedWebhook:
    return await webhooks.create_webhook(db, request.user.user_id, data, settings.webhook_allow_private)


@get("/", operation_id="listWebhooks", summary="The caller's webhooks, without their secrets", responses=problems(*AUTHENTICATED))
async def list_webhooks_handler(request: Request, db: DatabaseDep) -> list[Webhook]:
    return await webhooks.webhooks_of(db, request.user.user_id)


@get("/{webhookId:str}", operation_id="getWebhook", summary="One of the caller's webhooks", responses=problems(*AUTHENTICATED, 404))
async def get_webhook_handler(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Webhook:
    return await webhooks.webhook_of_user(db, request.user.user_id, webhookId)


@patch(
    "/{webhookId:str}", operation_id="updateWebhook", summary="Change a webhook's URL, events, description or enabled",
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 404),
)
async def update_webhook_handler(request: Request, webhookId: FromPath[str], data: JSONBody[WebhookChanges],
                                 db: DatabaseDep, settings: SettingsDep) -> Webhook:
    return await webhooks.change_webhook(db, request.user.user_id, webhookId, data, settings.webhook_allow_private,
                                         _wake(request))


@delete(
    "/{webhookId:str}", operation_id="deleteWebhook", summary="Delete a webhook and its delivery log", status_code=204,
    responses=problems(*AUTHENTICATED, *WRITE, 404),
)
async def delete_webhook_handler(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> None:
    await webhooks.delete_webhook(db, request.user.user_id, webhookId)


@post(
    "/{webhookId:str}/test", operation_id="testWebhook", summary="Send a webhook.test message now", status_code=202,
    responses=problems(*AUTHENTICATED, *WRITE, 404),
)
async def test_webhook_handler(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> Delivery:
    return await webhooks.send_test(db, request.user.user_id, webhookId, _wake(request))


@post(
    "/{webhookId:str}/rotate-secret", operation_id="rotateWebhookSecret", status_code=200,
    summary="A new secret (shown once); the old one keeps signing beside it for 24 h",
    responses=problems(*AUTHENTICATED, *WRITE, 404),
)
async def rotate_secret_handler(request: Request, webhookId: FromPath[str], db: DatabaseDep) -> RotatedSecret:
    return await webhooks.rotate_secret(db, request.user.user_id, webhookId)


@get(
    "/{webhookId:str}/deliveries", operation_id="listWebhookDeliveries", summary="A webhook's delivery log, newest first",
    responses=problems(*AUTHENTICATED, 400, 404, 422),
)
async def list_deliveries_handler(
    request: Request, webhookId: FromPath[str], db: DatabaseDep,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT, cursor: pagination.Cursor = None,
) -> DeliveryPage:
    rows = await webhooks.deliveries_of(db, request.user.user_id, webhookId, limit + 1, pagination.before(cursor))
    page, next_cursor = pagination.page_of(rows, limit, lambda row: row[0])
    return DeliveryPage(items=[delivery for _, delivery in page], next_cursor=next_cursor)


@post(
    "/{webhookId:str}/deliveries/{deliveryId:str}/retry", operation_id="retryWebhookDelivery", status_code=202,
    summary="Attempt a delivery again now (same webhook-id)", responses=problems(*AUTHENTICATED, *WRITE, 404, 409),
)
async def retry_delivery_handler(request: Request, webhookId: FromPath[str], deliveryId: FromPath[str],
                                 db: DatabaseDep) -> Delivery:
    return await webhooks.retry_delivery(db, request.user.user_id, webhookId, deliveryId, _wake(request))


router = Router(
    "/webhooks",
    route_handlers=[
        create_webhook_handler, list_webhooks_handler, get_webhook_handler, update_webhook_handler, delete_webhook_handler,
        test_webhook_handler, rotate_secret_handler, list_deliveries_handler, retry_delivery_handler,
    ],
    tags=["webhooks"],
)
