"""The dashboard's overview: revenue per day and per month by currency and provider (charts drawn on the
server), active, new and churned subscribers, MRR per currency, the renewal success rate, payments kept for
review and failed jobs, each count linking to its list."""

from __future__ import annotations

import re
from datetime import timedelta

from billing.dashboard import overview
from db import Invoice, InvoiceKind, InvoiceStatus, Operation, OperationStatus, Subscription, SubscriptionStatus
from db.renewals import Renewal, RenewalStatus
from tests.test_failed_jobs import failed_fulfilment
from tests.webhook_server.test_admin_dashboard import SUPPORT, settings, sign_in
from tests.yookassa_support import yookassa_emulator

__all__ = ["settings", "yookassa_emulator"]  # fixtures, imported for pytest


async def applied(op_id: str, provider: str, amount: int, currency: str, at, status=OperationStatus.APPLIED):
    await Operation(provider=provider, operation_id=op_id, label=f"inv_{op_id}", amount=amount, currency=currency,
                    status=status, recorded_at=at).insert()


def midday(clock):
    """Every row "hours ago" falls on the same UTC day as now, whatever time the suite runs."""
    clock.now = clock.now.replace(hour=12, minute=0, second=0)
    return clock.now


async def seed(now) -> None:
    await applied("a", "yookassa", 29900, "RUB", now - timedelta(hours=1))
    await applied("b", "cloudpayments", 10000, "RUB", now - timedelta(hours=2))
    await applied("c", "yookassa", 5000, "RUB", now - timedelta(days=2))
    await applied("d", "payme", 3500000, "UZS", now - timedelta(days=3))
    await applied("e", "yookassa", 77700, "RUB", now - timedelta(days=45))  # last month, not the window
    await applied("f", "yookassa", 99900, "RUB", now - timedelta(hours=3), OperationStatus.EXTRA)  # not revenue
    for user_id, started, ends, status in [
        (1, now - timedelta(days=3), now + timedelta(days=27), SubscriptionStatus.ACTIVE),  # new
        (2, now - timedelta(days=90), now + timedelta(days=5), SubscriptionStatus.ACTIVE),
        (3, now - timedelta(days=70), now - timedelta(days=4), SubscriptionStatus.ACTIVE),  # lapsed: churned
        (4, now - timedelta(days=70), now - timedelta(days=1), SubscriptionStatus.PAST_DUE),  # still tried
        (5, now - timedelta(days=400), now - timedelta(days=60), SubscriptionStatus.EXPIRED),  # churned earlier
    ]:
        await Subscription(user_id=user_id, plan="month", status=status, started_at=started, current_period_end=ends,
                           updated_at=now).insert()
    for i, (days_ago, period, amount, currency) in enumerate([(10, 30, 29900, "RUB"), (200, 365, 299000, "RUB"),
                                                              (40, 30, 29900, "RUB"), (5, 30, 3500000, "UZS")]):
        paid_at = now - timedelta(days=days_ago)
        await Invoice(label=f"inv_mrr{i}", user_id=100 + i, plan="month", period_days=period,
                      amounts={currency: amount}, status=InvoiceStatus.PAID, kind=InvoiceKind.PLAN,
                      created_at=paid_at, expires_at=paid_at, paid_at=paid_at, paid_amount=amount,
                      paid_currency=currency).insert()
    for i, status in enumerate([RenewalStatus.PAID, RenewalStatus.PAID, RenewalStatus.PAID, RenewalStatus.FAILED,
                                RenewalStatus.DUE]):
        await Renewal(user_id=200 + i, period_end=now, provider="yookassa", plan="month", label=f"inv_ren{i}",
                      status=status, next_attempt_at=now, created_at=now, updated_at=now - timedelta(days=1)).insert()


async def test_the_overview_figures(client, clock):
    now = midday(clock)
    await seed(now)
    figures = await overview(now)
    assert figures.revenue == {"RUB": 44900, "UZS": 3500000}
    today = now.strftime("%Y-%m-%d")
    assert [(r.period, r.provider, r.total) for r in figures.daily if r.period == today and r.currency == "RUB"
            ] == [(today, "cloudpayments", 10000), (today, "yookassa", 29900)]
    months = {(r.period, r.currency): 0 for r in figures.monthly}
    for r in figures.monthly:
        months[(r.period, r.currency)] += r.total
    assert sum(months.values()) == 44900 + 3500000 + 77700
    assert figures.active_subscribers == 2 and figures.past_due_subscribers == 1
    assert figures.new_subscribers == 1 and figures.churned_subscribers == 1
    # running periods: 29900 a month (10 days ago), 299000 a year (200 days ago) = 24575 a month; the one paid
    # 40 days ago for 30 days has ended
    assert figures.mrr == {"RUB": 29900 + 299000 * 30 // 365, "UZS": 3500000}
    assert (figures.renewals_paid, figures.renewals_failed, figures.renewal_success_percent) == (3, 1, 75)
    assert figures.for_review["extra"] == 1


async def test_the_overview_page_draws_charts_and_links_each_count(client, worker, clock):
    await seed(midday(clock))
    await failed_fulfilment(client, worker)
    await sign_in(client, clock, SUPPORT)
    html = await (await client.get("/admin", params={"lang": "en"})).text()
    assert re.search(r'id="active">2<', html) and re.search(r'id="new">1<', html)
    assert re.search(r'id="renewal-success">75%<', html)
    assert 'href="/admin/jobs" id="failed-jobs">1<' in html
    assert 'href="/admin/payments?status=extra" id="review-extra">1<' in html
    assert 'id="daily-RUB"' in html and 'id="daily-UZS"' in html and 'id="monthly-RUB"' in html
    daily = html.split('id="daily-RUB"', 1)[1].split("</figure>", 1)[0]
    assert daily.count("<rect x=") == 3 and "yookassa: 299.00 RUB" in daily and "cloudpayments" in daily
    assert "<script" not in html and "style=" not in html  # nothing the page's CSP would have to allow


async def test_an_empty_database_shows_no_charts_and_no_rate(client, clock):
    await sign_in(client, clock)
    html = await (await client.get("/admin", params={"lang": "en"})).text()
    assert re.search(r'id="renewal-success">—<', html) and "<rect x=" not in html
