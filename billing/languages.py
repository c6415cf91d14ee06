"""The languages we have texts for (the bot's catalogues, the payment page, the dashboard)."""

from __future__ import annotations

LANGUAGES = ("ru", "en", "uz")
DEFAULT_LANGUAGE = "en"


def supported_language(code: str | None) -> str | None:
    """'ru', 'ru-RU', 'RU_ru' → 'ru'; None for anything we have no catalogue for."""
    if not code:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


def language_or_default(code: str | None) -> str:
    return supported_language(code) or DEFAULT_LANGUAGE
