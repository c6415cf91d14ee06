"""The admin dashboard over real HTTP: sign-in (one-time link, Telegram Login Widget), sessions, CSRF, roles,
finding a user and refunding one of their payments through the same function as the admin API."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from billing.admin_access import issue_login_token, may, parse_roles
from db import Invoice, InvoiceStatus
from db.admin import AdminAudit, AdminSession
from tests.conftest import make_settings
from tests.helpers import new_invoice
from tests.yookassa_support import paid_payment, post_notification, yookassa, yookassa_emulator, yookassa_settings

__all__ = ["yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

OWNER, SUPPORT, STRANGER = 1001, 1002, 1003
BOT_TOKEN = "123456:TEST-bot-token"


@pytest.fixture
def settings(yoomoney_emulator, yookassa_emulator):
    _, yookassa_url = yookassa_emulator
    return make_settings(admin_ids=[OWNER, SUPPORT], admin_roles=f"{SUPPORT}:support", bot_token=BOT_TOKEN,
                         **yookassa_settings(yookassa_url + "/v3"))


async def sign_in(client: TestClient, clock, user_id: int = OWNER) -> str:
    token = await issue_login_token(user_id, clock.now)
    page = await client.get(f"/admin/login/link/{token}")
    assert page.status == 200 and 'id="sign-in"' in await page.text()
    response = await client.post(f"/admin/login/link/{token}", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    return token


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def widget_data(user_id: int, auth_date: int, bot_token: str = BOT_TOKEN) -> dict[str, str]:
    """Signed as core.telegram.org/widgets/login describes, written here from the page, not from our module."""
    data = {"id": str(user_id), "first_name": "Ann", "username": "ann", "auth_date": str(auth_date)}
    check = "\n".join(f"{key}={data[key]}" for key in sorted(data))
    data["hash"] = hmac.new(hashlib.sha256(bot_token.encode()).digest(), check.encode(), hashlib.sha256).hexdigest()
    return data


async def paid_invoice(client, worker, emulator, user_id: int) -> str:
    invoice = await new_invoice(client, user_id=user_id)
    payment_id = paid_payment(emulator, invoice["label"])
    assert await post_notification(client, emulator.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    return invoice["label"]


@pytest.mark.parametrize("path", ["/admin", "/admin/payments", "/admin/users", "/admin/users/5",
                                  "/admin/invoices/x/refund"])
async def test_without_a_session_every_page_redirects_to_sign_in(client, path):
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/login"


async def test_a_post_without_a_session_changes_nothing(client):
    response = await client.post("/admin/invoices/x/refund", data={"csrf": "x"}, allow_redirects=False)
    assert response.status == 303 and await AdminAudit.count() == 0


async def test_a_one_time_link_signs_in_once(client, clock):
    token = await sign_in(client, clock)
    assert (await client.get("/admin")).status == 200
    client.session.cookie_jar.clear()
    again = await client.post(f"/admin/login/link/{token}", allow_redirects=False)
    assert again.status == 410 and await AdminSession.count() == 1


async def test_an_expired_or_unknown_link_is_refused(client, clock):
    token = await issue_login_token(OWNER, clock.now)
    clock.now += timedelta(minutes=11)
    assert (await client.post(f"/admin/login/link/{token}", allow_redirects=False)).status == 410
    assert (await client.post("/admin/login/link/nonsense", allow_redirects=False)).status == 410
    assert await AdminSession.count() == 0


async def test_a_link_for_someone_no_longer_an_admin_is_refused(client, clock):
    token = await issue_login_token(STRANGER, clock.now)
    assert (await client.post(f"/admin/login/link/{token}", allow_redirects=False)).status == 403


async def test_sign_in_attempts_are_rate_limited_per_ip(client, clock):
    statuses = [(await client.post(f"/admin/login/link/bad{i}")).status for i in range(12)]
    assert statuses[:10] == [410] * 10 and statuses[10:] == [429, 429]


async def test_the_telegram_widget_signs_in_an_admin(client, clock):
    response = await client.get("/admin/login/telegram", params=widget_data(OWNER, int(clock.now.timestamp())),
                                allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/admin")).status == 200


@pytest.mark.parametrize("case", ["forged", "other_bot", "stale", "stranger", "missing"])
async def test_the_telegram_widget_refuses_what_it_must(client, clock, case):
    now = int(clock.now.timestamp())
    data = {
        "forged": {**widget_data(OWNER, now), "id": str(SUPPORT)},
        "other_bot": widget_data(OWNER, now, "999:other"),
        "stale": widget_data(OWNER, now - 2 * 86400),
        "stranger": widget_data(STRANGER, now),
        "missing": {"id": str(OWNER)},
    }[case]
    response = await client.get("/admin/login/telegram", params=data, allow_redirects=False)
    assert response.status == 403 and await AdminSession.count() == 0


async def test_an_admin_finds_a_user_sees_their_payments_and_refunds_one(client, worker, yookassa, clock):
    label = await paid_invoice(client, worker, yookassa, 77)
    await sign_in(client, clock, SUPPORT)  # support may refund
    found = await client.get("/admin/users", params={"q": label}, allow_redirects=False)
    assert found.status == 303 and found.headers["Location"] == "/admin/users/77"
    page = await (await client.get("/admin/users/77")).text()
    assert label in page and "299.00 RUB" in page and f"/admin/invoices/{label}/refund" in page
    confirm = await client.get(f"/admin/invoices/{label}/refund")
    assert confirm.status == 200
    token = csrf_of(await confirm.text())
    refused = await client.post(f"/admin/invoices/{label}/refund", data={"csrf": "wrong"})
    assert refused.status == 403 and yookassa.refunds == {}
    done = await client.post(f"/admin/invoices/{label}/refund", data={"csrf": token})
    assert done.status == 202
    await yookassa.settle()
    await worker.drain()
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice.status is InvoiceStatus.REFUNDED
    [entry] = await AdminAudit.find_all().to_list()
    assert (entry.admin_id, entry.role, entry.action) == (SUPPORT, "support", "refund")
    assert entry.target == f"invoice:{label}"
    again = await client.post(f"/admin/invoices/{label}/refund", data={"csrf": token})
    assert again.status == 409


@pytest.mark.parametrize("lang,word", [("ru", "Обзор"), ("en", "Overview"), ("uz", "Umumiy ko‘rinish")])
async def test_pages_speak_each_language(client, clock, lang, word):
    await sign_in(client, clock)
    for path in ("/admin", "/admin/payments", "/admin/users", "/admin/users/5"):
        page = await client.get(path, params={"lang": lang})
        assert page.status == 200 and word in await page.text()
    assert word in await (await client.get("/admin")).text()  # the choice stays in a cookie


@pytest.mark.parametrize("path,status", [("/admin/users/abc", 404), ("/admin/users/0", 404),
                                         ("/admin/users/99999999999999999999", 404),
                                         ("/admin/payments?before=yesterday", 400),
                                         ("/admin/invoices/unknown/refund", 404),
                                         ("/admin/users?q=unknown-label", 404)])
async def test_bad_input_gets_a_clear_answer(client, clock, path, status):
    await sign_in(client, clock)
    assert (await client.get(path, allow_redirects=False)).status == status


async def test_refunding_an_unknown_or_unpaid_invoice_is_refused_and_audited(client, clock):
    invoice = await new_invoice(client, user_id=5)
    await sign_in(client, clock)
    token = csrf_of(await (await client.get("/admin")).text())
    assert (await client.post("/admin/invoices/nope/refund", data={"csrf": token})).status == 404
    assert (await client.post(f"/admin/invoices/{invoice['label']}/refund", data={"csrf": token})).status == 409
    [entry] = await AdminAudit.find_all().to_list()
    assert entry.outcome == "refused"


async def test_sign_out_ends_the_session(client, clock):
    await sign_in(client, clock)
    token = csrf_of(await (await client.get("/admin")).text())
    assert (await client.post("/admin/logout", data={"csrf": token}, allow_redirects=False)).status == 303
    assert await AdminSession.count() == 0
    assert (await client.get("/admin", allow_redirects=False)).status == 303


def test_roles_default_to_owner_and_support_is_limited():
    roles = parse_roles([1, 2], "2:support,3:owner")
    assert roles == {1: "owner", 2: "support", 3: "owner"}
    assert may("support", "refund") and may("support", "grant") and not may("support", "payout")
    assert may("owner", "payout")
    with pytest.raises(ValueError):
        parse_roles([], "x:owner")
