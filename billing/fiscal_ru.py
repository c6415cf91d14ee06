"""What a Russian (54-FZ) receipt needs, whichever provider carries it: the item, the shop's tax system, and the
buyer's contact. YooKassa's `receipt` and CloudPayments' CustomerReceipt are written from this in their own
packages (billing/providers/yookassa/receipts.py, billing/providers/cloudpayments/receipts.py).

A receipt has one item, the invoice's goods (billing.orders.item_title: a plan's title, an order's or a
donation's description) at the whole amount of the operation, quantity 1, so its items add up to the amount
exactly; a partial refund's receipt is that item at the refunded amount. The contact is the one fixed on the
invoice before paying (the payment page asks for it); a renewal charge, made without the payer, takes the one
the user last gave (BotUser.receipt_contact), else the one of the user's latest paid invoice that had one.
Without a contact no receipt can be valid, so the provider is not called: ReceiptContactMissing.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.fiscal import FiscalItem, FiscalShop, invoice_item
from billing.invoices import find_invoice
from billing.plans import Catalogue
from billing.providers.base import ProviderRejected
from db import Invoice, InvoiceStatus
from db.users import BotUser, ReceiptContact

NO_CONTACT_REASON = "no e-mail or phone for the fiscal receipt (54-FZ)"  # a renewal's decline, shown to people
PAID_STATES = [InvoiceStatus.PAID.value, InvoiceStatus.REFUNDED.value]


class ReceiptContactMissing(ProviderRejected):
    """Receipts are on and there is no e-mail or phone to send this operation's receipt to. Nothing was asked
    of the provider: a receipt without a customer is refused by it anyway."""


class RussianReceiptDataMissing(ProviderRejected):
    """The shop or a plan lacks a field a Russian receipt needs (RECEIPT_VAT_CODE, RECEIPT_TAX_SYSTEM_CODE)."""


@dataclass(frozen=True, slots=True)
class RussianItem:
    title: str
    vat_code: int  # YooKassa's vat_code, 1-12
    payment_subject: str  # YooKassa's spelling: "service"
    payment_mode: str  # YooKassa's spelling: "full_payment"


@dataclass(frozen=True, slots=True)
class RussianReceipt:
    """One operation's receipt, provider-neutral: the buyer, the one item, its amount in minor units."""

    contact: ReceiptContact
    item: RussianItem
    amount: int
    tax_system_code: int  # YooKassa's tax_system_code, 1-6


def russian_item(item: FiscalItem) -> RussianItem:
    if item.vat_code is None:
        raise RussianReceiptDataMissing(f"the receipt of {item.title!r} lacks its VAT code (RECEIPT_VAT_CODE)")
    return RussianItem(item.title, item.vat_code, item.payment_subject, item.payment_mode)


def usable(contact: ReceiptContact | None) -> ReceiptContact | None:
    """The contact when it names an e-mail or a phone, else None."""
    return contact if contact is not None and (contact.email or contact.phone) else None


async def renewal_contact(user_id: int) -> ReceiptContact | None:
    """Where a charge without the payer sends its receipt: the user's last given contact, else the contact of
    their latest paid invoice that had one."""
    user = await BotUser.find_one({"user_id": user_id})
    contact = usable(user.receipt_contact if user is not None else None)
    if contact is not None:
        return contact
    paid = await Invoice.find({"user_id": user_id, "status": {"$in": PAID_STATES},
                               "receipt_contact": {"$ne": None}}).sort("-paid_at").limit(1).to_list()
    return usable(paid[0].receipt_contact) if paid else None


class RussianReceipts:
    """The receipts of one shop: its tax system and defaults (settings), and the plans the items are read from."""

    def __init__(self, plans: Catalogue, shop: FiscalShop) -> None:
        self._plans = plans
        self._shop = shop

    def item(self, invoice: Invoice) -> RussianItem:
        return russian_item(invoice_item(invoice, self._plans, self._shop))

    def _tax_system(self) -> int:
        if self._shop.tax_system_code is None:
            raise RussianReceiptDataMissing("the shop's tax system (RECEIPT_TAX_SYSTEM_CODE) is not set")
        return self._shop.tax_system_code

    def for_invoice(self, invoice: Invoice, amount: int) -> RussianReceipt:
        """The receipt of a payment (or a refund) of `amount` for this invoice, to its own contact."""
        contact = usable(invoice.receipt_contact)
        if contact is None:
            raise ReceiptContactMissing(f"invoice {invoice.label} has no e-mail or phone for its receipt")
        return RussianReceipt(contact, self.item(invoice), amount, self._tax_system())

    async def for_renewal(self, invoice: Invoice, amount: int) -> RussianReceipt:
        """The receipt of a renewal charge: the invoice's contact if it has one, else the user's (renewal_contact),
        fixed on the invoice the first time, so every try of the charge sends the same body under its key."""
        contact = usable(invoice.receipt_contact)
        if contact is None:
            contact = await renewal_contact(invoice.user_id)
            if contact is None:
                raise ReceiptContactMissing(f"user {invoice.user_id} has given no e-mail or phone for receipts, so "
                                            f"renewal {invoice.label} cannot carry one")
            await fix_contact(invoice.label, contact)
            contact = usable((await find_invoice(invoice.label) or invoice).receipt_contact) or contact
        return RussianReceipt(contact, self.item(invoice), amount, self._tax_system())

    async def for_label(self, label: str, amount: int, *, renewal: bool = False) -> RussianReceipt:
        invoice = await find_invoice(label)
        if invoice is None:
            raise ProviderRejected(f"no invoice {label} to write a receipt for")
        return await self.for_renewal(invoice, amount) if renewal else self.for_invoice(invoice, amount)


async def fix_contact(label: str, contact: ReceiptContact) -> None:
    """Put the contact on an invoice that has none; a contact already there (a concurrent run's) stays."""
    await Invoice.get_motor_collection().update_one({"label": label, "receipt_contact": None},
                                                    {"$set": {"receipt_contact": contact.model_dump()}})
