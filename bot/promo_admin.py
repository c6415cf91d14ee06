"""/newpromo for admins: `key=value` words into the same definition the admin API takes (billing/promo.py)."""

from __future__ import annotations

from typing import Any

from aiogram.filters import CommandObject
from aiogram.types import Message

from billing.clock import Clock
from billing.plans import Catalogue as Plans
from billing.promo import PromoExists, PromoInvalid, create_code, parse_definition
from bot.texts import Texts

NUMBERS = {"percent_off", "max_uses", "gift_days"}


def parse_words(args: str) -> dict[str, Any]:
    """`code=X kind=percent percent_off=25 max_uses=10 plans=month,year amounts_off=RUB:10000 expires_at=…`."""
    body: dict[str, Any] = {}
    for word in args.split():
        key, sep, value = word.partition("=")
        if not sep:
            raise PromoInvalid(f"{word!r} is not key=value")
        if key in NUMBERS:
            body[key] = int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else value
        elif key == "plans":
            body[key] = [name for name in value.split(",") if name]
        elif key == "amounts_off":
            pairs = [pair.partition(":") for pair in value.split(",")]
            body[key] = {currency: int(minor) if minor.isascii() and minor.isdigit() and len(minor) <= 15
                         else minor for currency, _, minor in pairs}
        else:
            body[key] = value
    return body


async def create_promo(message: Message, command: CommandObject, t: Texts, plans: Plans, clock: Clock) -> None:
    try:
        promo = await create_code(parse_definition(parse_words(command.args or ""), plans.names()), now=clock())
    except PromoInvalid as err:
        await message.answer(t("admin.promo.invalid", reason=str(err)))
        return
    except PromoExists as exists:
        await message.answer(t("admin.promo.exists", code=str(exists)))
        return
    await message.answer(t("admin.promo.created", code=promo.code, uses=promo.max_uses))
