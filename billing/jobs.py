"""RQ jobs: small module-level functions taking ids and strings; the worker imports them by path."""

from __future__ import annotations

from billing.fulfilment import successful_payment_callback
from billing.notices import send_payment_notice, send_reversal_notice
from billing.ports import JobFailureNotice
from billing.reversal import reverse_payment
from billing.runtime import current


def fulfil_payment(provider: str, operation_id: str, label: str) -> str:
    runtime = current()
    outcome = runtime.run(
        successful_payment_callback(
            provider, operation_id, label,
            notices=runtime.notices, clock=runtime.clock, checkpoint=runtime.checkpoint,
        )
    )
    return str(outcome)


def notify_payment(provider: str, operation_id: str) -> bool:
    runtime = current()
    return bool(
        runtime.run(
            send_payment_notice(
                provider, operation_id, notifier=runtime.notifier, plans=runtime.plans, clock=runtime.clock
            )
        )
    )


def reverse(provider: str, operation_id: str, reason: str) -> bool:
    runtime = current()
    return bool(
        runtime.run(
            reverse_payment(
                provider, operation_id, reason=reason,
                notices=runtime.notices, clock=runtime.clock, checkpoint=runtime.checkpoint,
            )
        )
    )


def notify_reversal(provider: str, operation_id: str) -> bool:
    runtime = current()
    return bool(runtime.run(send_reversal_notice(provider, operation_id, notifier=runtime.notifier,
                                                 clock=runtime.clock)))


def alert_job_failure(job_id: str, description: str, error: str) -> None:
    runtime = current()
    runtime.run(runtime.notifier.job_failed(JobFailureNotice(job_id=job_id, description=description, error=error)))
