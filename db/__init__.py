"""Database access: Beanie documents and init_db()."""

from db.init import init_db, ping
from db.models import (
    ExtraRefund,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Operation,
    OperationStatus,
    Subscription,
    SubscriptionStatus,
)

__all__ = [
    "ExtraRefund", "Invoice", "InvoiceKind", "InvoiceStatus", "Operation", "OperationStatus", "Subscription",
    "SubscriptionStatus", "init_db", "ping",
]
