"""`ymds reconcile payme --from --to`: our ledger against our Payme transactions for a period.

What is compared with what: Payme's GetStatement is Payme asking *us* for the transactions we
accepted in a period, to check them against its own records; the Merchant API gives a merchant no
call that returns Payme's side. So the statement this command checks is the one we serve Payme
(our Payme transactions, by Payme's `time`), and it is compared with our operation ledger: every
performed transaction recorded and applied exactly once, at the same amount and invoice; every
cancelled one never applied or reversed; no ledger operation without its Payme transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from beanie.operators import In

from billing.invoices import find_invoice
from billing.providers.payme.merchant import transactions_between
from billing.providers.payme.protocol import CURRENCY, NAME, TIMEOUT_MS, to_ms
from billing.reconciliation import parse_period, run_report
from db import Operation, OperationStatus
from db.payme import PaymeState, PaymeTransaction
from settings import Settings


@dataclass(frozen=True, slots=True)
class Mismatch:
    payme_id: str
    label: str
    state: int | None  # None: the ledger has an operation Payme's transactions do not explain
    problem: str

    def line(self) -> str:
        where = f"state {self.state}" if self.state is not None else "no Payme transaction"
        return f"MISMATCH {self.payme_id} invoice {self.label} ({where}): {self.problem}"


@dataclass(frozen=True, slots=True)
class Report:
    start: datetime
    end: datetime
    transactions: int
    operations: int
    mismatches: list[Mismatch]

    def lines(self) -> list[str]:
        head = (f"payme {self.start.isoformat()} .. {self.end.isoformat()}: {self.transactions} transactions, "
                f"{self.operations} ledger operations, {len(self.mismatches)} mismatches")
        return [head, *(mismatch.line() for mismatch in self.mismatches)]


async def reconcile(start: datetime, end: datetime, now: datetime) -> Report:
    """Transactions with start ≤ Payme's time < end, and ledger operations recorded in the same period."""
    transactions = await transactions_between(to_ms(start), to_ms(end) - 1)
    in_period = await Operation.find(
        Operation.provider == NAME, Operation.recorded_at >= start, Operation.recorded_at < end
    ).to_list()
    ids = [tx.payme_id for tx in transactions]
    linked = await Operation.find(Operation.provider == NAME, In(Operation.operation_id, ids)).to_list()
    operations = {op.operation_id: op for op in [*in_period, *linked]}
    mismatches = [m for tx in transactions for m in await _check(tx, operations.get(tx.payme_id), now)]
    known = set(ids)
    for op in in_period:
        if op.operation_id not in known and await PaymeTransaction.find_one(
            PaymeTransaction.payme_id == op.operation_id
        ) is None:
            mismatches.append(Mismatch(op.operation_id, op.label, None,
                                       f"ledger operation ({op.status.value}) without a Payme transaction"))
    return Report(start, end, len(transactions), len(in_period), mismatches)


async def _check(tx: PaymeTransaction, op: Operation | None, now: datetime) -> list[Mismatch]:
    problems: list[str] = []
    if op is not None and (op.amount != tx.amount or op.currency != CURRENCY or op.label != tx.label):
        problems.append(f"ledger has {op.amount} {op.currency} for {op.label}, Payme {tx.amount} {CURRENCY}")
    status = op.status if op is not None else None
    if tx.state is PaymeState.PERFORMED:
        problems.extend(await _performed(tx, op))
    elif tx.state is PaymeState.CANCELLED_AFTER_PERFORM and status is not OperationStatus.REVERSED:
        problems.append("refunded at Payme, but " + (
            "the ledger has no operation" if op is None else f"not reversed in the ledger ({op.status.value})"))
    elif tx.state is PaymeState.CANCELLED and op is not None and status is not OperationStatus.REVERSED:
        problems.append(f"cancelled at Payme, but the ledger holds its payment ({op.status.value})")
    elif tx.state is PaymeState.CREATED:
        if op is not None:
            problems.append(f"waiting at Payme, but recorded in the ledger ({op.status.value}): perform interrupted")
        if to_ms(now) - tx.payme_time > TIMEOUT_MS:
            problems.append("waiting for more than 12 hours; Payme should have cancelled it")
    return [Mismatch(tx.payme_id, tx.label, int(tx.state), problem) for problem in problems]


async def _performed(tx: PaymeTransaction, op: Operation | None) -> Iterable[str]:
    if op is None:
        return ["performed at Payme, but the ledger has no operation"]
    if op.status is OperationStatus.RECORDED:
        return ["performed at Payme, not yet applied by the worker"]
    if op.status is OperationStatus.EXTRA:
        return ["performed at Payme, but the invoice was already paid by another operation: refund by hand"]
    if op.status is not OperationStatus.APPLIED:
        return [f"performed at Payme, but the ledger operation is {op.status.value}"]
    invoice = await find_invoice(tx.label)
    if invoice is None or invoice.paid_by != op.key:
        return [f"applied, but the invoice is paid by {invoice.paid_by if invoice else 'nothing (no invoice)'}"]
    return []


def run(settings: Settings, start_text: str, end_text: str) -> tuple[int, list[str]]:
    """The command: exit status (0 all agree, 1 mismatches) and the lines to print."""
    start, end = parse_period(start_text, end_text)
    return run_report(settings, lambda: reconcile(start, end, datetime.now(UTC)))
