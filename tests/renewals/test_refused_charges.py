"""Renewal charges the provider refuses with an error, fails to answer, or decides later, through the real seam:
the scheduler, the real RQ worker on the real Redis, the YooKassa and Payme emulators over HTTP producing each
case, the ledger, and the worker's Telegram notifier writing to a fake Bot API (user and admin chat counted).

After every case every renewal is scanned: none is left `charging`, none open without a next attempt time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.providers.payme.protocol import to_ms
from billing.renewals import RenewalServices
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription
from bot.notifier import TelegramNotifier
from db import Invoice, InvoiceStatus, Operation, Subscription, SubscriptionStatus
from db.payme import PaymeState, PaymeTransaction
from db.renewals import Renewal, RenewalStatus
from settings import Settings
from tests.bot.conftest import ADMIN_CHAT_ID, BOT_TOKEN, Sleeps, fake_telegram, telegram_notifier
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from tests.helpers import paid_with_saved_method
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from tests.renewals.rigs import PAYME_INSUFFICIENT_FUNDS
from tests.yookassa_support import SECRET_KEY, SHOP_ID, yookassa_settings
from webhook_server.emulators.payme import PaymeEmulator
from webhook_server.emulators.payme_subscribe import EmulatedCard
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.runner import InProcessWorker

__all__ = ["fake_telegram"]  # a fixture, imported for pytest

USER = 9101
RETRIES = [3600, 86400, 259200]
YOOKASSA_METHOD = "2e0d37a5-000f-5000-9000-1d6b39e5b4b7"
PAYME_TOKEN = "payme-card-token-refused-1"
OPEN = (RenewalStatus.DUE, RenewalStatus.CHARGING, RenewalStatus.PENDING)


@dataclass
class Shops:
    yookassa: YooKassaEmulator
    payme: PaymeEmulator
    urls: dict[str, str]


@pytest.fixture
async def shops(clock: FrozenClock) -> AsyncIterator[Shops]:
    """Both emulators on loopback, on the test's clock (pending charges end, receipts are timed, by it)."""
    yookassa = YooKassaEmulator(shop_id=SHOP_ID, secret_key=SECRET_KEY, clock=lambda: clock.now)
    payme = PaymeEmulator(merchant_id=PAYME_MERCHANT, key=PAYME_KEY, notify_url="", clock=lambda: to_ms(clock.now))
    servers, urls = [], {}
    for name, emulator in (("yookassa", yookassa), ("payme", payme)):
        server = TestServer(emulator.app())
        await server.start_server()
        servers.append(server)
        urls[name] = str(server.make_url("")).rstrip("/")
    yield Shops(yookassa, payme, urls)
    for server in servers:
        await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], shops: Shops,
             fake_telegram: tuple[FakeTelegram, str]) -> Settings:
    return make_settings(
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
        **yookassa_settings(shops.urls["yookassa"] + "/v3"),
        payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_api_url=shops.urls["payme"] + "/api",
        max_retries=len(RETRIES), retry_intervals=RETRIES,
        bot_token=BOT_TOKEN, telegram_api_url=fake_telegram[1], admin_chat_id=ADMIN_CHAT_ID,
    )


@pytest.fixture
async def notifier(settings: Settings, clock: FrozenClock) -> AsyncIterator[TelegramNotifier]:
    """The worker's notices go to the fake Bot API, as in production."""
    async with telegram_notifier(settings, admin_chat_id=ADMIN_CHAT_ID, clock=clock, sleep=Sleeps()) as notifier:
        yield notifier


@pytest.fixture
def services(worker: InProcessWorker) -> RenewalServices:
    assert worker.runtime.renewals is not None
    return worker.runtime.renewals


@pytest.fixture
def fake(fake_telegram: tuple[FakeTelegram, str]) -> FakeTelegram:
    return fake_telegram[0]


class Told:
    """Messages the bot wrote to the user and to the admin chat since the renewal began."""

    def __init__(self, fake: FakeTelegram) -> None:
        self._fake = fake
        self._before = (len(fake.bot_messages(USER)), len(fake.bot_messages(ADMIN_CHAT_ID)))

    def user(self) -> list[str]:
        return [str(message["text"]) for message in self._fake.bot_messages(USER)[self._before[0]:]]

    def admin(self) -> list[str]:
        return [str(message["text"]) for message in self._fake.bot_messages(ADMIN_CHAT_ID)[self._before[1]:]]


async def subscribed(client: TestClient, worker: InProcessWorker, shops: Shops, provider: str) -> Subscription:
    """A paid month with a saved method of `provider` the emulator knows, auto-renewal on."""
    if provider == "yookassa":
        shops.yookassa.saved_methods.add(YOOKASSA_METHOD)
        token, method = YOOKASSA_METHOD, "MasterCard •••• 4444"
    else:
        shops.payme.subscribe.cards[PAYME_TOKEN] = EmulatedCard(
            number="8600069195406311", expire="1299", token=PAYME_TOKEN, recurrent=True, verified=True)
        token, method = PAYME_TOKEN, "860006******6311"
    await paid_with_saved_method(client, worker, USER, provider=provider, token=token, method=method)
    await Subscription.get_motor_collection().update_one({"user_id": USER}, {"$set": {"auto_renew": True}})
    subscription = await get_subscription(USER)
    assert subscription is not None
    return subscription


async def nearly_due(clock: FrozenClock, services: RenewalServices, worker: InProcessWorker, fake: FakeTelegram,
                     end: Any) -> Told:
    """Days before the period ends (whatever reminders go out then are sent), then half an hour before, when
    the renewal's first charge runs: what the bot writes from here on."""
    clock.now = end - timedelta(days=2)
    await run(clock, services, worker)
    told = Told(fake)
    clock.now = end - timedelta(minutes=30)
    await run(clock, services, worker)
    return told


async def run(clock: FrozenClock, services: RenewalServices, worker: InProcessWorker) -> None:
    """One scheduler tick and every job it led to; then no renewal may be stuck."""
    await tick(clock(), services)
    await worker.drain()
    await assert_never_stuck(clock)


async def assert_never_stuck(clock: FrozenClock) -> None:
    for renewal in await Renewal.find_all().to_list():
        assert renewal.status is not RenewalStatus.CHARGING, f"left charging: {renewal}"
        if renewal.status in OPEN:
            assert renewal.next_attempt_at > clock.now, f"open without a next attempt time: {renewal}"


async def the_renewal() -> Renewal:
    [renewal] = await Renewal.find_all().to_list()
    return renewal


async def current() -> Subscription:
    subscription = await get_subscription(USER)
    assert subscription is not None
    return subscription


def charges_made(shops: Shops, provider: str) -> int:
    """Charges the provider made (payments of a saved method; Payme receipts created)."""
    return len(shops.yookassa.charges) if provider == "yookassa" else len(shops.payme.subscribe.receipts)


def money_taken(shops: Shops, provider: str) -> int:
    """Charges that took the payer's money."""
    if provider == "yookassa":
        return sum(1 for payment_id in shops.yookassa.charges if shops.yookassa.payments[payment_id]["paid"])
    return len(shops.payme.subscribe.paid_receipts())


def charge_calls(shops: Shops, provider: str) -> int:
    """Every call that tried to charge, refused or not."""
    if provider == "yookassa":
        return sum(1 for method, path, _, _ in shops.yookassa.requests if (method, path) == ("POST", "/v3/payments"))
    return shops.payme.subscribe.methods.count("cards.check")


async def paid_operations(provider: str) -> list[Operation]:
    return await Operation.find(Operation.provider == provider).to_list()


# ---- permanent refusals: one attempt, the end of renewal for this period, told once ---------------------------

def autopayments_off(shops: Shops) -> None:
    shops.yookassa.rules.autopayments = False


def receipts_required(shops: Shops) -> None:
    shops.yookassa.rules.receipts_required = True


def yookassa_key_changed(shops: Shops) -> None:
    shops.yookassa.secret_key = "a-key-issued-after-ours"


def payme_merchant_inactive(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("receipts.create", -31601)


def payme_bad_token(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("receipts.pay", -32500)


def payme_key_changed(shops: Shops) -> None:
    shops.payme.subscribe.key = "a-key-issued-after-ours"


@pytest.mark.parametrize(("provider", "refuse", "told", "kept"), [
    ("yookassa", autopayments_off, "HTTP 403 from yookassa POST payments: forbidden", False),
    ("yookassa", receipts_required, "HTTP 400 from yookassa POST payments: invalid_request", False),
    ("yookassa", yookassa_key_changed, "HTTP 401 from yookassa POST payments: invalid_credentials", True),
    ("payme", payme_merchant_inactive, "Payme -31601", True),
    ("payme", payme_bad_token, "Payme -32500", False),
    ("payme", payme_key_changed, "Payme -32504", True),
], ids=["yookassa-403-autopayments-off", "yookassa-400-no-receipt", "yookassa-401-key-changed",
        "payme-create-merchant-inactive", "payme-pay-bad-token", "payme-key-changed"])
async def test_a_permanent_refusal_ends_the_renewal_and_is_told_once(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram, provider: str, refuse: Callable[[Shops], None], told: str, kept: bool,
) -> None:
    subscription = await subscribed(client, worker, shops, provider)
    end = subscription.current_period_end
    refuse(shops)
    told_since = await nearly_due(clock, services, worker, fake, end)

    renewal = await the_renewal()
    assert (renewal.status, renewal.hard_decline, renewal.attempts) == (RenewalStatus.FAILED, True, 1)
    assert renewal.last_reason and renewal.last_reason.startswith(told)
    stopped = await current()
    assert stopped.status is SubscriptionStatus.ACTIVE, "the paid time runs out"
    assert (stopped.payment_token is not None) is kept, "our credentials' fault keeps the payer's method"
    assert money_taken(shops, provider) == 0 and await paid_operations(provider) == []
    [user_notice] = told_since.user()
    assert "/pay/" in user_notice, "a link to pay by hand"
    [admin_notice] = told_since.admin()
    assert told in admin_notice and SECRET_KEY not in admin_notice and PAYME_KEY not in admin_notice

    calls = charge_calls(shops, provider)
    clock.now = end + timedelta(seconds=1)
    await run(clock, services, worker)
    await run(clock, services, worker)
    assert (await current()).status is SubscriptionStatus.EXPIRED
    assert charge_calls(shops, provider) == calls, "the same refused call is never made again"
    assert len(told_since.user()) == 2 and len(told_since.admin()) == 1, "the end told to the user; the admin once"


# ---- temporary failures: the same charge tried again on RETRY_INTERVALS, paid once ---------------------------

def yookassa_500(shops: Shops) -> None:
    shops.yookassa.rules.fail_next(500)


def yookassa_429(shops: Shops) -> None:
    shops.yookassa.rules.fail_next(429)


def yookassa_500_after_the_payment(shops: Shops) -> None:
    shops.yookassa.rules.fail_next(500, after_effect=True)


def payme_503_on_create(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("cards.check", http_status=503)


def payme_system_error_on_pay(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("receipts.pay", -32400)


def payme_processing_down(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("receipts.create", -31002)


@pytest.mark.parametrize(("provider", "fail", "made_before"), [
    ("yookassa", yookassa_500, 0), ("yookassa", yookassa_429, 0), ("yookassa", yookassa_500_after_the_payment, 1),
    ("payme", payme_503_on_create, 0), ("payme", payme_system_error_on_pay, 1), ("payme", payme_processing_down, 0),
], ids=["yookassa-500", "yookassa-429", "yookassa-500-after-the-payment-was-made", "payme-http-503",
        "payme-system-error-after-the-receipt", "payme-processing-centre-down"])
async def test_a_temporary_failure_is_tried_again_later_and_pays_once(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram, provider: str, fail: Callable[[Shops], None], made_before: int,
) -> None:
    subscription = await subscribed(client, worker, shops, provider)
    end = subscription.current_period_end
    fail(shops)
    told_since = await nearly_due(clock, services, worker, fake, end)

    renewal = await the_renewal()
    assert (renewal.status, renewal.outcome_unknown, renewal.attempts) == (RenewalStatus.DUE, True, 1)
    assert renewal.next_attempt_at == clock.now + timedelta(seconds=RETRIES[0])
    assert renewal.last_reason and "unavailable" in renewal.last_reason
    assert charges_made(shops, provider) == made_before
    assert told_since.user() == [] and told_since.admin() == [], "nothing was declined: nobody is told yet"
    assert (await current()).payment_token is not None

    clock.now = renewal.next_attempt_at
    await run(clock, services, worker)
    renewal = await the_renewal()
    assert (renewal.status, renewal.attempts) == (RenewalStatus.PAID, 2)
    assert charges_made(shops, provider) == money_taken(shops, provider) == 1, "the one the failed try may have made"
    [operation] = await paid_operations(provider)
    assert operation.operation_id == renewal.operation_id
    renewed = await current()
    assert renewed.status is SubscriptionStatus.ACTIVE and renewed.current_period_end == clock.now + timedelta(days=30)
    assert len(told_since.user()) == 1 and len(told_since.admin()) == 1, "the payment, told once"


async def test_a_retry_after_an_unknown_outcome_repeats_the_same_idempotence_key(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
) -> None:
    subscription = await subscribed(client, worker, shops, "yookassa")
    shops.yookassa.rules.fail_next(500, after_effect=True)
    shops.yookassa.decline_method(YOOKASSA_METHOD, "insufficient_funds", times=1)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await run(clock, services, worker)
    clock.now = (await the_renewal()).next_attempt_at
    await run(clock, services, worker)  # the same payment, found canceled: a decline; the next try is a new charge
    renewal = await the_renewal()
    assert (renewal.status, renewal.attempts, renewal.outcome_unknown) == (RenewalStatus.DUE, 2, False)
    clock.now = renewal.next_attempt_at
    await run(clock, services, worker)
    assert (await the_renewal()).status is RenewalStatus.PAID
    keys = [headers["Idempotence-Key"] for method, path, headers, body in shops.yookassa.requests
            if (method, path) == ("POST", "/v3/payments") and "payment_method_id" in (body or {})]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert len(shops.yookassa.charges) == 2 and len(await paid_operations("yookassa")) == 1


def yookassa_down(shops: Shops) -> None:
    shops.yookassa.fail_with = 503


def payme_down(shops: Shops) -> None:
    shops.payme.subscribe.fail_next("any", http_status=502, count=100)


@pytest.mark.parametrize(("provider", "outage"), [("yookassa", yookassa_down), ("payme", payme_down)])
async def test_failures_that_never_end_expire_the_subscription_like_a_decline(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram, provider: str, outage: Callable[[Shops], None],
) -> None:
    subscription = await subscribed(client, worker, shops, provider)
    outage(shops)
    told_since = await nearly_due(clock, services, worker, fake, subscription.current_period_end)
    for _ in range(len(RETRIES) + 1):
        await run(clock, services, worker)
        renewal = await the_renewal()
        clock.now = renewal.next_attempt_at if renewal.status is RenewalStatus.DUE else clock.now
    renewal = await the_renewal()
    assert (renewal.status, renewal.hard_decline, renewal.attempts) == (RenewalStatus.FAILED, False, len(RETRIES) + 1)
    ended = await current()
    assert ended.status is SubscriptionStatus.EXPIRED and ended.payment_token is not None
    [user_notice] = told_since.user()
    assert "/pay/" in user_notice
    [admin_notice] = told_since.admin()
    assert "unavailable" in admin_notice
    await run(clock, services, worker)
    assert len(told_since.user()) == 1 and len(told_since.admin()) == 1


async def test_an_unexpected_error_moves_the_renewal_on_and_never_charges_twice(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
) -> None:
    """A payment YooKassa made in the other mode (a live key on a test setup) is refused by the charger with
    an error it does not classify: each try looks the same payment up, then the renewal ends."""
    subscription = await subscribed(client, worker, shops, "yookassa")
    shops.yookassa.test = False
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await run(clock, services, worker)
    renewal = await the_renewal()
    assert (renewal.status, renewal.outcome_unknown) == (RenewalStatus.DUE, True)
    assert renewal.operation_id == shops.yookassa.charges[0] and "ProviderRejected" in (renewal.last_reason or "")
    for _ in range(len(RETRIES)):
        clock.now = (await the_renewal()).next_attempt_at
        await run(clock, services, worker)
    renewal = await the_renewal()
    assert renewal.status is RenewalStatus.FAILED and renewal.attempts == len(RETRIES) + 1
    assert len(shops.yookassa.charges) == 1 and await paid_operations("yookassa") == []


# ---- charges the provider decides later -------------------------------------------------------------------

@pytest.mark.parametrize("declined", [False, True], ids=["then-succeeded", "then-canceled"])
async def test_a_charge_left_pending_is_looked_up_until_it_ends(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram, declined: bool,
) -> None:
    subscription = await subscribed(client, worker, shops, "yookassa")
    shops.yookassa.rules.pending_for = timedelta(minutes=12)
    if declined:
        shops.yookassa.decline_method(YOOKASSA_METHOD, "insufficient_funds", times=1)
    told_since = await nearly_due(clock, services, worker, fake, subscription.current_period_end)
    start = clock.now
    renewal = await the_renewal()
    assert renewal.status is RenewalStatus.PENDING and renewal.operation_id == shops.yookassa.charges[0]
    while renewal.status is RenewalStatus.PENDING:
        assert clock.now - start < timedelta(minutes=30), "the pending charge ended on the emulator's clock"
        clock.now = renewal.next_attempt_at
        await run(clock, services, worker)
        renewal = await the_renewal()
    assert len(shops.yookassa.charges) == 1
    if not declined:
        assert renewal.status is RenewalStatus.PAID and len(await paid_operations("yookassa")) == 1
        return
    assert renewal.status is RenewalStatus.DUE and renewal.next_attempt_at == clock.now + timedelta(seconds=RETRIES[0])
    assert len(told_since.user()) == 1 and told_since.admin() == [], "a decline with its next try, to the user"
    shops.yookassa.rules.pending_for = None
    clock.now = renewal.next_attempt_at
    await run(clock, services, worker)
    assert (await the_renewal()).status is RenewalStatus.PAID and len(await paid_operations("yookassa")) == 1


# ---- Payme: a debit that fails after our CreateTransaction ---------------------------------------------------

async def test_a_payme_debit_failing_after_create_is_cancelled_here_and_the_invoice_stays_payable(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
) -> None:
    subscription = await subscribed(client, worker, shops, "payme")
    shops.payme.notify_url = str(client.make_url("/notify/payme"))
    shops.payme.subscribe.merchant_hook = shops.payme.perform_receipt
    shops.payme.subscribe.decline_next(PAYME_TOKEN, 1, PAYME_INSUFFICIENT_FUNDS)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await run(clock, services, worker)

    renewal = await the_renewal()
    assert renewal.status is RenewalStatus.DUE and renewal.attempts == 1
    assert [call.method for call in shops.payme.calls] == ["CheckPerformTransaction", "CreateTransaction",
                                                           "CancelTransaction"]
    assert all(call.result for call in shops.payme.calls), "our Merchant API accepted each call"
    [cancelled] = await PaymeTransaction.find_all().to_list()
    assert (cancelled.state, cancelled.reason, cancelled.label) == (PaymeState.CANCELLED, 2, renewal.label)
    invoice = await Invoice.find_one(Invoice.label == renewal.label)
    assert invoice is not None and invoice.status is InvoiceStatus.PENDING, "still payable"
    assert await paid_operations("payme") == [] and (await current()).status is SubscriptionStatus.PAST_DUE

    clock.now = renewal.next_attempt_at
    await run(clock, services, worker)
    renewal = await the_renewal()
    assert renewal.status is RenewalStatus.PAID
    [operation] = await paid_operations("payme")
    assert operation.operation_id == renewal.operation_id
    assert len(shops.payme.subscribe.paid_receipts()) == 1
    assert (await current()).current_period_end == clock.now + timedelta(days=30)


# ---- the emulators' control routes refuse bad input -------------------------------------------------------

@pytest.mark.parametrize(("path", "body"), [
    ("/control/shop", {"autopayments": "no"}), ("/control/shop", {"pending_seconds": -1}),
    ("/control/shop", ["autopayments"]), ("/control/failures", {"status": 200}),
    ("/control/failures", {"status": 500, "times": 0}), ("/control/failures", {"status": "500"}),
    ("/control/failures", {"status": 500, "after_effect": "yes"}),
])
async def test_the_yookassa_emulator_refuses_bad_control_input(shops: Shops, path: str, body: Any) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(shops.urls["yookassa"] + path, json=body) as response:
            assert response.status == 400
        async with session.post(shops.urls["yookassa"] + path, data=b"{not json") as response:
            assert response.status == 400
    assert shops.yookassa.rules.autopayments and not shops.yookassa.rules.failures


async def test_the_emulators_control_routes_set_the_failures(shops: Shops) -> None:
    auth = {"X-Auth": f"{PAYME_MERCHANT}:{PAYME_KEY}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(shops.urls["yookassa"] + "/control/shop",
                                json={"autopayments": False, "receipts_required": True, "pending_seconds": 60}) as r:
            assert r.status == 200 and await r.json() == {"autopayments": False, "receipts_required": True,
                                                          "pending_seconds": 60}
        async with session.post(shops.urls["yookassa"] + "/control/failures",
                                json={"status": 429, "times": 2, "after_effect": False}) as r:
            assert r.status == 200 and (await r.json())["failures"] == 2
        for bad, headers in (({"method": "receipts.pay", "code": "x"}, auth), ({"code": -31601, "http_status": 500},
                                                                                auth),
                             ({"method": "receipts.pay", "code": -31601, "count": 0}, auth),
                             ({"method": "receipts.pay", "code": -31601}, {"X-Auth": PAYME_MERCHANT})):
            async with session.post(shops.urls["payme"] + "/control/failures", json=bad, headers=headers) as r:
                assert r.status in (400, 403)
        async with session.post(shops.urls["payme"] + "/control/failures",
                                json={"method": "receipts.pay", "code": -31601, "count": 2}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["failures"] == 2
    assert shops.payme.subscribe.failures == {"receipts.pay": [-31601, -31601]}
    assert shops.yookassa.rules.receipts_required and shops.yookassa.rules.pending_for == timedelta(seconds=60)
