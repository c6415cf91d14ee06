"""Charging a saved Payme card: `cards.check`, `receipts.create`, remember the receipt, `receipts.pay`.

One charge is one receipt. Its `_id` is remembered before `receipts.pay`, so a rerun after a crash
or a timeout looks the receipt up (`receipts.get`) instead of creating a second one, and Payme never
pays one receipt twice.

One operation, two routes. Payme describes receipt states 1 and 3 as "the transaction in the
merchant's billing" (reference §5.3, unconfirmed), so Payme may also run Check/Create/Perform on
our Merchant API (`/notify/payme`) for the receipt's order while `receipts.pay` is under way.
PerformTransaction records the operation ("payme", params.id); this module records it as
("payme", receipt `_id`). The two are the same id: Payme's own documentation names the `id` of
`receipts.pay` "id транзакции" (the transaction id, developer.help.paycom.uz, "Холдирование"), and
both are 24-hex Payme ids. No page states it outright, so this stays to be confirmed in the
sandbox. Given the same id, the ledger's unique (provider, operation_id) keeps one operation
whichever route records first; a route that comes second gets DUPLICATE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import ChargeRequest, ChargeResult, ChargeStatus, EventKind, Remember, VerifiedEvent
from billing.providers.payme.protocol import CURRENCY, NAME, from_ms
from billing.providers.payme.subscribe import (
    HTTP_TRANSPORT_ERROR,
    RECEIPT_CANCEL_QUEUED,
    RECEIPT_CANCELLED,
    RECEIPT_CREATED,
    RECEIPT_PAID,
    PaymeSubscribeError,
    Receipt,
    SavedCard,
    SubscribeClient,
)

log = logging.getLogger(__name__)

# Declines no retry can fix (codes from payme-pkg's table, reference §4; Payme publishes none):
# invalid card number or expiry, card expired or blocked, card (token) not found, bad token format.
HARD_DECLINES = frozenset({-31300, -31301, -31400, -32500})
# The outcome is unknown: Payme's system error, processing centre unavailable. The rerun looks it up.
UNAVAILABLE = frozenset({-32400, -31002})
# Our side is wrong (credentials, request shape, PAYME_API_URL answering 4xx): no charge was attempted and
# no retry of the same request can succeed. The card binding page shows these as Payme refusing us; a
# renewal ends its attempt as a hard decline that keeps the card, which is not at fault (`refused`).
MISCONFIGURED = frozenset({-32504, -31601, -32600, -32601, -32602, -32700, HTTP_TRANSPORT_ERROR})
CARD_GONE = -31400
NOT_RECURRENT = "the card cannot be charged without the payer (not recurrent or not verified)"
CANCELLED_REASON = "Payme cancelled the receipt"
REASON_LIMIT = 300


@dataclass(frozen=True, slots=True)
class CardCheck:
    """cards.check's verdict: the card, or the decline to report instead of charging it."""

    card: SavedCard | None
    declined: ChargeResult | None = None


def declined(err: PaymeSubscribeError, operation_id: str | None = None) -> ChargeResult:
    """A Payme error as a decline; configuration errors and unknown outcomes are raised instead."""
    if err.code in MISCONFIGURED:
        raise err
    if err.code in UNAVAILABLE:
        raise ProviderUnavailable(f"payme: {err.code} {err.message}") from err
    return ChargeResult(ChargeStatus.DECLINED, operation_id=operation_id, reason=_reason(err),
                        hard=err.code in HARD_DECLINES)


def refused(err: PaymeSubscribeError) -> ChargeResult:
    """Any Payme error of a renewal charge as its decline: ours (MISCONFIGURED) ends the attempt, card kept."""
    if err.code in MISCONFIGURED:
        return ChargeResult(ChargeStatus.DECLINED, reason=_reason(err), hard=True, keep_method=True)
    return declined(err)


def _reason(err: PaymeSubscribeError) -> str:
    return (f"Payme {err.code}: {err.message}" if err.message else f"Payme {err.code}")[:REASON_LIMIT]


def cancelled_receipt(result: ChargeResult) -> bool:
    """A decline because the receipt itself is cancelled at Payme (so no one can pay it any more)."""
    return result.status is ChargeStatus.DECLINED and result.reason == CANCELLED_REASON


class ReceiptCharger:
    """SavedMethodCharger's work for Payme, over the Subscribe API client."""

    def __init__(self, client: SubscribeClient) -> None:
        self._client = client

    async def check_card(self, token: str) -> CardCheck:
        """cards.check: a card that is verified and recurrent, or a hard decline."""
        try:
            card = await self._client.cards_check(token)
        except PaymeSubscribeError as err:
            return CardCheck(None, declined(err))
        if not (card.recurrent and card.verified):
            return CardCheck(None, ChargeResult(ChargeStatus.DECLINED, reason=NOT_RECURRENT, hard=True))
        return CardCheck(card)

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        """A renewal's charge: every Payme error is its decline (`refused`), or ProviderUnavailable."""
        try:
            if request.known_operation_id:
                return await self.charge_checked(request, remember, None)
            checked = await self.check_card(request.token)
            if checked.declined is not None:
                return checked.declined
            return await self.charge_checked(request, remember, checked.card)
        except PaymeSubscribeError as err:
            log.warning("payme refused the renewal charge for %s: %s", request.label, err.code)
            return refused(err)

    async def charge_checked(self, request: ChargeRequest, remember: Remember, card: SavedCard | None) -> ChargeResult:
        """The charge once the card passed cards.check (or, for a known receipt, needs no check)."""
        if request.amount.currency != CURRENCY:
            raise ValueError(f"payme charges {CURRENCY} only, not {request.amount.currency}")
        if request.known_operation_id:
            return await self._resume(request, request.known_operation_id, card)
        receipt = await self._client.receipts_create(request.amount.minor, request.label, request.description)
        await remember(receipt.receipt_id)
        log.info("payme receipt %s created for %s (%s)", receipt.receipt_id, request.label, request.amount)
        return await self._pay(request, receipt.receipt_id, card)

    async def forget(self, token: str) -> bool:
        """cards.remove; a token Payme no longer knows is as good as removed."""
        try:
            await self._client.cards_remove(token)
        except PaymeSubscribeError as err:
            if err.code != CARD_GONE:
                raise
        return True

    async def _resume(self, request: ChargeRequest, receipt_id: str, card: SavedCard | None) -> ChargeResult:
        """An earlier run made this receipt: report what became of it, and pay it if it still waits."""
        try:
            receipt = await self._client.receipts_get(receipt_id)
        except PaymeSubscribeError as err:
            return declined(err, receipt_id)
        if receipt.state == RECEIPT_CREATED:
            return await self._pay(request, receipt_id, card)
        return self._result(request, receipt, card)

    async def _pay(self, request: ChargeRequest, receipt_id: str, card: SavedCard | None) -> ChargeResult:
        try:
            receipt = await self._client.receipts_pay(receipt_id, request.token)
        except PaymeSubscribeError as err:
            log.info("payme receipt %s for %s declined: %s", receipt_id, request.label, err.code)
            return declined(err, receipt_id)
        return self._result(request, receipt, card)

    def _result(self, request: ChargeRequest, receipt: Receipt, card: SavedCard | None) -> ChargeResult:
        if receipt.state == RECEIPT_PAID:
            log.info("payme receipt %s for %s paid", receipt.receipt_id, request.label)
            method = receipt.card_number or (card.number if card else None)
            event = VerifiedEvent(
                provider=NAME, operation_id=receipt.receipt_id, label=request.label,
                amount=Money(receipt.amount or request.amount.minor, CURRENCY), kind=EventKind.PAYMENT,
                occurred_at=from_ms(receipt.pay_time) if receipt.pay_time else None,
                payment_method=method, payment_token=request.token,
            )
            return ChargeResult(ChargeStatus.SUCCEEDED, operation_id=receipt.receipt_id, event=event)
        if receipt.state in (RECEIPT_CANCELLED, RECEIPT_CANCEL_QUEUED):
            return ChargeResult(ChargeStatus.DECLINED, operation_id=receipt.receipt_id, reason=CANCELLED_REASON)
        return ChargeResult(ChargeStatus.PENDING, operation_id=receipt.receipt_id)
