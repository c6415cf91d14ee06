"""Security headers on every answer of the web app: no framing, no MIME sniffing, no referrer, a
Content-Security-Policy that allows only the scripts each page needs, and a Server header without versions.

They are set when a response is prepared (aiohttp's on_response_prepare) rather than in a middleware, so that
answers no middleware sees get them too: a redirect raised past the middlewares, a static file, aiohttp's
own 404 and 500. aiohttp writes `Server: Python/3.x aiohttp/3.x` into every answer that has none; the few it
writes before any route is matched (a malformed request line) never reach the signal, so its default is
replaced as well (`hide_server_version`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import hdrs, web, web_response

from billing.providers.payme import CURRENCY as PAYME_CURRENCY, NAME as PAYME
from webhook_server.keys import PROVIDERS, SETTINGS

SERVER_NAME = "open-ymds"
STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"

Sources = tuple[str, ...]
Policy = Mapping[str, Sources]

# Every answer: nothing loads but our stylesheet (and data: images), no plugin, no <base>, no framing.
# form-action is left out on purpose: the page's forms go to each provider's checkout host, and Chromium
# applies form-action to the redirects after a submit (our YooKassa button redirects to YooKassa's page).
BASE_POLICY: Policy = {
    "default-src": ("'none'",),
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),
    "base-uri": ("'none'",),
    "frame-ancestors": ("'none'",),
}
FIXED_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a payment link carries its signature in the query
}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_family(url: str) -> Sources:
    """The URL's origin and, for a named host like widget.cloudpayments.ru, the same scheme on every host of
    its domain (https://*.cloudpayments.ru): where a provider's script puts its frames, styles and calls."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    labels = host.split(".")
    if _is_address(host) or len(labels) < 3:
        return (origin(url),)
    return (origin(url), f"{parts.scheme}://*.{'.'.join(labels[-2:])}")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def pay_page_sources(app: web.Application) -> Policy:
    """GET /pay/{label}: our card-binding script (static/payme_card.js), and the Payme API host it calls,
    when the Payme card binding is on; no script at all otherwise."""
    payme = app[PROVIDERS].get(PAYME)
    binding = payme.card_binding({PAYME_CURRENCY: 1}) if payme is not None else None
    if binding is None:
        return {}
    return {"script-src": ("'self'",), "connect-src": (origin(binding.api_url),)}


def widget_page_sources(app: web.Application) -> Policy:
    """POST /pay/{label}/cloudpayments: the CloudPayments widget script and our static/cloudpayments.js.

    The widget runs in our page and opens its form in a frame of its own host; what else it loads into our
    page is not documented, so its domain may also frame, style (inline too: widgets inject <style>),
    serve fonts and images, and be called. Scripts come only from the widget's own origin."""
    url = app[SETTINGS].cloudpayments_widget_url
    family = host_family(url)
    return {
        "script-src": ("'self'", origin(url)),
        "connect-src": family,
        "frame-src": family,
        "style-src": ("'self'", "'unsafe-inline'", *family),
        "img-src": ("'self'", "data:", *family),
        "font-src": family,
    }


WIDGET_PAGE = "pay_cloudpayments"  # the route's name, and the page's wherever it is served
PAGE_SOURCES: dict[str, Callable[[web.Application], Policy]] = {
    "pay": pay_page_sources,
    WIDGET_PAGE: widget_page_sources,
}


def page_policy(app: web.Application, page: str | None) -> str:
    """The base policy with the sources of `page` (a key of PAGE_SOURCES) added; the base alone for None."""
    extra = PAGE_SOURCES[page](app) if page in PAGE_SOURCES else {}
    return render({**BASE_POLICY, **extra})


def serves_page(request: web.Request, response: web.StreamResponse, page: str) -> web.StreamResponse:
    """Give `response` the policy of `page` whatever route answered it: the widget page is served by
    /pay/{label}/cloudpayments and, after the payer's choice, by /pay/{label}/choose."""
    response.headers[hdrs.CONTENT_SECURITY_POLICY] = page_policy(request.app, page)
    return response


def policy_for(request: web.Request, status: int) -> str:
    """The page's own sources only on its own answer: an error page under the same route has no script."""
    route = request.match_info.route.name if request.match_info.http_exception is None else None
    return page_policy(request.app, route if status < 400 else None)


def render(policy: Policy) -> str:
    return "; ".join(" ".join((directive, *sources)) for directive, sources in policy.items())


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a header a view set itself (its own Referrer-Policy, say) is kept."""
    for name, value in FIXED_HEADERS.items():
        response.headers.setdefault(name, value)
    if hdrs.CONTENT_SECURITY_POLICY not in response.headers:
        response.headers[hdrs.CONTENT_SECURITY_POLICY] = policy_for(request, response.status)
    response.headers[hdrs.SERVER] = SERVER_NAME


def hide_server_version() -> None:
    """aiohttp's default Server value names Python's and aiohttp's versions; ours names no version."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


def install(app: web.Application) -> None:
    """The headers on every answer of `app` (and of its sub-apps), and the static files the pages load."""
    hide_server_version()
    app.on_response_prepare.append(add_security_headers)
    app.router.add_static(STATIC_PREFIX, STATIC, name="static")
