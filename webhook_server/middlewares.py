"""Cross-cutting concerns of the web app: request ids and the one place errors become answers."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import aiohttp_jinja2
from aiohttp import web

import logs
from billing.errors import (
    BadLinkSignature,
    BillingError,
    InvoiceNotFound,
    LedgerUnavailable,
    LinkExpired,
    ProviderUnavailable,
    UnknownPlan,
)
from bot.texts import catalogue, page_language

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ERROR_STATUS: dict[type[BillingError], tuple[int, str, str]] = {
    BadLinkSignature: (403, "bad_link", "the payment link is not valid"),
    LinkExpired: (410, "link_expired", "the payment link has expired"),
    InvoiceNotFound: (404, "invoice_not_found", "no invoice with this label"),
    UnknownPlan: (400, "unknown_plan", "no such plan"),
    LedgerUnavailable: (503, "unavailable", "the database or the queue did not answer; try again"),
    ProviderUnavailable: (503, "provider_unavailable", "the payment provider did not answer; try again"),
}
PAGE_TITLES = frozenset({403, 404, 410, 413, 500})  # statuses with their own title in the catalogue (page.error.N)


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID] = given if _SAFE_REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
    logs.request_id.set(request[REQUEST_ID])
    response = await handler(request)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BillingError as err:
        status, code, message = ERROR_STATUS.get(type(err), (400, "bad_request", "bad request"))
        return error_answer(request, status, code, message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = HTTPStatus(err.status).phrase.lower().replace(" ", "_")
        return error_answer(request, err.status, code, err.reason)
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request.get(REQUEST_ID))
        return error_answer(request, 500, "internal_error", "internal error")


def error_answer(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """JSON for the admin API, a page for a person (any GET, and the payment page's own buttons under
    /pay/), the bare code for a provider's server."""
    for_a_person = request.method == "GET" or request.path.startswith("/pay/")
    if is_api(request) or not for_a_person:
        return json_error(status, code, message) if is_api(request) else web.Response(status=status, text=code)
    # `lang` is only trusted to pick the display language here: the page changes nothing.
    t = catalogue().texts(page_language(request.query.get("lang"), None, request.headers.get("Accept-Language")))
    context = {"title": t(f"page.error.{status}" if status in PAGE_TITLES else "page.error.other"), "status": status,
               "t": t}
    return aiohttp_jinja2.render_template("error.html", request, context, status=status)
