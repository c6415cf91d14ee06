"""What an RQ job needs from its process, installed once by the process that runs the worker.

RQ jobs take only ids and strings, so the database connection, the event loop it lives on and the
outbound ports are set up once per worker process (`ymds worker`, the demo, the tests) and
reached through `current()`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from billing.chat_ports import ChatAdmin
from billing.clock import Clock, utc_now
from billing.plans import Catalogue
from billing.ports import NoticeQueue, Notifier
from billing.steps import Checkpoint, no_checkpoint

if TYPE_CHECKING:
    from billing.payouts import PayoutServices
    from billing.renewals import RenewalServices

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@dataclass(slots=True)
class JobRuntime:
    run: Runner  # runs a coroutine on the loop that owns the database client
    notices: NoticeQueue
    notifier: Notifier
    plans: Catalogue
    clock: Clock = utc_now
    checkpoint: Checkpoint = no_checkpoint
    payouts: PayoutServices | None = None  # konsol.pro's client and the card cipher, when payouts are configured
    renewals: RenewalServices | None = None  # the chargers of saved methods, the ledger, the renewal policy
    providers: Mapping[str, Any] = field(default_factory=dict)  # the enabled provider objects (extra refunds)
    chats: ChatAdmin | None = None  # the Bot API in the plans' private chats (bot/chat_admin.py), with BOT_TOKEN
    grace_days: int = 0  # GRACE_DAYS: how long after the end a member stays in the chats


_installed: list[JobRuntime] = []


def install(runtime: JobRuntime) -> None:
    _installed[:] = [runtime]


def uninstall() -> None:
    _installed.clear()


def current() -> JobRuntime:
    if not _installed:
        raise RuntimeError("no job runtime installed: run jobs through `ymds worker`")
    return _installed[0]
