"""Payme (Paycom, Uzbekistan): the checkout link, the Merchant API (JSON-RPC 2.0, Basic auth), and
saved cards through the Subscribe API.

Everything open-ymds knows about Payme lives in this package: `protocol` (envelope, auth, errors,
times, checkout link), `merchant` (the transaction state machine), `subscribe` (the Subscribe API
client), `charges` (charging a saved card, and why a receipt and a Merchant API transaction are one
operation), `binding` (the payment page's "pay by card and renew automatically"), `fiscal` (the receipt detail and
SetFiscalData), and here the
provider object the web app holds. Payme calls `POST /notify/payme`; every answer is HTTP 200 with
a JSON-RPC body.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError

from billing.clock import Clock
from billing.errors import LedgerUnavailable
from billing.fiscal import FiscalShop
from billing.ledger import Ledger
from billing.money import Money
from billing.plans import Catalogue
from billing.ports import FulfilmentQueue
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    HttpTransport,
    PageForm,
    ProviderAnswer,
    RawNotification,
    RefundUnsupported,
    Remember,
)
from billing.providers.payme.charges import CardCheck, ReceiptCharger
from billing.providers.payme.fiscal import PaymeReceipts
from billing.providers.payme.merchant import PaymeMerchant
from billing.providers.payme.protocol import (
    CURRENCY,
    DEFAULT_ACCOUNT_FIELD,
    INSUFFICIENT_PRIVILEGE,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NAME,
    NOT_POST,
    PARSE_ERROR,
    PRODUCTION_API_URL,
    PRODUCTION_CHECKOUT_URL,
    SANDBOX_API_URL,
    SANDBOX_CHECKOUT_URL,
    SYSTEM_ERROR,
    PaymeError,
    authorized,
    checkout_text,
    checkout_url,
    error_answer,
    parse_body,
    read_request,
    request_id_of,
    result_answer,
)
from billing.providers.payme.refunds import cancel_receipt, receipt_status
from billing.providers.payme.subscribe import SavedCard, SubscribeClient
from billing.refunds import RefundResult
from billing.signing import secrets_equal
from db.payme import PaymeKey

log = logging.getLogger(__name__)

__all__ = ["NAME", "CardBinding", "Payme", "PaymeMerchant"]

KEY_SLOT = "merchant"
MERCHANT_METHODS: dict[str, Callable[[PaymeMerchant, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "CheckPerformTransaction": PaymeMerchant.check_perform_transaction,
    "CreateTransaction": PaymeMerchant.create_transaction,
    "PerformTransaction": PaymeMerchant.perform_transaction,
    "CancelTransaction": PaymeMerchant.cancel_transaction,
    "CheckTransaction": PaymeMerchant.check_transaction,
    "GetStatement": PaymeMerchant.get_statement,
    "SetFiscalData": PaymeMerchant.set_fiscal_data,
}


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CardBinding:
    """What the payment page's card form needs: where the browser calls the front-end methods, as whom."""

    api_url: str
    merchant_id: str


class NoSubscribeApi(Exception):
    """Payme was built without an HTTP transport, so it cannot call the Subscribe API."""


class Payme:
    """The Payme provider, built from explicit credentials and options. With a transport it is also a
    SavedMethodCharger (billing.providers.base): renewals charge saved cards through receipts."""

    name = NAME
    charge_currency = CURRENCY

    def __init__(
        self,
        *,
        merchant_id: str,
        key: str,
        checkout_url: str = PRODUCTION_CHECKOUT_URL,
        sandbox: bool = False,
        account_field: str = DEFAULT_ACCOUNT_FIELD,
        cancel_after_perform: bool = True,
        transport: HttpTransport | None = None,
        api_url: str = PRODUCTION_API_URL,
        fiscal_shop: FiscalShop | None = None,
    ) -> None:
        """`fiscal_shop` (PAYME_RECEIPTS): Payme fiscalises the payments, from the receipt detail our
        CheckPerformTransaction answers (`fiscal`)."""
        if not account_field or any(char in account_field for char in ";=. "):
            raise ValueError("the Payme account field name must be a plain identifier such as order_id")
        self._merchant_id = merchant_id
        self._key = key
        self._checkout_url = SANDBOX_CHECKOUT_URL if sandbox else checkout_url
        self.account_field = account_field
        self._cancel_after_perform = cancel_after_perform
        self.fiscal_shop = fiscal_shop
        self._api_url = SANDBOX_API_URL if sandbox and api_url == PRODUCTION_API_URL else api_url
        self._client = None if transport is None else SubscribeClient(
            transport, self._api_url, merchant_id, self.active_key, account_field)
        self._charger = None if self._client is None else ReceiptCharger(self._client)

    # ---- the payment page ---------------------------------------------------------------------

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """A GET to `<checkout>/<base64(m=…;ac.<field>=…;a=…;c=…)>` for an invoice with a UZS price."""
        amount = amounts.get(CURRENCY)
        if amount is None or ";" in label:
            return None
        text = checkout_text(
            merchant_id=self._merchant_id, account_field=self.account_field, label=label, amount=amount,
            return_url=success_url if ";" not in success_url else None,
        )
        return PageForm(provider=NAME, action=checkout_url(self._checkout_url, text), method="get", fields={})

    def card_binding(self, amounts: Mapping[str, int]) -> CardBinding | None:
        """The card form for an invoice with a UZS price, when the Subscribe API can be reached."""
        if CURRENCY not in amounts or self._charger is None:
            return None
        return CardBinding(api_url=self._api_url, merchant_id=self._merchant_id)

    # ---- saved cards (Subscribe API) ----------------------------------------------------------

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        return await self._subscribe().charge(request, remember)

    async def forget(self, token: str) -> bool:
        return await self._subscribe().forget(token)

    async def check_card(self, token: str) -> CardCheck:
        """cards.check for the card binding: verified and recurrent, or the decline to show."""
        return await self._subscribe().check_card(token)

    async def charge_checked(self, request: ChargeRequest, remember: Remember, card: SavedCard | None) -> ChargeResult:
        """charge() for a card check_card() has just accepted."""
        return await self._subscribe().charge_checked(request, remember, card)

    # ---- refunds of saved-card charges (receipts.cancel; see `refunds`) ------------------------

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> RefundResult:
        """The admin API's refund: succeeded, or pending while Payme has the receipt queued for cancellation."""
        if self._client is None:
            raise RefundUnsupported("Payme was built without the Subscribe API: refund in the merchant cabinet")
        return await cancel_receipt(self._client, operation_id=operation_id, amount=amount, label=label)

    async def refund_status(self, refund_id: str) -> RefundResult:
        if self._client is None:
            raise NoSubscribeApi("Payme was built without a transport for the Subscribe API")
        return await receipt_status(self._client, refund_id)

    def _subscribe(self) -> ReceiptCharger:
        if self._charger is None:
            raise NoSubscribeApi("Payme was built without a transport for the Subscribe API")
        return self._charger

    # ---- the Merchant API ---------------------------------------------------------------------

    async def handle(
        self, raw: RawNotification, *, http_method: str, ledger: Ledger, reversals: FulfilmentQueue, clock: Clock,
        plans: Catalogue | None = None,
    ) -> ProviderAnswer:
        """One Merchant API call → its JSON-RPC answer. Authentication comes before anything else. `plans`
        gives the receipt's items when fiscalisation is on."""
        try:
            payload, parsed = parse_body(raw.body), True
        except ValueError:  # not UTF-8, not JSON, or nested too deep (billing.bounded_json)
            payload, parsed = None, False
        request_id = request_id_of(payload)
        receipts = None if self.fiscal_shop is None or plans is None else PaymeReceipts(plans, self.fiscal_shop)
        merchant = PaymeMerchant(account_field=self.account_field, cancel_after_perform=self._cancel_after_perform,
                                 ledger=ledger, reversals=reversals, clock=clock, receipts=receipts)
        try:
            if not authorized(raw.headers, await self.active_key()):
                log.warning("payme request from %s refused: bad or missing authorization", raw.remote)
                raise PaymeError(INSUFFICIENT_PRIVILEGE)
            if http_method != "POST":
                raise PaymeError(NOT_POST)
            if not parsed:
                raise PaymeError(PARSE_ERROR)
            request = read_request(payload)
            if request.method == "ChangePassword":
                result = await self._change_password(request.params, clock())
            elif request.method in MERCHANT_METHODS:
                result = await MERCHANT_METHODS[request.method](merchant, request.params)
            else:
                raise PaymeError(METHOD_NOT_FOUND, request.method)
        except PaymeError as err:
            log.info("payme request %r answered %s (%r)", request_id, err.fault.code, err.data)
            return error_answer(request_id, err)
        except (LedgerUnavailable, PyMongoError) as err:
            log.error("payme request %r failed on our side, Payme will retry: %s", request_id, err)
            return error_answer(request_id, PaymeError(SYSTEM_ERROR))
        return result_answer(request.request_id, result)

    async def active_key(self) -> str:
        """PAYME_KEY, unless Payme changed it with ChangePassword since PAYME_KEY was set."""
        stored = await PaymeKey.find_one(PaymeKey.slot == KEY_SLOT)
        if stored is not None and secrets_equal(stored.replaced_sha256, _fingerprint(self._key)):
            return stored.key
        return self._key

    async def _change_password(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Payme's key change: the new key is stored and authenticates every later call."""
        password = params.get("password")
        if not isinstance(password, str) or not password.strip() or len(password) > 256:
            raise PaymeError(INVALID_REQUEST, "password")
        await PaymeKey.get_motor_collection().update_one(
            {"slot": KEY_SLOT},
            {"$set": {"key": password, "replaced_sha256": _fingerprint(self._key), "changed_at": now}},
            upsert=True,
        )
        log.warning("payme changed the Merchant API key (ChangePassword); the new key replaces PAYME_KEY")
        return {"success": True}
