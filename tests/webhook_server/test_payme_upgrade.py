"""Upgrading a database an earlier version wrote: its `order_lock_unique` index on payme_transactions (one live
transaction per invoice, now the invoice's claim) would let only one transaction without `order_lock` in."""

from __future__ import annotations

from db.payme import PaymeTransaction, drop_retired_indexes
from tests.helpers import new_invoice
from tests.payme_support import PRICE_MONTH_UZS, error_code, payme, settings  # noqa: F401 - fixtures
from webhook_server.emulators.payme import new_payme_id


async def test_the_retired_order_lock_index_is_dropped_and_creates_work_again(client, payme):
    collection = PaymeTransaction.get_motor_collection()
    await collection.create_index("order_lock", unique=True, name="order_lock_unique")  # as the old version left it
    first, second = await new_invoice(client), await new_invoice(client)
    assert (await payme.create(client.session, new_payme_id(), first["label"], PRICE_MONTH_UZS)).result
    blocked_id = new_payme_id()
    blocked = await payme.create(client.session, blocked_id, second["label"], PRICE_MONTH_UZS)
    assert error_code(blocked) == -32400, "the old index refuses every second transaction"

    await drop_retired_indexes(collection.database)
    await drop_retired_indexes(collection.database)  # safe at every start

    assert "order_lock_unique" not in await collection.index_information()
    again = await payme.create(client.session, blocked_id, second["label"], PRICE_MONTH_UZS)
    assert again.result and again.result["state"] == 1, "Payme's repeat of the refused Create now succeeds"
