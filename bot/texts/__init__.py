"""Every sentence the bot, the notices and the payment page show: one gettext catalogue per language.

The catalogues are `locales/<lang>/LC_MESSAGES/messages.po`, keyed by symbolic message ids
(`subscribe.choose`), so code never holds a sentence. They are compiled in memory with Babel when
first loaded, so a fresh checkout or `pip install` needs no build step and no compiled `.mo` can
drift from its `.po`. Nothing here imports aiogram: the web and the worker load the same texts without it (the
bot's middleware hands the same translations to aiogram's I18n, bot/middlewares.py).
"""

from __future__ import annotations

import gettext
import io
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.messages.catalog import Catalog as BabelCatalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, get_currency_symbol

from billing.languages import DEFAULT_LANGUAGE, LANGUAGES, language_or_default, supported_language
from billing.money import MINOR_DIGITS, Money

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "language_or_default", "supported_language"]

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"
PRICE_SEPARATOR = " · "
MASK = "••••"


def negotiate(accept_language: str | None) -> str | None:
    """The best supported language of an Accept-Language header, by q-value then order; None if none fits."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        language = supported_language(tag)
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else None


def mask_method(method: str) -> str:
    """Only the last four characters of a saved method (a card's last digits); never the token itself."""
    tail = method.strip()[-4:]
    return f"{MASK} {tail}" if len(method.strip()) > 8 else MASK


def page_language(signed: str | None, stored: str | None, accept_language: str | None) -> str:
    """The payment page's language: the signed link's, else the user's stored one, else the browser's."""
    return supported_language(signed) or supported_language(stored) or negotiate(accept_language) or DEFAULT_LANGUAGE


class Catalogue:
    """The `.po` catalogues, compiled in memory; a key missing from a language's catalogue is returned as is."""

    def __init__(self, path: Path = LOCALES) -> None:
        self.path = path
        self.domain = DOMAIN
        self.default_locale = DEFAULT_LANGUAGE
        self.locales = self.find_locales()

    def gettext(self, key: str, *, locale: str) -> str:
        translations = self.locales.get(locale)
        return translations.gettext(key) if translations is not None else key

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for language in LANGUAGES:
            compiled = io.BytesIO()
            write_mo(compiled, self.read(language))
            compiled.seek(0)
            translations[language] = gettext.GNUTranslations(compiled)
        return translations

    def read(self, language: str) -> BabelCatalog:
        """One language's `.po` as Babel reads it (the tests compare the catalogues' keys)."""
        with (self.path / language / "LC_MESSAGES" / f"{self.domain}.po").open("rb") as po_file:
            return read_po(po_file, locale=language, domain=self.domain)

    def texts(self, language: str | None) -> Texts:
        return Texts(self, language_or_default(language))


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The catalogue, read once per process on first use (static files, no connection)."""
    return Catalogue()


class Texts:
    """The catalogue bound to one language: `t("status.active", plan=..., until=...)`."""

    def __init__(self, messages: Catalogue, language: str) -> None:
        self._messages = messages
        self.language = language

    def __call__(self, key: str, **values: Any) -> str:
        template = self._messages.gettext(key, locale=self.language)
        return template.format(**values) if values else template

    def has(self, key: str) -> bool:
        return self._messages.gettext(key, locale=self.language) != key

    def plan_title(self, title: str) -> str:
        """A plan's title as written in the plans file, translated where the catalogue knows it."""
        return self._messages.gettext(title, locale=self.language)

    def money(self, money: Money) -> str:
        digits = MINOR_DIGITS.get(money.currency, 2)
        amount = Decimal(money.minor).scaleb(-digits)
        pattern = "#,##0" if money.minor % 10**digits == 0 else "#,##0." + "0" * digits
        number = format_decimal(amount, format=pattern, locale=self.language)
        return f"{number}\u00a0{get_currency_symbol(money.currency, locale=self.language)}"

    def prices(self, amounts: dict[str, int]) -> str:
        return PRICE_SEPARATOR.join(self.money(Money(minor, currency)) for currency, minor in amounts.items())

    def moment(self, moment: datetime) -> str:
        return format_datetime(moment.astimezone(UTC), "d MMMM y, HH:mm 'UTC'", tzinfo=UTC, locale=self.language)
