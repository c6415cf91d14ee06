"""The buyers' contacts the tests give for fiscal receipts. tests/test_payout_logs.py checks that none of them, in
any spelling a test uses, reaches any log line of the run."""

from __future__ import annotations

EMAIL = "ivan.petrov@example.com"
EMAIL_MASKED = "i***@example.com"
RU_PHONE = "+7 900 123-45-67"
RU_PHONE_DIGITS = "79001234567"
RU_PHONE_MASKED = "+7 *** *** 45 67"
UZ_PHONE = "+998 90 765-43-21"
UZ_PHONE_DIGITS = "998907654321"
UZ_PHONE_MASKED = "+998 ** *** 43 21"
OTHER_EMAIL = "olga@mail.example.org"
LOGGED_NEVER = (EMAIL, "ivan.petrov", RU_PHONE, RU_PHONE_DIGITS, "9001234567", UZ_PHONE, UZ_PHONE_DIGITS, "907654321",
                OTHER_EMAIL)
