"""POST /notify/konsol: a konsol.pro webhook, authenticated and then only used to re-fetch the payment.

Every request is written to the webhook log (what it claimed, how it was authenticated, what came of it),
never with its body, a card number, a signature or a token.
"""

from __future__ import annotations

import logging

from aiohttp import web
from pymongo.errors import PyMongoError

from billing.errors import LedgerUnavailable
from billing.networks import address_in, parse_networks
from billing.payouts.settle import WebhookResult, handle_webhook
from billing.providers.base import NotificationRejected, RawNotification
from billing.providers.konsol import (
    TOKEN_PARAMETER,
    WEBHOOK_IP,
    WebhookAnswer,
    answer_for,
    read_webhook,
    scrub,
    webhook_answer,
)
from db.payouts import KonsolWebhookLog
from webhook_server.client_ip import client_ip
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import CLOCK, HTTP, QUEUES, SETTINGS, TRUSTED_PROXIES
from webhook_server.metrics import NOTIFY_OUTCOME
from webhook_server.payout_services import konsol_client
from webhook_server.views.notify import to_response

log = logging.getLogger(__name__)


async def notify_konsol(request: web.Request) -> web.Response:
    settings, now = request.app[SETTINGS], request.app[CLOCK]()
    client = konsol_client(settings, AiohttpTransport(request.app[HTTP]))
    if client is None:
        return _respond(request, WebhookAnswer.DISABLED)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _respond(request, WebhookAnswer.TOO_LARGE)
    remote = client_ip(request.remote or "", request.headers.get("X-Forwarded-For"), request.app[TRUSTED_PROXIES])
    raw = RawNotification(path=request.path, headers=dict(request.headers), body=body, remote=remote)
    entry = KonsolWebhookLog(received_at=now, remote=remote, expected_source=remote == WEBHOOK_IP)
    secret = settings.konsol_webhook_secret.get_secret_value() if settings.konsol_webhook_secret else None
    try:
        hint = read_webhook(raw, secret=secret, query_token=request.query.get(TOKEN_PARAMETER))
    except NotificationRejected as err:
        log.warning("konsol.pro webhook from %s refused: %s", remote, err.reason.value)
        return await _logged(request, entry, WebhookResult(answer_for(err)))
    entry.authenticated_by, entry.event = hint.authenticated_by, hint.event
    entry.payment_id, entry.status_hint = scrub(hint.payment_id), hint.status
    if not entry.expected_source:
        if settings.konsol_webhook_ips and not _allowed(remote, settings.konsol_webhook_ips):
            log.warning("konsol.pro webhook from %s refused: not in KONSOL_WEBHOOK_IPS", remote)
            return await _logged(request, entry, WebhookResult(WebhookAnswer.UNAUTHORIZED))
        log.info("konsol.pro webhook from %s, not konsol.pro's documented %s", remote, WEBHOOK_IP)
    try:
        result = await handle_webhook(hint.payment_id, konsol=client, queue=request.app[QUEUES],
                                      clock=request.app[CLOCK])
    except (PyMongoError, LedgerUnavailable) as err:
        log.error("konsol.pro webhook for %s not processed, konsol.pro told to retry: %s", entry.payment_id, err)
        return await _logged(request, entry, WebhookResult(WebhookAnswer.RETRY))
    log.info("konsol.pro webhook for payment %s (%s): %s", entry.payment_id, hint.event or "no event",
             result.answer.value)
    return await _logged(request, entry, result)


async def _logged(request: web.Request, entry: KonsolWebhookLog, result: WebhookResult) -> web.Response:
    entry.outcome, entry.http_status = result.answer.value, webhook_answer(result.answer).status
    entry.claim_label = result.claim.label if result.claim else None
    entry.fetched_status = result.fetched.status if result.fetched else None
    try:
        await entry.insert()
    except PyMongoError as err:
        log.error("konsol.pro webhook log not written: %s", type(err).__name__)
        if result.answer in (WebhookAnswer.OK, WebhookAnswer.DUPLICATE):
            return _respond(request, result.answer, WebhookAnswer.RETRY)  # logged, or delivered again
    return _respond(request, result.answer)


def _respond(request: web.Request, kind: WebhookAnswer, status_of: WebhookAnswer | None = None) -> web.Response:
    """konsol.pro's answer for `kind`, sent with the status of `status_of` when the outcome could not be kept."""
    request[NOTIFY_OUTCOME] = kind.value
    return to_response(webhook_answer(status_of or kind))


def _allowed(remote: str, networks: list[str]) -> bool:
    return address_in(remote, parse_networks(networks))
