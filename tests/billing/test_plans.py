"""billing/plans.load_plans on TOML files, the Catalogue, and billing/money.Money."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from billing.errors import PlansFileError, UnknownPlan
from billing.fiscal import FiscalItem, FiscalShop, fiscal_item
from billing.money import Money
from billing.plan_receipt import PlanReceipt
from billing.plans import Catalogue, Plan, load_plans
from settings import Settings

REPO_PLANS = Path(__file__).resolve().parents[2] / "plans.toml"

GOOD = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.toml"
    path.write_text(text, encoding="utf-8")
    return path


def plans_error(path: Path) -> str:
    with pytest.raises(PlansFileError) as info:
        load_plans(path)
    message = str(info.value)
    assert message.startswith("PLANS_FILE"), message
    return message


def test_repository_plans_file_loads() -> None:
    catalogue = load_plans(REPO_PLANS)
    assert catalogue.names()
    for plan in catalogue:
        assert plan is catalogue.get(plan.name) and plan.title and plan.period_days > 0
        assert plan.prices and all(type(minor) is int and minor > 0 for minor in plan.prices.values())


def test_plan_gives_its_price_as_money(tmp_path: Path) -> None:
    month = load_plans(write(tmp_path, GOOD)).get("month")
    assert month.price("RUB") == Money(29900, "RUB")
    assert month.price("XTR") is None


def test_extra_keys_are_allowed_and_title_defaults_to_the_name(tmp_path: Path) -> None:
    catalogue = load_plans(write(tmp_path, "[plans.week]\nperiod_days = 7\nprices = { XTR = 50 }\ntrial = true\n"))
    assert catalogue.get("week").title == "week"
    assert catalogue.get("week").prices == {"XTR": 50}


def test_missing_file_is_a_plans_file_error(tmp_path: Path) -> None:
    assert "cannot read" in plans_error(tmp_path / "absent.toml")


def test_directory_instead_of_file_is_a_plans_file_error(tmp_path: Path) -> None:
    plans_error(tmp_path)


def test_invalid_toml_is_a_plans_file_error(tmp_path: Path) -> None:
    assert "not valid TOML" in plans_error(write(tmp_path, "[plans.month\nperiod_days = 30\n"))


def test_non_utf8_file_is_a_plans_file_error(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_bytes(GOOD.replace('"1 month"', '"\xff"').encode("latin-1"))
    plans_error(path)


@pytest.mark.parametrize("text", ["", "title = 'x'\n", "plans = 3\n", "[plans]\n", "[other.month]\nperiod_days = 1\n"],
                         ids=["empty", "no-plans", "plans-not-table", "plans-empty", "other-table"])
def test_file_without_plans_table_is_a_plans_file_error(tmp_path: Path, text: str) -> None:
    assert "no [plans.<name>] table" in plans_error(write(tmp_path, text))


@pytest.mark.parametrize("prices", [
    "{ RUB = '299.00' }", "{ RUB = 299.0 }", "{ RUB = -100 }", "{ RUB = 0 }", "{ RUB = true }", "{}", "[29900]",
], ids=["string", "float", "negative", "zero", "bool", "empty", "array"])
def test_bad_price_is_a_plans_file_error(tmp_path: Path, prices: str) -> None:
    message = plans_error(write(tmp_path, f"[plans.month]\nperiod_days = 30\nprices = {prices}\n"))
    assert "'month'" in message


@pytest.mark.parametrize("period", ["true", "30.0", "'30'", "0", "-1"])
def test_bad_period_is_a_plans_file_error(tmp_path: Path, period: str) -> None:
    message = plans_error(write(tmp_path, f"[plans.month]\nperiod_days = {period}\nprices = {{ RUB = 100 }}\n"))
    assert "period_days" in message


@pytest.mark.parametrize("days", ["true", "7.0", "'7'", "0", "-1", "367", "99999999999999999999"])
def test_bad_trial_days_is_a_plans_file_error(tmp_path: Path, days: str) -> None:
    message = plans_error(write(tmp_path, f"[plans.month]\nperiod_days = 30\nprices = {{ RUB = 100 }}\n"
                                          f"trial_days = {days}\n"))
    assert "trial_days" in message or "not valid TOML" in message


def test_trial_days_is_read_and_optional(tmp_path: Path) -> None:
    plans = load_plans(write(tmp_path, "[plans.a]\nperiod_days = 30\nprices = { RUB = 100 }\ntrial_days = 7\n"
                                       "[plans.b]\nperiod_days = 30\nprices = { RUB = 100 }\n"))
    assert plans.get("a").trial_days == 7 and plans.get("b").trial_days is None


def test_missing_period_is_a_plans_file_error(tmp_path: Path) -> None:
    assert "period_days" in plans_error(write(tmp_path, "[plans.month]\nprices = { RUB = 100 }\n"))


@pytest.mark.parametrize("currency", ["USD", "rub", "643"])
def test_unknown_currency_is_a_plans_file_error(tmp_path: Path, currency: str) -> None:
    text = f'[plans.month]\nperiod_days = 30\nprices = {{ RUB = 100, "{currency}" = 100 }}\n'
    assert repr(currency) in plans_error(write(tmp_path, text))


def test_non_string_title_is_a_plans_file_error(tmp_path: Path) -> None:
    assert "title" in plans_error(write(tmp_path, "[plans.m]\ntitle = 1\nperiod_days = 1\nprices = { RUB = 1 }\n"))


def test_plan_that_is_not_a_table_is_a_plans_file_error(tmp_path: Path) -> None:
    plans_error(write(tmp_path, "[plans]\nmonth = 30\n"))


def test_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[plans.month]\nperiod_days = 30\nprices = { RUB = 1.5 }\n")
    assert str(path) in plans_error(path)


def test_unknown_plan_is_refused() -> None:
    with pytest.raises(UnknownPlan):
        load_plans(REPO_PLANS).get("lifetime")


def test_title_falls_back_to_the_name_of_a_removed_plan() -> None:
    catalogue = Catalogue({"month": Plan("month", "1 month", 30, {"RUB": 29900})})
    assert catalogue.title("month") == "1 month"
    assert catalogue.title("retired") == "retired"


# --- billing/money.Money ---

@pytest.mark.parametrize(("money", "text"), [
    (Money(29900, "RUB"), "299.00 RUB"), (Money(5, "RUB"), "0.05 RUB"), (Money(0, "RUB"), "0.00 RUB"),
    (Money(3500000, "UZS"), "35000.00 UZS"), (Money(50, "XTR"), "50 XTR"), (Money(12345, "840"), "123.45 840"),
])
def test_money_formats_minor_units_with_the_currency(money: Money, text: str) -> None:
    assert str(money) == text


@pytest.mark.parametrize("minor", [299.0, 1.5, True, "29900", None])
def test_money_refuses_anything_but_int_minor_units(minor: object) -> None:
    with pytest.raises(TypeError):
        Money(minor, "RUB")  # type: ignore[arg-type]


def test_money_needs_a_currency() -> None:
    with pytest.raises(ValueError):
        Money(100, "")


def test_money_compares_by_value() -> None:
    assert Money(29900, "RUB") == Money(29900, "RUB")
    assert Money(29900, "RUB") != Money(29900, "UZS")
    assert Money(100, "RUB") < Money(101, "RUB")


def test_negative_money_keeps_its_sign() -> None:
    assert str(Money(-5, "RUB")) == "-0.05 RUB"
    assert str(Money(-12345, "UZS")) == "-123.45 UZS"


RECEIPT_PLAN = """
[plans.month]
title = "1 month"
period_days = 30
prices = {{ RUB = 29900 }}
receipt = {{ {receipt} }}
"""


def test_a_plans_receipt_overrides_the_shop_defaults_field_by_field(tmp_path: Path) -> None:
    receipt = ('title = "Club access, 30 days", vat_code = 5, payment_subject = "intellectual_activity", '
               'payment_mode = "full_prepayment", ikpu = "10305008002000000", package_code = "1514296", '
               'vat_percent = 0')
    catalogue = load_plans(write(tmp_path, RECEIPT_PLAN.format(receipt=receipt)))
    shop = FiscalShop(tax_system_code=1, vat_code=1, ikpu="99999999999999999", package_code="1", vat_percent=12)
    item = fiscal_item("1 month", shop, catalogue.get("month").receipt)
    assert item == FiscalItem(title="Club access, 30 days", vat_code=5, payment_subject="intellectual_activity",
                              payment_mode="full_prepayment", ikpu="10305008002000000", package_code="1514296",
                              vat_percent=0)
    partial = load_plans(write(tmp_path, RECEIPT_PLAN.format(receipt="vat_code = 2")))
    item = fiscal_item("1 month", shop, partial.receipt("month"))
    assert item == FiscalItem(title="1 month", vat_code=2, payment_subject="service", payment_mode="full_payment",
                              ikpu="99999999999999999", package_code="1", vat_percent=12)


def test_orders_removed_plans_and_plans_without_receipt_take_the_shop_defaults(tmp_path: Path) -> None:
    catalogue = load_plans(write(tmp_path, GOOD))
    assert catalogue.get("month").receipt == PlanReceipt()
    assert catalogue.receipt(None) == PlanReceipt() and catalogue.receipt("gone") == PlanReceipt()
    shop = FiscalShop(vat_code=4, ikpu="10305008002000000", package_code="1514296", vat_percent=12)
    assert fiscal_item("Donation", shop, catalogue.receipt(None)) == FiscalItem(
        title="Donation", vat_code=4, ikpu="10305008002000000", package_code="1514296", vat_percent=12)


@pytest.mark.parametrize(("receipt", "named"), [
    ('vat_code = 13', "receipt.vat_code must be an integer from 1 to 12"),
    ('vat_code = "1"', "receipt.vat_code must be an integer"),
    ('vat_code = true', "receipt.vat_code must be an integer"),
    ('vat_percent = 101', "receipt.vat_percent must be an integer from 0 to 100"),
    ('payment_mode = "full"', "receipt.payment_mode must be one of"),
    ('payment_subject = "Service!"', "receipt.payment_subject must be"),
    ('ikpu = 10305008002000000', "receipt.ikpu must be the 17 digits"),
    ('ikpu = "1030500800200000"', "receipt.ikpu must be the 17 digits"),
    ('package_code = ""', "receipt.package_code must be text of 1 to 20"),
    ('title = ""', "receipt.title must be text of 1 to 128"),
    ('title = "' + "x" * 129 + '"', "receipt.title must be text"),
    ('vat_cod = 1', "receipt has no field 'vat_cod'"),
])
def test_a_bad_receipt_field_is_named_with_its_plan(tmp_path: Path, receipt: str, named: str) -> None:
    message = plans_error(write(tmp_path, RECEIPT_PLAN.format(receipt=receipt)))
    assert "plan 'month'" in message and named in message, message


def test_a_receipt_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    text = GOOD + 'receipt = "vat 20%"\n'
    assert "plan 'month': receipt must be a table" in plans_error(write(tmp_path, text))


CHATS = GOOD + "chats = [-1001234567890, -1009876543210]\n"


def test_plan_lists_the_chats_it_grants(tmp_path: Path) -> None:
    catalogue = load_plans(write(tmp_path, CHATS + "join_requests = true\n"))
    month = catalogue.get("month")
    assert month.chats == (-1001234567890, -1009876543210) and month.join_requests
    assert catalogue.chats("month") == month.chats and catalogue.chats("gone") == () and catalogue.chats(None) == ()
    assert catalogue.managed_chats() == {-1001234567890: [month], -1009876543210: [month]}


def test_a_plan_without_chats_grants_none_and_admits_by_link(tmp_path: Path) -> None:
    month = load_plans(write(tmp_path, GOOD)).get("month")
    assert month.chats == () and not month.join_requests


@pytest.mark.parametrize("chats", ['"-100123"', '["-100123"]', "[100123]", "[0]", "[true]", "[-1.5]",
                                   "[-100123, -100123]"])
def test_bad_chats_is_an_error_naming_the_plan(tmp_path: Path, chats: str) -> None:
    message = plans_error(write(tmp_path, GOOD + f"chats = {chats}\n"))
    assert "plan 'month'" in message and "chats" in message


@pytest.mark.parametrize("extra", ['chats = [-100123]\njoin_requests = "yes"\n', "join_requests = true\n"])
def test_bad_join_requests_is_an_error_naming_the_plan(tmp_path: Path, extra: str) -> None:
    message = plans_error(write(tmp_path, GOOD + extra))
    assert "plan 'month'" in message and "join_requests" in message


def test_grace_days_defaults_to_none_and_refuses_a_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).grace_days == 0
    monkeypatch.setenv("GRACE_DAYS", "3")
    assert Settings(_env_file=None).grace_days == 3
    monkeypatch.setenv("GRACE_DAYS", "-1")
    with pytest.raises(ValidationError, match="grace_days"):
        Settings(_env_file=None)
