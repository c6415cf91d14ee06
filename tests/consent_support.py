"""The payer's choice on the payment page, as tests make it: through the page's own signed forms (the real seam),
or, where a test drives a provider's notification without our page, by fixing the consent on the invoice as
POST /pay/{label}/choose would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from db import Invoice
from db.models import RenewalConsent
from tests.helpers import Forms, path_of


async def page_forms(client: TestClient, invoice: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = await client.get(path_of(invoice["pay_url"]))
    assert response.status == 200, await response.text()
    forms = Forms()
    forms.feed(await response.text())
    return forms.forms


async def choose(client: TestClient, invoice: dict[str, Any], provider: str, *, renew: bool = True,
                 changes: dict[str, str] | None = None) -> tuple[int, str]:
    """Press "pay and renew" (or "pay once") with `provider` on the page, its fields `changes`d; the answer's
    status and Location."""
    form = (await page_forms(client, invoice))[f"{'renew' if renew else 'pay'}-{provider}"]
    response = await client.post(form["action"], data={**form["fields"], **(changes or {})}, allow_redirects=False)
    return response.status, response.headers.get("Location", "")


async def consent_on(label: str, provider: str, *, at: datetime | None = None) -> None:
    """The invoice carries consent for `provider`, as the choice route stores it."""
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    amount_currency = "UZS" if provider == "payme" else "RUB"
    consent = RenewalConsent(at=at or datetime.now(UTC), ip="127.0.0.1", text_version="test", provider=provider,
                             amount=invoice.amounts.get(amount_currency, 0), currency=amount_currency,
                             period_days=invoice.period_days)
    await Invoice.get_motor_collection().update_one({"_id": invoice.id},
                                                   {"$set": {"auto_renew_consent": consent.model_dump()}})
