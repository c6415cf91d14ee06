"""Dashboard actions over real HTTP: granting or extending a subscription, turning auto-renewal off, the CSV
exports; each asks first, checks the role and the CSRF token, and is audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from db import Operation, OperationStatus, Subscription
from db.admin import AdminAudit
from db.models import RenewalConsent
from tests.webhook_server.test_admin_dashboard import OWNER, SUPPORT, csrf_of, paid_invoice, settings, sign_in
from tests.yookassa_support import yookassa, yookassa_emulator

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest


def nonce_of(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def confirm_grant(client, user_id: int, plan: str = "month") -> dict[str, str]:
    page = await client.get(f"/admin/users/{user_id}/grant", params={"plan": plan})
    assert page.status == 200
    html = await page.text()
    return {"csrf": csrf_of(html), "plan": plan, "nonce": nonce_of(html)}


async def test_support_grants_a_plan_from_the_users_page_once_per_confirmation(client, worker, clock):
    await sign_in(client, clock, SUPPORT)
    page = await (await client.get("/admin/users/55")).text()
    assert 'id="grant"' in page and 'value="month"' in page
    form = await confirm_grant(client, 55)
    done = await client.post("/admin/users/55/grant", data=form)
    assert done.status == 202 and "30" in await done.text()
    await worker.drain()
    subscription = await Subscription.find_one({"user_id": 55})
    assert subscription is not None and subscription.plan == "month"
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    again = await client.post("/admin/users/55/grant", data=form)  # the same form sent twice
    assert again.status == 202
    await worker.drain()
    subscription = await Subscription.find_one({"user_id": 55})
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    rows = await AdminAudit.find({"action": "grant"}).to_list()
    assert [(row.admin_id, row.outcome) for row in rows] == [(SUPPORT, "granted"), (SUPPORT, "repeated")]
    second = await confirm_grant(client, 55)  # a new confirmation extends from the current end
    assert (await client.post("/admin/users/55/grant", data=second)).status == 202
    await worker.drain()
    subscription = await Subscription.find_one({"user_id": 55})
    assert subscription.current_period_end == clock.now + timedelta(days=60)


@pytest.mark.parametrize("change", ["csrf", "plan", "nonce"])
async def test_a_grant_with_a_bad_form_grants_nothing(client, worker, clock, change):
    await sign_in(client, clock)
    form = await confirm_grant(client, 56)
    form[change] = {"csrf": "wrong", "plan": "no-such-plan", "nonce": "../x"}[change]
    response = await client.post("/admin/users/56/grant", data=form)
    assert response.status == (403 if change == "csrf" else 400)
    await worker.drain()
    assert await Subscription.find_one({"user_id": 56}) is None and await AdminAudit.count() == 0


async def test_an_unknown_plan_or_user_id_has_no_confirmation(client, clock):
    await sign_in(client, clock)
    assert (await client.get("/admin/users/56/grant", params={"plan": "nope"})).status == 400
    assert (await client.get("/admin/users/-1/grant", params={"plan": "month"})).status == 404


async def renewing_subscription(user_id: int, clock) -> None:
    consent = RenewalConsent(at=clock.now, ip="203.0.113.5", text_version="v1", provider="yookassa", amount=29900,
                             currency="RUB", period_days=30)
    await Subscription(user_id=user_id, plan="month", current_period_end=clock.now + timedelta(days=10),
                       payment_provider="yookassa", payment_method="Visa •••• 4242", payment_token="pm-token-1",
                       auto_renew=True, renewal_consent=consent, updated_at=clock.now).insert()


async def test_an_owner_turns_auto_renewal_off_after_confirming(client, worker, clock):
    await renewing_subscription(57, clock)
    await sign_in(client, clock)
    page = await (await client.get("/admin/users/57")).text()
    assert "/admin/users/57/auto-renew" in page
    confirm = await client.get("/admin/users/57/auto-renew")
    assert confirm.status == 200
    token = csrf_of(await confirm.text())
    done = await client.post("/admin/users/57/auto-renew", data={"csrf": token})
    assert done.status == 200
    subscription = await Subscription.find_one({"user_id": 57})
    assert subscription.auto_renew is False and subscription.renewal_consent is None
    await worker.drain()
    assert (await Subscription.find_one({"user_id": 57})).payment_token is None  # the method is forgotten
    assert "/admin/users/57/auto-renew" not in await (await client.get("/admin/users/57")).text()
    again = await client.post("/admin/users/57/auto-renew", data={"csrf": token})
    assert again.status == 409
    rows = await AdminAudit.find({"action": "auto_renew_off"}).to_list()
    assert [(row.admin_id, row.target) for row in rows] == [(OWNER, "user:57")]


async def test_support_may_not_turn_auto_renewal_off_nor_export(client, clock):
    await renewing_subscription(58, clock)
    await sign_in(client, clock, SUPPORT)
    assert "/admin/users/58/auto-renew" in await (await client.get("/admin/users/58")).text()  # seen, not allowed
    assert (await client.get("/admin/users/58/auto-renew")).status == 403
    page = await (await client.get("/admin")).text()
    refused = await client.post("/admin/users/58/auto-renew", data={"csrf": csrf_of(page)})
    assert refused.status == 403 and (await Subscription.find_one({"user_id": 58})).auto_renew is True
    assert (await client.get("/admin/export/subscribers.csv")).status == 403
    assert (await client.get("/admin/export/payments.csv", params={"from": "2026-01-01", "to": "2026-12-31"})
            ).status == 403


def read_csv(body: str) -> list[dict[str, str]]:
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


async def test_the_payments_export_has_the_periods_rows_in_major_units(client, worker, yookassa, clock):
    label = await paid_invoice(client, worker, yookassa, 60)
    await Operation(provider="manual", operation_id="=HYPERLINK(1)", label=label, amount=-5, currency="RUB",
                    status=OperationStatus.REJECTED, recorded_at=clock.now - timedelta(days=40)).insert()
    await sign_in(client, clock)
    assert (await client.get("/admin/exports")).status == 200
    day = clock.now.date().isoformat()
    response = await client.get("/admin/export/payments.csv", params={"from": day, "to": day})
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(await response.text())
    assert [(row["label"], row["amount"], row["currency"], row["status"]) for row in rows] == [
        (label, "299.00", "RUB", "applied")]
    older = (clock.now - timedelta(days=40)).date().isoformat()
    old = read_csv(await (await client.get("/admin/export/payments.csv", params={"from": older, "to": older})).text())
    assert [(row["operation_id"], row["amount"]) for row in old] == [("'=HYPERLINK(1)", "'-0.05")]
    audit = await AdminAudit.find({"action": "export"}).to_list()
    assert [row.target for row in audit] == ["payments", "payments"]


@pytest.mark.parametrize("params", [{}, {"from": "2026-02-01"}, {"from": "2026-02-01", "to": "2026-01-01"},
                                    {"from": "2025-01-01", "to": "2026-06-01"}, {"from": "x", "to": "y"}])
async def test_a_bad_period_is_refused_clearly(client, clock, params):
    await sign_in(client, clock)
    response = await client.get("/admin/export/payments.csv", params=params)
    assert response.status == 400 and await AdminAudit.count() == 0


async def test_the_subscribers_export_lists_each_subscription(client, worker, clock):
    await renewing_subscription(61, clock)
    await sign_in(client, clock)
    form = await confirm_grant(client, 62, "year")
    assert (await client.post("/admin/users/62/grant", data=form)).status == 202
    await worker.drain()
    rows = read_csv(await (await client.get("/admin/export/subscribers.csv")).text())
    assert [(row["user_id"], row["plan"], row["auto_renew"]) for row in rows] == [
        ("61", "month", "yes"), ("62", "year", "no")]
    assert "pm-token-1" not in str(rows)


async def test_the_subscribers_export_of_a_period_lists_those_with_access_in_it(client, clock):
    for user_id, started, ends in [(63, 40, 20), (64, 15, -25), (65, 100, 60), (66, 5, -25)]:
        await Subscription(user_id=user_id, plan="month", started_at=clock.now - timedelta(days=started),
                           current_period_end=clock.now - timedelta(days=ends), updated_at=clock.now).insert()
    await sign_in(client, clock)
    first = (clock.now - timedelta(days=30)).date().isoformat()
    last = (clock.now - timedelta(days=10)).date().isoformat()
    response = await client.get("/admin/export/subscribers.csv", params={"from": first, "to": last})
    assert [row["user_id"] for row in read_csv(await response.text())] == ["63", "64"]
    assert (await client.get("/admin/export/subscribers.csv", params={"from": first})).status == 400
