"""/pay/{label}/renewal: the payment page's footer link, where the payer sees and turns off auto-renewal.

The page lives under the same signed link as the payment page, so only whoever holds that link (the
user it was sent to) can use it; the POST changes nothing but turning auto-renewal off.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.renewals.cancel import NoSubscription, set_auto_renew
from billing.subscriptions import get_subscription, is_active, renews_automatically
from bot.texts import Texts, mask_method
from db import Subscription
from webhook_server.keys import CLOCK, PLANS, QUEUES
from webhook_server.views.pay import signed_invoice
from webhook_server.views.signed_form import signed_query


async def renewal_page(request: web.Request) -> web.Response:
    invoice, t = await signed_invoice(request)
    subscription = await get_subscription(invoice.user_id)
    return _render(request, subscription, t, cancelled=False)


async def cancel_renewal(request: web.Request) -> web.Response:
    invoice, t = await signed_invoice(request)
    try:
        subscription = await set_auto_renew(invoice.user_id, False, queue=request.app[QUEUES],
                                            now=request.app[CLOCK]())
    except NoSubscription:
        return _render(request, None, t, cancelled=False)
    return _render(request, subscription, t, cancelled=True)


def _render(request: web.Request, subscription: Subscription | None, t: Texts, *, cancelled: bool) -> web.Response:
    now = request.app[CLOCK]()
    state = "none"
    if subscription is not None and is_active(subscription, now):
        state = "on" if renews_automatically(subscription) else "off"
    query = signed_query(request)
    label = request.match_info["label"]
    context = {
        "t": t, "state": state, "cancelled": cancelled,
        "plan": t.plan_title(request.app[PLANS].title(subscription.plan)) if subscription else "",
        "until": t.moment(subscription.current_period_end) if subscription else "",
        "method": mask_method(subscription.payment_method) if subscription and subscription.payment_method
        else t("cancel.saved_method"),
        "action": str(URL(f"/pay/{label}/renewal").with_query(query)),
        "back_url": str(URL(f"/pay/{label}").with_query(query)),
    }
    response = aiohttp_jinja2.render_template("renewal.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
