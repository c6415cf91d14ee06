"""Subscription plans read from the plans TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billing.errors import PlansFileError, UnknownPlan
from billing.money import MINOR_DIGITS, Money
from billing.plan_receipt import NO_OVERRIDES, PlanReceipt, parse_receipt

MONTHLY_PERIOD_DAYS = 30  # the one period Telegram renews (Stars subscriptions: 2592000 seconds)
MAX_TRIAL_DAYS = 366


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    title: str
    period_days: int
    prices: dict[str, int]
    renews_monthly: bool = False  # sold in Telegram Stars as a 30-day subscription Telegram renews itself
    trial_days: int | None = None  # a free first period, once per Telegram user ever (billing/trials.py)
    receipt: PlanReceipt = NO_OVERRIDES  # plans.toml `receipt = {...}`: its fiscal data, over the shop's defaults
    chats: tuple[int, ...] = ()  # plans.toml `chats = [-100...]`: the private channels and groups it grants
    join_requests: bool = False  # those chats admit by join request (the bot approves subscribers), not by link

    def price(self, currency: str) -> Money | None:
        minor = self.prices.get(currency)
        return None if minor is None else Money(minor, currency)


class Catalogue:
    def __init__(self, plans: dict[str, Plan]) -> None:
        self._plans = plans

    def get(self, name: str) -> Plan:
        try:
            return self._plans[name]
        except KeyError:
            raise UnknownPlan(name) from None

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._plans.values())

    def title(self, name: str) -> str:
        """The plan's title, or its name when the plan was removed after invoices were made for it."""
        plan = self._plans.get(name)
        return plan.title if plan else name

    def receipt(self, name: str | None) -> PlanReceipt:
        """The plan's fiscal overrides; none for an order, a donation or a plan removed since its invoice."""
        plan = self._plans.get(name) if name is not None else None
        return plan.receipt if plan else NO_OVERRIDES

    def names(self) -> list[str]:
        return list(self._plans)

    def chats(self, name: str | None) -> tuple[int, ...]:
        """The chats the plan grants; none for a plan removed since its invoice (billing/chat_access.py)."""
        plan = self._plans.get(name) if name is not None else None
        return plan.chats if plan else ()

    def managed_chats(self) -> dict[int, list[Plan]]:
        """Every chat some plan grants, with the plans that grant it."""
        granted: dict[int, list[Plan]] = {}
        for plan in self._plans.values():
            for chat_id in plan.chats:
                granted.setdefault(chat_id, []).append(plan)
        return granted


def load_plans(path: Path) -> Catalogue:
    """Read and validate PLANS_FILE; PlansFileError names the file and the bad entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PlansFileError(f"PLANS_FILE: cannot read {str(path)!r}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise PlansFileError(f"PLANS_FILE: {str(path)!r} is not UTF-8 text") from err
    except tomllib.TOMLDecodeError as err:
        raise PlansFileError(f"PLANS_FILE: {str(path)!r} is not valid TOML: {err}") from err
    tables = data.get("plans")
    if not isinstance(tables, dict) or not tables:
        raise PlansFileError(f"PLANS_FILE: {str(path)!r} defines no [plans.<name>] table")
    return Catalogue({name: _parse_plan(path, name, table) for name, table in tables.items()})


def _parse_plan(path: Path, name: str, table: Any) -> Plan:
    where = f"PLANS_FILE: {str(path)!r}, plan {name!r}"
    if not isinstance(table, dict):
        raise PlansFileError(f"{where}: not a table")
    period = table.get("period_days")
    if not isinstance(period, int) or isinstance(period, bool) or period <= 0:
        raise PlansFileError(f"{where}: period_days must be a positive integer")
    prices = table.get("prices")
    if not isinstance(prices, dict) or not prices:
        raise PlansFileError(f"{where}: prices must map currency codes to integer minor units")
    for currency, minor in prices.items():
        if currency not in MINOR_DIGITS:
            raise PlansFileError(f"{where}: unsupported currency {currency!r}")
        if not isinstance(minor, int) or isinstance(minor, bool) or minor <= 0:
            raise PlansFileError(f"{where}: price in {currency} must be a positive integer of minor units")
    title = table.get("title", name)
    if not isinstance(title, str):
        raise PlansFileError(f"{where}: title must be a string")
    renews = table.get("renews_monthly", False)
    if not isinstance(renews, bool) or (renews and period != MONTHLY_PERIOD_DAYS):
        raise PlansFileError(f"{where}: renews_monthly must be true or false, and true needs period_days = 30")
    trial_days = table.get("trial_days")
    if trial_days is not None and (not isinstance(trial_days, int) or isinstance(trial_days, bool)
                                   or not 0 < trial_days <= MAX_TRIAL_DAYS):
        raise PlansFileError(f"{where}: trial_days must be an integer from 1 to {MAX_TRIAL_DAYS}")
    try:
        receipt = parse_receipt(where, table.get("receipt"))
    except ValueError as err:
        raise PlansFileError(str(err)) from None
    chats, join_requests = _parse_chats(where, table)
    return Plan(name=name, title=title, period_days=period, prices=dict(prices), renews_monthly=renews,
                trial_days=trial_days, receipt=receipt, chats=chats, join_requests=join_requests)


def _parse_chats(where: str, table: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
    """`chats`: the ids of supergroups and channels (negative integers, as the Bot API gives them), each once;
    `join_requests`: true or false, and true only with chats to admit into."""
    chats = table.get("chats", [])
    if not isinstance(chats, list) or any(not isinstance(chat, int) or isinstance(chat, bool) or chat >= 0
                                          for chat in chats):
        raise PlansFileError(f"{where}: chats must be a list of chat ids, negative integers such as -1001234567890")
    if len(set(chats)) != len(chats):
        raise PlansFileError(f"{where}: chats lists a chat twice")
    join_requests = table.get("join_requests", False)
    if not isinstance(join_requests, bool):
        raise PlansFileError(f"{where}: join_requests must be true or false")
    if join_requests and not chats:
        raise PlansFileError(f"{where}: join_requests = true needs chats to admit into")
    return tuple(chats), join_requests
