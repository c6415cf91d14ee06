"""Local stand-ins for the providers' servers, speaking their real protocols and signatures.

They power `ymds demo`, `ymds simulate` and the tests. Each is written from the provider's own
documentation (../shared/providers/), never from our provider modules: an emulator that borrowed
billing/providers/ code would agree with the bug it should reveal. Each emulator module offers the same four
things, listed in EMULATORS: EVENTS and simulate() for `ymds simulate`, demo_values() and
demo_app() for `ymds demo` (mounted at /emulator/{name}).
"""

from __future__ import annotations

from types import ModuleType

from webhook_server.emulators import click, cloudpayments, konsol, payme, yookassa, yoomoney
from webhook_server.emulators.telegram import stars as telegram_stars

EMULATORS: dict[str, ModuleType] = {
    "yoomoney": yoomoney,
    "click": click,
    "payme": payme,
    "telegram_stars": telegram_stars,
    "cloudpayments": cloudpayments,
    "yookassa": yookassa,
    "konsol": konsol,
}
