"""One rig per provider that charges saved methods: its emulator on loopback, a saved method it knows, a way
to make that method decline, and the charges it saw. The renewal tests run the same cases on each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator, TokenDecline
from webhook_server.emulators.payme import PaymeEmulator
from webhook_server.emulators.payme_subscribe import EmulatedCard
from webhook_server.emulators.yookassa import YooKassaEmulator


@dataclass
class Rig:
    name: str
    emulator: Any
    save: Callable[[], str]  # a saved method the emulator charges; returns its token
    decline: Callable[[str, bool, int], None]  # (token, hard, times): the next charges fail
    charges: Callable[[], int]
    method: str = "Visa •••• 4242"


def yookassa_rig(emulator: YooKassaEmulator) -> Rig:
    def save() -> str:
        emulator.saved_methods.add("pm-2f1a-renew")
        return "pm-2f1a-renew"

    def decline(token: str, hard: bool, times: int) -> None:
        emulator.decline_method(token, "card_expired" if hard else "insufficient_funds", times)

    return Rig("yookassa", emulator, save, decline, lambda: len(emulator.charges))


def cloudpayments_rig(emulator: CloudPaymentsEmulator) -> Rig:
    def save() -> str:
        emulator.tokens.add("tk_renew_0f3b9c2e")
        return "tk_renew_0f3b9c2e"

    def decline(token: str, hard: bool, times: int) -> None:
        emulator.decline_token(token, TokenDecline(5054, "ExpiredCard") if hard else TokenDecline(), times)

    return Rig("cloudpayments", emulator, save, decline, lambda: len(emulator.charges))


PAYME_INSUFFICIENT_FUNDS = -31630
PAYME_CARD_EXPIRED = -31301
ALWAYS = 1000


def payme_rig(emulator: PaymeEmulator) -> Rig:
    subscribe = emulator.subscribe

    def save() -> str:
        token = "payme-card-token-renew-1"
        subscribe.cards[token] = EmulatedCard(number="8600069195406311", expire="1299", token=token, recurrent=True,
                                              verified=True)
        return token

    def decline(token: str, hard: bool, times: int) -> None:
        subscribe.decline_next(token, times or ALWAYS, PAYME_CARD_EXPIRED if hard else PAYME_INSUFFICIENT_FUNDS)

    return Rig("payme", emulator, save, decline, lambda: subscribe.methods.count("receipts.pay"),
               method="860006******6311")
