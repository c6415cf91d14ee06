"""The signed link's fields (exp, lang, sig) under /pay/{label}/: read from the page's query to carry them on, and
from a form posted to a sub-route, checked exactly as the page checks its query (403 or 410 through the error
middleware)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from billing.links import check_link
from webhook_server.keys import CLOCK, SETTINGS

LINK_FIELDS = ("exp", "lang", "sig")


async def signed_form(request: web.Request) -> tuple[MultiDictProxy[str | bytes | web.FileField], dict[str, str]]:
    """The posted form, and the link fields it carries once their signature and expiry are checked."""
    form = await read_form(request)
    link = {name: value for name in LINK_FIELDS if isinstance(value := form.get(name), str)}
    check_link(request.app[SETTINGS].link_key, request.match_info["label"], link.get("exp"), link.get("sig"),
               int(request.app[CLOCK]().timestamp()), link.get("lang"))
    return form, link


def signed_query(request: web.Request) -> dict[str, str]:
    """The signed link's own query (exp, lang, sig), to carry it to another page or form under the same link."""
    return {name: request.query[name] for name in LINK_FIELDS if name in request.query}


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | web.FileField]:
    """The posted form; one aiohttp cannot read is 400 (the error middleware shows the page): invalid UTF-8
    or an unknown charset, multipart without a boundary or with a malformed part (aiohttp raises ValueError,
    LookupError, RuntimeError for an unknown part encoding, or a parser error). 413 passes through."""
    try:
        return await request.post()
    except (ValueError, LookupError, RuntimeError, HttpProcessingError) as err:
        raise web.HTTPBadRequest(reason="the form cannot be read") from err
