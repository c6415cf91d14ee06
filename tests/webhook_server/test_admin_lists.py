"""The dashboard's lists and object pages over real HTTP (invoices, renewals in dunning, payout claims, promo
codes, failed jobs), in each language, and their actions: confirming a held CloudPayments payment, accepting or
rejecting a payout claim, requeueing a failed job; each role-checked, CSRF-checked and audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from db import Invoice, InvoiceStatus, OperationStatus
from db.admin import AdminAudit
from db.payouts import ClaimStatus, PayoutClaim
from db.promo import PromoCode, PromoKind, PromoRedemption
from db.renewals import Renewal, RenewalStatus
from rq_access import failed_jobs
from tests.bot.test_privacy import claim
from tests.cloudpayments_support import cloudpayments_settings, cp, cp_server
from tests.conftest import YOOMONEY_API_TOKEN
from tests.helpers import new_invoice, notification, operations, post_notification
from tests.test_failed_jobs import failed_fulfilment
from tests.webhook_server.test_admin_dashboard import BOT_TOKEN, OWNER, SUPPORT, csrf_of, sign_in
from tests.webhook_server.test_cloudpayments_admin import widget_payment

__all__ = ["cp", "cp_server"]  # fixtures, imported for pytest


@pytest.fixture
def settings(yoomoney_emulator, cp_server):
    _, yoomoney_url = yoomoney_emulator
    return cloudpayments_settings(cp_server[1], yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url,
                                  admin_ids=[OWNER, SUPPORT], admin_roles=f"{SUPPORT}:support", bot_token=BOT_TOKEN)


TICKED = {"confirm": "yes"}  # the "I confirm" box these actions ask for


def confirmed(html: str) -> dict[str, str]:
    return {"csrf": csrf_of(html), **TICKED}


def labels_in(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'href="/admin/invoices/(inv_[0-9a-z_]+)"', body)


async def test_the_invoices_list_filters_pages_and_opens_an_invoice_with_its_history(client, worker, clock):
    paid = await new_invoice(client, user_id=81)
    assert await post_notification(client, notification(paid["label"])) == 200
    await worker.drain()
    base = clock.now - timedelta(days=1)
    for i in range(55):
        await Invoice(label=f"inv_old{i:02d}", user_id=82, plan="month", amounts={"RUB": 29900},
                      created_at=base - timedelta(minutes=i), expires_at=base).insert()
    await sign_in(client, clock, SUPPORT)
    first = await (await client.get("/admin/invoices")).text()
    page_one = labels_in(first, "invoices")
    assert page_one[0] == paid["label"] and len(page_one) == 50
    older = re.search(r'id="older" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    page_two = labels_in(await (await client.get("/admin/invoices" + older)).text(), "invoices")
    assert len(page_two) == 6 and not set(page_one) & set(page_two)
    only_paid = labels_in(await (await client.get("/admin/invoices?status=paid")).text(), "invoices")
    assert only_paid == [paid["label"]]
    assert (await client.get("/admin/invoices?status=nonsense")).status == 400
    assert (await client.get("/admin/invoices?before=yesterday")).status == 400

    page = await (await client.get(f"/admin/invoices/{paid['label']}")).text()
    assert "299.00 RUB" in page and "applied" in page and "/admin/users/81" in page
    assert f"/admin/invoices/{paid['label']}/refund" in page and 'id="confirm-held"' not in page
    assert (await client.get("/admin/invoices/inv_missing")).status == 404


async def test_an_owner_confirms_a_held_payment_from_its_invoice_page(client, cp, worker, clock):
    invoice = await new_invoice(client, user_id=83)
    await widget_payment(cp, invoice["label"], 83, scheme="auth")
    await worker.drain()
    await sign_in(client, clock, SUPPORT)
    page = await (await client.get(f"/admin/invoices/{invoice['label']}")).text()
    assert 'id="confirm-held"' in page
    refused = await client.post(f"/admin/invoices/{invoice['label']}/confirm", data=confirmed(page))
    assert refused.status == 403  # support may not confirm
    client.session.cookie_jar.clear()
    await sign_in(client, clock, OWNER)
    page = await (await client.get(f"/admin/invoices/{invoice['label']}")).text()
    forged = await client.post(f"/admin/invoices/{invoice['label']}/confirm", data={"csrf": "x", **TICKED})
    assert forged.status == 403
    done = await client.post(f"/admin/invoices/{invoice['label']}/confirm", data=confirmed(page))
    assert done.status == 202
    await worker.drain()
    assert (await Invoice.find_one({"label": invoice["label"]})).status is InvoiceStatus.PAID
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED
    again = await client.post(f"/admin/invoices/{invoice['label']}/confirm", data=confirmed(page))
    assert again.status == 409
    outcomes = [row.outcome for row in await AdminAudit.find({"action": "confirm"}).sort("at").to_list()]
    assert outcomes == ["confirmed", "refused"]
    page = await (await client.get(f"/admin/invoices/{invoice['label']}")).text()
    assert page.count("confirm") >= 2 and 'id="confirm-held"' not in page  # the audit rows, no button


async def test_renewals_in_dunning_are_listed_soonest_first(client, clock):
    for user_id, hours, status in [(91, 5, RenewalStatus.DUE), (92, 1, RenewalStatus.DUE),
                                   (93, 2, RenewalStatus.FAILED)]:
        await Renewal(user_id=user_id, period_end=clock.now, provider="yookassa", plan="month", label=f"inv_r{user_id}",
                      status=status, attempts=2, next_attempt_at=clock.now + timedelta(hours=hours),
                      last_reason="insufficient funds", created_at=clock.now, updated_at=clock.now).insert()
    await sign_in(client, clock)
    page = await (await client.get("/admin/dunning")).text()
    rows = re.findall(r'<a href="/admin/users/(\d+)">', page.split('id="dunning"', 1)[1])
    assert rows == ["92", "91"] and "insufficient funds" in page


async def test_a_payout_claim_is_accepted_once_from_its_page(client, worker, clock, queues):
    await claim(84, "po_00000000000000aa", ClaimStatus.NEW, clock).insert()
    await claim(85, "po_00000000000000bb", ClaimStatus.PAID, clock, phone="+79001234567",
                method="fps", card_mask=None, bank_name="Bank").insert()
    await sign_in(client, clock)
    listing = await (await client.get("/admin/payouts")).text()
    assert "po_00000000000000aa" in listing and "po_00000000000000bb" in listing
    assert "po_00000000000000bb" not in await (await client.get("/admin/payouts?status=new")).text()
    sbp = await (await client.get("/admin/payouts/po_00000000000000bb")).text()
    assert "+79001234567" not in sbp and "4567" in sbp and 'id="accept"' not in sbp
    page = await (await client.get("/admin/payouts/po_00000000000000aa")).text()
    assert "411111******1111" in page and 'id="accept"' in page
    form = {"csrf": csrf_of(page), "decision": "accept", "confirm": "yes"}
    done = await client.post("/admin/payouts/po_00000000000000aa/decide", data=form)
    assert done.status == 202
    stored = await PayoutClaim.find_one({"label": "po_00000000000000aa"})
    assert stored.status is not ClaimStatus.NEW and stored.decided_by == OWNER
    history = (await (await client.get("/admin/payouts/po_00000000000000aa")).text()).split('id="payout-history"')[1]
    assert "decided" in history and 'id="accept"' not in history
    again = await client.post("/admin/payouts/po_00000000000000aa/decide", data={**form, "decision": "reject",
                                                                                  "reason": "late"})
    assert again.status == 409
    assert [row.outcome for row in await AdminAudit.find({"action": "payout"}).sort("at").to_list()] == [
        "accepted", "already_decided"]


async def test_a_payout_claim_is_rejected_only_with_a_reason_and_never_by_support(client, clock):
    await claim(86, "po_00000000000000cc", ClaimStatus.NEW, clock).insert()
    await sign_in(client, clock, SUPPORT)
    page = await (await client.get("/admin/payouts/po_00000000000000cc")).text()
    form = {**confirmed(page), "decision": "reject", "reason": "duplicate claim"}
    assert (await client.post("/admin/payouts/po_00000000000000cc/decide", data=form)).status == 403
    client.session.cookie_jar.clear()
    await sign_in(client, clock)
    page = await (await client.get("/admin/payouts/po_00000000000000cc")).text()
    form["csrf"] = csrf_of(page)
    blank = await client.post("/admin/payouts/po_00000000000000cc/decide", data={**form, "reason": "  "})
    assert blank.status == 400
    assert (await PayoutClaim.find_one({"label": "po_00000000000000cc"})).status is ClaimStatus.NEW
    done = await client.post("/admin/payouts/po_00000000000000cc/decide", data=form)
    assert done.status == 202
    stored = await PayoutClaim.find_one({"label": "po_00000000000000cc"})
    assert stored.status is ClaimStatus.REJECTED and stored.reject_reason == "duplicate claim"
    assert (await client.get("/admin/payouts/po_missing")).status == 404


async def test_promo_codes_are_listed_with_their_uses(client, clock):
    await PromoCode(code="SPRING", kind=PromoKind.PERCENT, percent_off=20, plans=[], max_uses=10, uses_left=8,
                    created_at=clock.now).insert()
    await PromoRedemption(code="SPRING", user_id=87, at=clock.now, label="inv_promo1").insert()
    await PromoRedemption(code="SPRING", user_id=88, at=clock.now, label="inv_promo2", released=True).insert()
    await sign_in(client, clock, SUPPORT)
    listing = await (await client.get("/admin/promo")).text()
    assert "/admin/promo/SPRING" in listing and "2 / 10" in listing
    page = await (await client.get("/admin/promo/spring")).text()
    assert "/admin/users/87" in page and "/admin/users/88" in page and "inv_promo2" in page
    assert (await client.get("/admin/promo/NOPE")).status == 404


async def test_a_failed_job_is_requeued_from_the_page_by_an_owner(client, worker, queues, clock):
    label = await failed_fulfilment(client, worker)
    [failed] = failed_jobs(queues.connection)
    await sign_in(client, clock, SUPPORT)
    page = await (await client.get("/admin/jobs")).text()
    assert failed.id in page and "after_ledger_insert" in page
    assert (await client.post("/admin/jobs/requeue", data={**confirmed(page), "job": failed.id})).status == 403
    client.session.cookie_jar.clear()
    await sign_in(client, clock)
    page = await (await client.get("/admin/jobs")).text()
    assert (await client.post("/admin/jobs/requeue", data={**confirmed(page), "job": "nope"})).status == 404
    done = await client.post("/admin/jobs/requeue", data={**confirmed(page), "job": failed.id})
    assert done.status == 202
    await worker.drain()
    assert (await Invoice.find_one({"label": label})).status is InvoiceStatus.PAID
    assert failed_jobs(queues.connection) == []


PAGES = ["/admin", "/admin/payments", "/admin/invoices", "/admin/users", "/admin/users/81", "/admin/dunning",
         "/admin/payouts", "/admin/promo", "/admin/jobs", "/admin/exports"]
NAV_WORD = {"ru": "Выплаты", "en": "Payouts", "uz": "To‘lab berishlar"}


@pytest.mark.parametrize("lang", ["ru", "en", "uz"])
async def test_every_page_renders_in_each_language(client, clock, lang):
    await sign_in(client, clock)
    for path in PAGES:
        response = await client.get(path, params={"lang": lang})
        html = await response.text()
        assert response.status == 200, path
        assert f'<html lang="{lang}">' in html and NAV_WORD[lang] in html, path


async def test_an_action_sent_without_its_confirmation_box_changes_nothing(client, worker, queues, clock):
    await claim(89, "po_00000000000000dd", ClaimStatus.NEW, clock).insert()
    await failed_fulfilment(client, worker)
    [failed] = failed_jobs(queues.connection)
    await sign_in(client, clock)
    page = await (await client.get("/admin/payouts/po_00000000000000dd")).text()
    assert 'name="confirm" value="yes" required' in page
    csrf = csrf_of(page)
    unticked = await client.post("/admin/payouts/po_00000000000000dd/decide", data={"csrf": csrf, "decision": "accept"})
    assert unticked.status == 400
    assert (await PayoutClaim.find_one({"label": "po_00000000000000dd"})).status is ClaimStatus.NEW
    assert (await client.post("/admin/jobs/requeue", data={"csrf": csrf, "job": failed.id})).status == 400
    assert [job.id for job in failed_jobs(queues.connection)] == [failed.id]
    assert (await client.post("/admin/invoices/inv_x/confirm", data={"csrf": csrf})).status == 400
    assert await AdminAudit.count() == 0
