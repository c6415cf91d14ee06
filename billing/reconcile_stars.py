"""`ymds reconcile stars --from --to`: our ledger against the bot's Star transactions (getStarTransactions).

Telegram lists every Star transaction of the bot, oldest first: an incoming `invoice_payment` per charge
(its id is the charge id, our operation id) and an outgoing entry with the same id per refund. For the
period: every incoming payment must be in the ledger at the same amount and applied (or reversed, when
Telegram shows it refunded); every refund must be reversed in the ledger; every ledger operation of
`telegram_stars` must have its transaction. In polling mode an update whose handler failed is not
delivered again, so this is where a lost payment shows up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from billing.providers.stars.protocol import MAX_TRANSACTIONS_PAGE, NAME, StarsApi, StarTransaction, read_transaction
from billing.reconciliation import parse_period, require_database, run_report
from db import Operation, OperationStatus
from db.stars import StarsCharge
from settings import ConfigError, Settings

MAX_PAGES = 10000  # a million transactions; a fake that never ends the list cannot loop forever
ApiOpener = Callable[[Settings], AbstractAsyncContextManager[StarsApi]]


@dataclass(frozen=True, slots=True)
class Mismatch:
    charge_id: str
    problem: str

    def line(self) -> str:
        return f"MISMATCH {self.charge_id}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Report:
    start: datetime
    end: datetime
    payments: int
    refunds: int
    operations: int
    mismatches: list[Mismatch]

    def lines(self) -> list[str]:
        head = (f"stars {self.start.isoformat()} .. {self.end.isoformat()}: {self.payments} payments, "
                f"{self.refunds} refunds, {self.operations} ledger operations, {len(self.mismatches)} mismatches")
        return [head, *(mismatch.line() for mismatch in self.mismatches)]


async def all_transactions(api: StarsApi) -> AsyncIterator[StarTransaction]:
    """Every transaction, paging with offset += len(page) until an empty page."""
    offset = 0
    for _ in range(MAX_PAGES):
        page = await api.transactions(offset, MAX_TRANSACTIONS_PAGE)
        if not page:
            return
        for fields in page:
            yield read_transaction(fields)
        offset += len(page)


async def reconcile(api: StarsApi, start: datetime, end: datetime) -> Report:
    """Transactions dated start ≤ date < end, and ledger operations recorded in the same period."""
    payments: dict[str, StarTransaction] = {}
    refunds: dict[str, StarTransaction] = {}
    async for transaction in all_transactions(api):
        if not transaction.invoice_payment:
            continue  # withdrawals, ads, gifts: not payments for our invoices
        (payments if transaction.incoming else refunds)[transaction.id] = transaction
    in_period = await Operation.find(Operation.provider == NAME, Operation.recorded_at >= start,
                                     Operation.recorded_at < end).to_list()
    operations = {op.operation_id: op for op in await Operation.find(Operation.provider == NAME).to_list()}
    mismatches: list[Mismatch] = []
    dated = [tx for tx in payments.values() if start <= tx.date < end]
    for tx in dated:
        mismatches += [Mismatch(tx.id, problem) for problem in await _check(tx, operations.get(tx.id),
                                                                            tx.id in refunds)]
    checked = {tx.id for tx in dated}
    for tx in (tx for tx in refunds.values() if start <= tx.date < end and tx.id not in checked):
        operation = operations.get(tx.id)  # a refund in the period of a payment made before it
        if operation is not None and operation.status not in (OperationStatus.REVERSED, OperationStatus.REJECTED):
            mismatches.append(Mismatch(tx.id, f"refunded in Telegram, but the ledger has it {operation.status.value}"))
    for operation in in_period:
        if operation.operation_id not in payments:
            mismatches.append(Mismatch(operation.operation_id, f"ledger operation ({operation.status.value}) for "
                                       f"{operation.label} without a Telegram transaction"))
    return Report(start, end, len(dated), sum(start <= tx.date < end for tx in refunds.values()), len(in_period),
                  mismatches)


async def _check(tx: StarTransaction, operation: Operation | None, refunded: bool) -> list[str]:
    if operation is None:
        return [f"⭐ {tx.amount} from user {tx.user_id} for {tx.payload} paid in Telegram, but not in the ledger"]
    problems = []
    if operation.amount != tx.amount or operation.currency != "XTR":
        problems.append(f"ledger has {operation.amount} {operation.currency}, Telegram ⭐ {tx.amount}")
    charge = await StarsCharge.find_one(StarsCharge.charge_id == tx.id)
    if charge is not None and tx.payload is not None and charge.payload != tx.payload:
        problems.append(f"ledger charge is for {charge.payload}, Telegram for {tx.payload}")
    status = operation.status
    if refunded:
        if status not in (OperationStatus.REVERSED, OperationStatus.REJECTED):
            problems.append(f"refunded in Telegram, but the ledger has it {status.value}")
    elif status is OperationStatus.REVERSED:
        problems.append("reversed in the ledger, but Telegram shows no refund")
    elif status is OperationStatus.RECORDED:
        problems.append("recorded, not yet applied by the worker")
    elif status is OperationStatus.EXTRA:
        problems.append(f"paid an invoice another payment had paid: refund it with /stars_refund {tx.id}")
    elif status is OperationStatus.REJECTED:
        problems.append(f"kept for review ({operation.reason}): grant by hand or /stars_refund {tx.id}")
    return problems


def run(settings: Settings, start_text: str, end_text: str, *, open_api: ApiOpener) -> tuple[int, list[str]]:
    """The command: exit status (0 all agree, 1 mismatches) and the lines to print."""
    start, end = parse_period(start_text, end_text)
    require_database(settings)
    if settings.bot_token is None:
        raise ConfigError("BOT_TOKEN: the Star transactions are the bot's; set its token")

    async def compare() -> Report:
        async with open_api(settings) as api:
            return await reconcile(api, start, end)

    return run_report(settings, compare)
