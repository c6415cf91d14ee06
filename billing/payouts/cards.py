"""What a payee types, checked and made safe: amounts, card numbers (Luhn), phones (E.164), and the card
cipher. A full card number exists in three places only: the user's message (deleted by the bot), the
claim's `card_encrypted` (Fernet, erased as soon as konsol.pro has the payout) and, for one request, the
memory of the job that sends it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from decimal import Decimal, InvalidOperation

from cryptography.fernet import Fernet, InvalidToken

from billing.luhn import luhn_valid

CARD_KEY_MESSAGE = b"open-ymds/payout-card/v1"
_SEPARATORS = re.compile(r"[\s\u00a0\u202f-]")
_SPACES = re.compile(r"[\s\u00a0\u202f]")
_AMOUNT = re.compile(r"[0-9]{1,9}([.,][0-9]{1,2})?")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


class CardUnreadable(Exception):
    """The stored card number cannot be decrypted (the key changed): the claim cannot be paid."""


def parse_amount_input(text: str) -> int | None:
    """"1500", "1 500", "1500,5", "1500.50" → kopecks; None when it is not a plain positive amount."""
    cleaned = _SPACES.sub("", text.strip().removesuffix("₽").removesuffix("RUB").strip())
    if not _AMOUNT.fullmatch(cleaned):
        return None
    try:
        kopecks = int(Decimal(cleaned.replace(",", ".")) * 100)
    except InvalidOperation:
        return None
    return kopecks if kopecks > 0 else None


def normalize_card(text: str) -> str | None:
    """Spaces and dashes stripped; 16 to 19 digits passing the Luhn check, else None."""
    digits = _SEPARATORS.sub("", text.strip())
    if not (digits.isascii() and digits.isdigit()) or not 16 <= len(digits) <= 19 or not luhn_valid(digits):
        return None
    return digits


def looks_like_card(text: str) -> bool:
    """A message that may hold a card number (12+ digits), valid or not: the bot deletes it from the chat."""
    return sum(char.isdigit() for char in text) >= 12


def card_tail(mask: str) -> str:
    """"411111******1111" → "•••• 1111", all that messages and pages show."""
    return f"•••• {mask[-4:]}"


def normalize_phone(text: str) -> str | None:
    """A phone in E.164 (+ and 8 to 15 digits). Russian habits are read too: 8XXXXXXXXXX, 7XXXXXXXXXX and
    ten digits starting with 9 become +7XXXXXXXXXX."""
    compact = re.sub(r"[\s\u00a0()-]", "", text.strip())
    if compact.isascii() and compact.isdigit():
        if len(compact) == 11 and compact[0] in "78":
            compact = "+7" + compact[1:]
        elif len(compact) == 10 and compact[0] == "9":
            compact = "+7" + compact
        else:
            compact = "+" + compact
    return compact if _E164.fullmatch(compact) else None


def is_russian_mobile(phone: str) -> bool:
    """SBP pays to Russian numbers: +7 and ten digits."""
    return len(phone) == 12 and phone.startswith("+7")


def card_key(link_key: bytes) -> bytes:
    """The Fernet key of stored card numbers: urlsafe base64 of HMAC-SHA256(LINK_SECRET, a fixed label).
    Derived, never stored; changing LINK_SECRET makes stored numbers unreadable (their claims fail)."""
    return base64.urlsafe_b64encode(hmac.new(link_key, CARD_KEY_MESSAGE, hashlib.sha256).digest())


class CardCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_link_key(cls, link_key: bytes) -> CardCipher:
        return cls(card_key(link_key))

    def encrypt(self, card_number: str) -> str:
        return self._fernet.encrypt(card_number.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CardUnreadable("the stored card number cannot be decrypted with the current key") from None
