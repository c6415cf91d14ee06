"""billing/money.py: amounts in each currency's own minor unit, and the code of money a provider does not settle."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from billing.errors import PlansFileError
from billing.money import MINOR_DIGITS, Money, minor_units, unsettled
from billing.plans import load_plans


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("299.00", "RUB", 29900), ("0.01", "RUB", 1), ("35000.00", "UZS", 3500000), ("250", "XTR", 250),
    ("250.00", "XTR", 250), ("2.50", "XTR", None), ("0.5", "XTR", None), ("1.001", "RUB", None),
    ("12.34", "USD", 1234),  # a code the table does not list: ISO's usual two decimals
])
def test_an_amount_is_read_in_its_currencys_own_minor_unit(amount, currency, minor):
    assert minor_units(Decimal(amount), currency) == minor


def test_money_no_invoice_can_be_priced_in_names_the_providers_code(tmp_path: Path):
    for code in ("UZS", "XTR", "RUB", "860", ""):
        marked = unsettled(code)
        assert marked not in MINOR_DIGITS and (code or "none") in marked
        path = tmp_path / "plans.toml"
        path.write_text(f'[plans.m]\ntitle = "m"\nperiod_days = 30\nprices = {{ "{marked}" = 100 }}\n')
        with pytest.raises(PlansFileError, match="unsupported currency"):
            load_plans(path)
    assert str(Money(250, unsettled("XTR"))) == "2.50 unsettled:XTR"
    assert str(Money(250, "XTR")) == "250 XTR"
