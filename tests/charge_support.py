"""What the saved-method charge tests of every provider share: a renewal's ChargeRequest and a `remember`
that keeps what it was told (or fails, as a worker dying at that moment would)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from billing.money import Money
from billing.providers.base import ChargeRequest, SavedMethodCharger
from webhook_server.keys import PROVIDERS

RENEWAL_PRICE = Money(29900, "RUB")  # the month plan's RUB price


def charger(client: TestClient, name: str) -> Any:
    """The app's own provider object (its API client on the app's HTTP session), as the renewal job gets it."""
    provider = client.app[PROVIDERS].get(name)
    assert isinstance(provider, SavedMethodCharger)
    return provider


def renewal(label: str, token: str, *, key: str = "renewal:sub-1:period-1:attempt-0", user_id: int = 42,
            amount: Money = RENEWAL_PRICE, known_operation_id: str | None = None) -> ChargeRequest:
    return ChargeRequest(label=label, amount=amount, token=token, idempotency_key=key, user_id=user_id,
                         description=f"Renewal of invoice {label}", known_operation_id=known_operation_id)


class WorkerDied(Exception):
    """Stands for the renewal job's process dying."""


class Remembered:
    """The `remember` a renewal job passes: keeps each operation id, with what `seen` said about it then
    (e.g. whether the provider's emulator already holds that charge), or dies instead when told to."""

    def __init__(self, seen: Callable[[str], object] = lambda _: None, *, die: bool = False) -> None:
        self.ids: list[str] = []
        self.seen_then: list[object] = []
        self._seen = seen
        self._die = die

    async def __call__(self, operation_id: str) -> None:
        self.ids.append(operation_id)
        self.seen_then.append(self._seen(operation_id))
        if self._die:
            raise WorkerDied(operation_id)
