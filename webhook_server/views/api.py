"""The admin REST API: JSON in and out, Bearer ADMIN_API_TOKEN compared in constant time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from billing import bounded_json
from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.holds import ConfirmUnsupported, NothingToConfirm, confirm_hold
from billing.invoices import create_invoice, get_invoice, pay_link
from billing.ledger import find_operation
from billing.orders import (
    ORDER_ID,
    OrderConflict,
    OrderRefused,
    checked_order_id,
    create_order,
    find_order,
    order_request,
)
from billing.partial_refunds import FULL_IN_PARTS, PartialRefundUnsupported, RefundTooLarge, refund_part, refundable
from billing.providers.base import ProviderRejected
from billing.refund_invoice import NoRefundApi, NotPaid, paid_payment, refund_payment
from billing.refunds import RefundStatus, latest_refund, refund_json
from billing.renewals.attempt import find_period_renewal
from billing.renewals.cancel import NoSavedMethod, NoSubscription, set_auto_renew
from billing.renewals.periods import period_ms
from billing.signing import secrets_equal
from billing.subscriptions import access_status, get_subscription, renews_automatically
from db import Invoice, InvoiceStatus, Operation, Subscription
from db.renewals import OPEN_STATUSES
from webhook_server.keys import CLOCK, LEDGER, PLANS, PROVIDERS, QUEUES, SETTINGS
from webhook_server.middlewares import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_TELEGRAM_ID = 2**53


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/") and not _authorised(request):
        response = json_error(401, "unauthorized", "missing or wrong Bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="ymds-admin"'
        return response
    return await handler(request)


def _authorised(request: web.Request) -> bool:
    """A Bearer token is ASCII (RFC 6750); other header bytes, invalid UTF-8 included, are a wrong token."""
    token = request.app[SETTINGS].admin_api_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return token is not None and scheme.lower() == "bearer" and given.isascii() and secrets_equal(
        token.get_secret_value(), given.strip())


async def json_object(request: web.Request, *, empty: bytes = b"") -> dict[str, Any]:
    """The request's JSON object, read with bounds (billing.bounded_json); `empty` stands for an empty
    body. Anything else is 400 with the admin API's JSON error."""
    try:
        body = bounded_json.loads(await request.read() or empty)
    except ValueError:  # not UTF-8, not JSON, or nested too deep
        raise web.HTTPBadRequest(reason="Malformed JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="Expected a JSON object")
    return body


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _user_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_TELEGRAM_ID:
        raise web.HTTPBadRequest(reason="user_id must be a positive integer")
    return value


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "label": invoice.label,
        "status": invoice.status.value,
        "user_id": invoice.user_id,
        "plan": invoice.plan,
        "amounts": invoice.amounts,
        "provider": invoice.provider,
        "paid_at": _iso(invoice.paid_at),
        "paid_amount": invoice.paid_amount,
        "paid_currency": invoice.paid_currency,
        "claimed_by": invoice.claimed_by,
        "created_at": _iso(invoice.created_at),
        "expires_at": _iso(invoice.expires_at),
        "kind": invoice.kind.value,
        "description": invoice.description,
        "order_id": invoice.order_id,
        "metadata": invoice.metadata,
        "message": invoice.donor_message,
        "refunded_amount": invoice.paid_amount if invoice.status is InvoiceStatus.REFUNDED else invoice.refunded_amount,
    }


async def create_invoice_view(request: web.Request) -> web.Response:
    body = await json_object(request)
    user_id = _user_id(body.get("user_id"))
    if "amounts" in body:
        return await _create_order(request, body, user_id)
    plan_name = body.get("plan")
    if not isinstance(plan_name, str):
        raise web.HTTPBadRequest(reason="plan must be a string")
    settings = request.app[SETTINGS]
    plan = request.app[PLANS].get(plan_name)
    now = request.app[CLOCK]()
    invoice = await create_invoice(plan, user_id, now=now, ttl_seconds=settings.invoice_ttl_seconds)
    link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                    ttl_seconds=settings.link_ttl_seconds)
    return web.json_response({**invoice_json(invoice), "pay_url": link.url}, status=201)


async def _create_order(request: web.Request, body: dict[str, Any], user_id: int) -> web.Response:
    """An order (billing/orders.py): 201 when made now, 200 with the same invoice for a repeated order_id."""
    if "plan" in body:
        return json_error(400, "plan_or_amounts", "give either a plan or amounts, not both")
    try:
        order = order_request(body, user_id)
        settings = request.app[SETTINGS]
        now = request.app[CLOCK]()
        invoice, created = await create_order(order, now=now, ttl_seconds=settings.invoice_ttl_seconds)
    except OrderRefused as err:
        return json_error(400, err.code, str(err))
    except OrderConflict as err:
        return json_error(409, "order_id_conflict", f"{err}; invoice {err.existing.label}")
    link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                    ttl_seconds=settings.link_ttl_seconds)
    return web.json_response({**invoice_json(invoice), "pay_url": link.url}, status=201 if created else 200)


async def find_invoices_view(request: web.Request) -> web.Response:
    """GET /api/invoices?order_id=…: the order's invoice (404 when there is none)."""
    order_id = request.query.get("order_id")
    if order_id is None:
        return json_error(400, "order_id_required", "give ?order_id=…")
    try:
        checked = checked_order_id(order_id)
    except OrderRefused as err:
        return json_error(400, err.code, str(err))
    invoice = await find_order(checked) if checked else None
    if invoice is None:
        return json_error(404, "invoice_not_found", "no invoice with this order_id")
    return web.json_response(invoice_json(invoice))


async def get_invoice_view(request: web.Request) -> web.Response:
    invoice = await get_invoice(request.match_info["label"])
    refund = await latest_refund(invoice.label)  # a refund the provider took as pending, and how it ended
    return web.json_response({**invoice_json(invoice), "provider_refund": refund_json(refund) if refund else None,
                              "receipt_url": await receipt_url(invoice)})


async def receipt_url(invoice: Invoice) -> str | None:
    """The fiscal receipt's link (its QR code) of the payment that paid the invoice, once the provider gave one."""
    if not invoice.paid_by:
        return None
    provider, _, operation_id = invoice.paid_by.partition(":")
    paying = await find_operation(provider, operation_id)
    return paying.receipt_url if paying else None


def _path_user_id(request: web.Request) -> int | None:
    """The {user_id} of the path; None when it is not a positive integer."""
    raw = request.match_info["user_id"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 16 else None


async def get_subscription_view(request: web.Request) -> web.Response:
    user_id = _path_user_id(request)
    if user_id is None:
        return json_error(400, "bad_request", "user_id must be a positive integer")
    subscription = await get_subscription(user_id)
    if subscription is None:
        return json_error(404, "subscription_not_found", "this user has no subscription")
    return web.json_response(await _subscription_json(subscription, request.app[CLOCK]()))


async def patch_subscription_view(request: web.Request) -> web.Response:
    """{"auto_renew": false} turns automatic renewal off (and deletes the saved method at the provider);
    {"auto_renew": true} turns it on again while a saved method is kept."""
    user_id = _path_user_id(request)
    if user_id is None:
        return json_error(400, "bad_request", "user_id must be a positive integer")
    body = await json_object(request)
    if set(body) != {"auto_renew"} or not isinstance(body["auto_renew"], bool):
        return json_error(400, "bad_request", 'give exactly {"auto_renew": true|false}')
    now = request.app[CLOCK]()
    try:
        subscription = await set_auto_renew(user_id, body["auto_renew"], queue=request.app[QUEUES], now=now)
    except NoSubscription:
        return json_error(404, "subscription_not_found", "this user has no subscription")
    except NoSavedMethod:
        return json_error(409, "no_saved_method", "no saved payment method to renew with; the user pays by hand")
    return web.json_response(await _subscription_json(subscription, now))


async def _subscription_json(subscription: Subscription, now: datetime) -> dict[str, Any]:
    renewal = await find_period_renewal(subscription.user_id, period_ms(subscription.current_period_end))
    return {
        "user_id": subscription.user_id,
        "status": access_status(subscription, now),
        "plan": subscription.plan,
        "current_period_end": _iso(subscription.current_period_end),
        "auto_renew": renews_automatically(subscription),
        "payment_provider": subscription.payment_provider,
        "payment_method": subscription.payment_method,
        "renewal": None if renewal is None else {
            "status": renewal.status.value, "attempts": renewal.attempts,
            "next_attempt_at": _iso(renewal.next_attempt_at) if renewal.status in OPEN_STATUSES else None,
            "last_reason": renewal.last_reason,
        },
    }


async def refund_invoice_view(request: web.Request) -> web.Response:
    """Take a paid invoice's payment back through its provider's API, then reverse it in the ledger.

    The provider call carries an idempotency key derived from the operation, so repeating the request is
    safe; the reversal is idempotent too, and the provider's own refund notification changes nothing more.
    A refund the provider accepted as pending reverses nothing yet: it is tracked (billing/refunds.py) and
    answered `"refund": "pending"`.
    """
    body = await json_object(request, empty=b"{}")
    try:
        paid = await paid_payment(request.match_info["label"], providers=request.app[PROVIDERS].providers)
    except NotPaid as err:
        return json_error(409, "not_paid", f"the invoice is {err}, not paid")
    except NoRefundApi as err:
        return json_error(409, "refund_not_supported", str(err))
    part = _refund_part(body, paid.invoice)
    if isinstance(part, web.Response):
        return part
    if part is not None:
        return await _refund_in_part(request, paid.provider, paid.invoice, paid.operation, *part)
    try:
        outcome = await refund_payment(paid, queues=request.app[QUEUES], reason="refunded through the admin API")
    except NoRefundApi as err:
        return json_error(409, "refund_not_supported", str(err))
    except ProviderRejected as err:
        return json_error(502, "provider_refused", str(err))
    except ProviderUnavailable:
        return json_error(503, "provider_unavailable", f"{paid.operation.provider} did not answer; try again")
    invoice = outcome.invoice
    if outcome.pending:  # billing/refunds.py
        return web.json_response({**invoice_json(invoice), "refund": "pending",
                                  "provider_refund": refund_json(outcome.tracked) if outcome.tracked else None},
                                 status=202)
    return web.json_response({**invoice_json(invoice), "refund": "requested"}, status=202)


def _refund_part(body: dict[str, Any], invoice: Invoice) -> tuple[int, str | None] | web.Response | None:
    """The part a refund request asks for, (amount, the owner's refund_id); None for the whole payment (no amount,
    or all of it while nothing was refunded yet); an error answer for a wrong amount or refund_id."""
    amount, refund_id = body.get("amount"), body.get("refund_id")
    if set(body) - {"amount", "refund_id"}:
        return json_error(400, "bad_request", 'give {"amount": minor units} and optionally "refund_id", or nothing')
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        return json_error(400, "invalid_amount", "amount must be a positive integer of minor units")
    if refund_id is not None and (not isinstance(refund_id, str) or not ORDER_ID.fullmatch(refund_id)):
        return json_error(400, "invalid_refund_id", "refund_id must be 1 to 64 of A-Z a-z 0-9 . _ : / -")
    left = refundable(invoice)
    if amount is not None and amount > left:
        return json_error(409, "refund_exceeds_payment", f"only {left} minor units are left to refund")
    if invoice.refunded_amount == 0 and amount in (None, invoice.paid_amount):
        return None
    return (amount or left), refund_id


async def _refund_in_part(request: web.Request, provider: Any, invoice: Invoice, operation: Operation, amount: int,
                          refund_id: str | None) -> web.Response:
    try:
        done = await refund_part(provider, invoice, operation, amount, refund_id)
    except PartialRefundUnsupported as err:
        return json_error(409, "partial_refund_not_supported", f"{err}; refund the whole payment or the rest by hand")
    except RefundTooLarge as err:  # another part was counted meanwhile
        return json_error(409, "refund_exceeds_payment", str(err))
    except ProviderRejected as err:
        return json_error(502, "provider_refused", str(err))
    except ProviderUnavailable:
        return json_error(503, "provider_unavailable", f"{operation.provider} did not answer; try again")
    if done.full:
        await request.app[QUEUES].enqueue_reversal(operation.provider, operation.operation_id, FULL_IN_PARTS)
    pending = done.result.status is RefundStatus.PENDING
    return web.json_response({**invoice_json(await get_invoice(invoice.label)),
                              "refund": "pending" if pending else "requested", "refund_key": done.key},
                             status=202)


async def confirm_invoice_view(request: web.Request) -> web.Response:
    """Capture a two-stage payment held for this invoice (billing/holds.py)."""
    label = request.match_info["label"]
    try:
        invoice = await confirm_hold(label, providers=request.app[PROVIDERS].providers, ledger=request.app[LEDGER])
    except NothingToConfirm:
        return json_error(409, "nothing_to_confirm", "no payment of this invoice awaits confirmation")
    except ConfirmUnsupported as err:
        return json_error(409, "confirm_not_supported", f"{err} has no confirm API here")
    except ProviderRejected as err:
        return json_error(502, "provider_refused", str(err))
    except ProviderUnavailable as err:
        return json_error(503, "provider_unavailable", f"{err}; try again")
    except LedgerUnavailable:
        return json_error(503, "ledger_unavailable", "confirmed; the payment is applied when the provider's "
                          "confirmation notification arrives")
    return web.json_response({**invoice_json(invoice), "confirm": "requested"}, status=202)
