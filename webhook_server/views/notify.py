"""POST /notify/{provider}: adapt HTTP to the provider module and the ledger, then answer in its format."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.ledger import Ledger
from billing.providers.base import NotificationRejected, Outcome, ProviderAnswer, RawNotification, VerifiedEvent
from webhook_server.client_ip import client_ip
from webhook_server.keys import LEDGER, PROVIDERS, TRUSTED_PROXIES
from webhook_server.metrics import NOTIFY_OUTCOME

log = logging.getLogger(__name__)


async def read_raw(request: web.Request) -> RawNotification:
    """The raw request; reading past the app's body limit raises 413 before anything is parsed."""
    body = await request.read()
    remote = client_ip(request.remote or "", request.headers.get("X-Forwarded-For"), request.app[TRUSTED_PROXIES])
    return RawNotification(path=request.path, headers=dict(request.headers), body=body, remote=remote)


def enabled_provider(request: web.Request, name: str) -> Any:
    """The provider module `name` as configured, or 404 when its credentials are unset (it is disabled)."""
    provider = request.app[PROVIDERS].get(name)
    if provider is None:
        raise web.HTTPNotFound(reason=f"{name} is not enabled")
    return provider


def to_response(answer: ProviderAnswer) -> web.Response:
    return web.Response(status=answer.status, text=answer.body, content_type=answer.content_type)


def notify_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def notify(request: web.Request) -> web.Response:
        provider = enabled_provider(request, name)
        raw = await read_raw(request)
        try:
            event = await provider.verify(raw)
            outcome = await request.app[LEDGER].record(event)
        except NotificationRejected as err:
            log.warning("%s notification from %s rejected: %s", name, raw.remote, err)
            request[NOTIFY_OUTCOME] = err.reason.value
            return to_response(provider.reject(err))
        except (LedgerUnavailable, ProviderUnavailable) as err:
            log.error("%s notification not recorded, provider told to retry: %s", name, err)
            request[NOTIFY_OUTCOME] = "retry_later"
            return to_response(provider.retry_later())
        if outcome is Outcome.UNVERIFIED:
            outcome = await confirm_at_once(provider, request.app[LEDGER], event)
        log.info("%s notification %s: %s", name, event.operation_id, outcome.value)
        request[NOTIFY_OUTCOME] = outcome.value
        return to_response(provider.answer(outcome))

    return notify


async def confirm_at_once(provider: Any, ledger: Ledger, event: VerifiedEvent) -> Outcome:
    """An unsigned notification, just kept as unverified: ask the provider's API about it now.

    The API's own record is what the ledger then records (it promotes the unverified row); an operation the
    API does not know is dismissed. When the API or the ledger cannot be reached the row stays unverified:
    it is safe, the sweep confirms it later, and the provider is answered as for anything recorded.
    """
    try:
        check = await provider.confirm_operation(event)
        if check.event is not None:
            return await ledger.record(check.event)
        await ledger.dismiss(event.provider, event.operation_id, check.reason)
    except (ProviderUnavailable, LedgerUnavailable) as err:
        log.warning("%s notification %s kept as unverified, to be confirmed later: %s",
                    event.provider, event.operation_id, err)
    return Outcome.UNVERIFIED
