"""The domain's Notifier over Telegram: the user in their language, the admin chat in ADMIN_LANGUAGE.

The worker calls it from a notice job, after the state change is committed, so nothing here can
undo or repeat a payment. Per recipient:
- sent, or refused for good (403: the user blocked the bot; 400: the chat is gone), is recorded, so
  a retried job never sends the same notice twice;
- 429 is waited out once (`retry_after`, up to MAX_INLINE_WAIT_SECONDS), then left to RQ;
- anything else (network, 5xx, a second 429) raises, and RQ retries the job with its backoff; after
  the last retry the job lands in RQ's failed registry, logged.
It also posts the alert of a fulfilment or refund job that failed for good (job_failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from billing.chat_ports import AccessGranted, AccessRemoved
from billing.clock import Clock, utc_now
from billing.ports import (
    EventUndeliveredNotice,
    ExtraNotice,
    FiscalRefusalNotice,
    HoldNotice,
    JobFailureNotice,
    LogNotifier,
    Notifier,
    PaymentNotice,
    PayoutNotice,
    ReceiptNotice,
    RefundCanceledNotice,
    RenewalEvent,
    RenewalNotice,
    ReversalNotice,
)
from billing.providers.base import HttpTransport
from bot.bot_api import BotApi, BotApiBadRequest, BotApiForbidden, BotApiRetryAfter, InlineKeyboard, bot_api_for
from bot.chat_admin import TelegramChats
from bot.notice_keyboards import cancel_renewal_keyboard, decision_keyboard, hold_keyboard, resolution_keyboard
from bot.payouts_texts import ADMIN_OUTCOMES, admin_alert, admin_outcome, claim_summary, user_notice
from bot.texts import Catalogue, Texts, catalogue
from db.users import already_sent, mark_blocked, record_sent, stored_language
from settings import Settings

log = logging.getLogger(__name__)
MAX_INLINE_WAIT_SECONDS = 30
SEND_TIMEOUT_SECONDS = 15  # a hung request fails (and is retried) well inside the job's timeout
Sleep = Callable[[float], Awaitable[None]]


class NoticeNotSent(RuntimeError):
    """Telegram did not take the message this time; the job is retried."""


class TelegramNotifier:
    def __init__(
        self, bot: BotApi, *, admin_chat_id: int | None, admin_language: str = "en", texts: Catalogue | None = None,
        clock: Clock = utc_now, sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._bot = bot
        self._admin_chat_id = admin_chat_id
        self._catalogue = texts or catalogue()
        self._admin_texts = self._catalogue.texts(admin_language)
        self._clock = clock
        self._sleep = sleep

    @property
    def api(self) -> BotApi:
        return self._bot

    async def payment_accepted(self, notice: PaymentNotice) -> None:
        if notice.period_end is None:
            await self._one_off_paid(notice)
            return
        t = await self._user_texts(notice.user_id)
        text = t("notice.paid.user", amount=_amount(t, notice), plan=t.plan_title(notice.plan_title),
                 until=t.moment(notice.period_end))
        if notice.receipt_url:
            text = f"{text}\n{t('notice.receipt.line', url=notice.receipt_url)}"
        await self._deliver(f"paid:{notice.label}:user", notice.user_id, text, user=True)
        a = self._admin_texts
        await self._to_admins(f"paid:{notice.label}:admin", a(
            "notice.paid.admin", label=notice.label, user_id=notice.user_id, plan=a.plan_title(notice.plan_title),
            amount=_amount(a, notice), provider=notice.provider, until=a.moment(notice.period_end)))

    async def _one_off_paid(self, notice: PaymentNotice) -> None:
        """An order or a donation (billing/orders.py) was paid: no subscription to speak of; a donation's
        message goes to the admin chat as the payer wrote it (plain text, no markup)."""
        t = await self._user_texts(notice.user_id)
        kind = "donation" if notice.kind == "donation" else "order"
        await self._deliver(f"paid:{notice.label}:user", notice.user_id, t(
            f"notice.paid.{kind}.user", amount=_amount(t, notice), item=notice.plan_title), user=True)
        a = self._admin_texts
        await self._to_admins(f"paid:{notice.label}:admin", a(
            f"notice.paid.{kind}.admin", label=notice.label, user_id=notice.user_id, item=notice.plan_title,
            amount=_amount(a, notice), provider=notice.provider, order_id=notice.order_id or "-",
            message=notice.message or a("notice.paid.donation.no_message")))

    async def payment_reversed(self, notice: ReversalNotice) -> None:
        t = await self._user_texts(notice.user_id)
        still_active = notice.period_end is not None and notice.period_end > self._clock()
        ending = (t("notice.reversed.user.active", until=t.moment(notice.period_end))
                  if still_active and notice.period_end else t("notice.reversed.user.ended"))
        returned = t("notice.reversed.user", amount=_amount(t, notice))
        await self._deliver(f"reversed:{notice.label}:user", notice.user_id,
                            returned if notice.one_off else f"{returned} {ending}", user=True)
        a = self._admin_texts
        until = a.moment(notice.period_end) if notice.period_end else a("notice.no_subscription")
        await self._to_admins(f"reversed:{notice.label}:admin", a(
            "notice.reversed.admin", label=notice.label, user_id=notice.user_id, amount=_amount(a, notice),
            provider=notice.provider, reason=notice.reason, until=until))

    async def receipt_ready(self, notice: ReceiptNotice) -> None:
        """The fiscal receipt's link that came after the payment notice: to the user, once."""
        t = await self._user_texts(notice.user_id)
        await self._deliver(f"receipt:{notice.label}:user", notice.user_id, t("notice.receipt.user", url=notice.url),
                            user=True)

    async def fiscal_refused(self, notice: FiscalRefusalNotice) -> None:
        """The provider refused a payment's fiscal receipt: the admin chat hears it once."""
        a = self._admin_texts
        await self._to_admins(f"fiscal-refused:{notice.provider}:{notice.operation_id}:admin", a(
            "notice.fiscal_refused.admin", provider=notice.provider, label=notice.label, user_id=notice.user_id,
            operation_id=notice.operation_id, error_code=notice.error_code if notice.error_code is not None else "—",
            error_note=notice.error_note or "—"))

    async def job_failed(self, notice: JobFailureNotice) -> None:
        """A payment job failed for good: the admin chat is told how to run it again."""
        a = self._admin_texts
        await self._to_admins(f"job-failed:{notice.job_id}:{self._clock().isoformat()}", a(
            "notice.job_failed.admin", description=notice.description, error=notice.error, job_id=notice.job_id))

    async def event_undelivered(self, notice: EventUndeliveredNotice) -> None:
        """An outbound event was given up on: the admin chat is told once, with the command that resends it."""
        a = self._admin_texts
        await self._to_admins(f"event-undelivered:{notice.event_id}:{notice.replays}", a(
            "notice.event_undelivered.admin", event_id=notice.event_id, type=notice.type,
            attempts=notice.attempts, error=notice.error))

    async def extra_payment(self, notice: ExtraNotice) -> None:
        """Money for an invoice another payment had claimed: the admin chat hears whether it went back."""
        a = self._admin_texts
        key = ("notice.extra.pending.admin" if notice.pending else
               "notice.extra.refunded.admin" if notice.refunded else "notice.extra.manual.admin")
        await self._to_admins(f"extra:{notice.provider}:{notice.operation_id}", a(
            key, label=notice.label, user_id=notice.user_id, amount=notice.amount, provider=notice.provider,
            operation_id=notice.operation_id, detail=notice.detail))

    async def payment_held(self, notice: HoldNotice) -> None:
        """A two-stage payment waits for an admin: the admin chat gets it with a Confirm button."""
        a = self._admin_texts
        await self._to_admins(f"held:{notice.label}:admin", a(
            "notice.hold.admin", label=notice.label, user_id=notice.user_id, amount=notice.amount,
            provider=notice.provider), markup=hold_keyboard(notice.label, a))

    async def renewal_changed(self, notice: RenewalNotice) -> None:
        """Reminders, declines and the end, to the user with a link to pay by hand; the admin chat hears of a
        renewal that gave up."""
        t = await self._user_texts(notice.user_id)
        key = f"renewal-{notice.event.value}:{notice.user_id}:{int(notice.period_end.timestamp() * 1000)}"
        values = {"plan": t.plan_title(notice.plan_title), "until": t.moment(notice.period_end),
                  "reason": notice.reason or t("renewal.no_reason"),
                  "next": t.moment(notice.next_attempt_at) if notice.next_attempt_at else "",
                  "amount": t.money(notice.amount) if notice.amount else ""}
        text = t(f"renewal.{notice.event.value}.user", **values)
        if notice.pay_url:
            text = f"{text}\n{t('renewal.pay_by_hand', url=notice.pay_url)}"
        attempt_key = f"{key}:{notice.next_attempt_at.isoformat()}" if notice.next_attempt_at else key
        markup = cancel_renewal_keyboard(t) if notice.event is RenewalEvent.UPCOMING else None
        await self._deliver(f"{attempt_key}:user", notice.user_id, text, user=True, markup=markup)
        if notice.event in (RenewalEvent.STOPPED, RenewalEvent.EXPIRED) and notice.reason:
            a = self._admin_texts  # once per period: a renewal that stopped is not told again when its period ends
            period = int(notice.period_end.timestamp() * 1000)
            await self._to_admins(f"renewal-gave-up:{notice.user_id}:{period}:admin", a(
                "renewal.gave_up.admin", user_id=notice.user_id, plan=a.plan_title(notice.plan_title),
                provider=notice.provider, reason=notice.reason, until=a.moment(notice.period_end)))

    async def refund_canceled(self, notice: RefundCanceledNotice) -> None:
        """A pending refund the provider canceled: the admin chat hears why, once per refund."""
        a = self._admin_texts
        await self._to_admins(f"refund-canceled:{notice.provider}:{notice.refund_id}:admin", a(
            "notice.refund_canceled.admin", label=notice.label, user_id=notice.user_id, amount=a.money(notice.amount),
            provider=notice.provider, refund_id=notice.refund_id, party=notice.party or "—",
            reason=notice.reason or "—"))

    async def payout_filed(self, notice: PayoutNotice) -> None:
        a = self._admin_texts
        await self._to_admins(f"payout-filed:{notice.label}:admin", claim_summary(a, notice),
                              markup=decision_keyboard(notice.label, a))

    async def payout_changed(self, notice: PayoutNotice) -> None:
        t = await self._user_texts(notice.user_id)
        await self._deliver(f"payout-{notice.event}:{notice.label}:user", notice.user_id, user_notice(t, notice),
                            user=True)
        if notice.event in ADMIN_OUTCOMES:
            await self._to_admins(f"payout-{notice.event}:{notice.label}:admin",
                                  admin_outcome(self._admin_texts, notice))

    async def payout_alert(self, notice: PayoutNotice) -> None:
        await self._to_admins(f"payout-alert-{notice.event}:{notice.label}:admin",
                              admin_alert(self._admin_texts, notice),
                              markup=resolution_keyboard(notice.label, notice.event, self._admin_texts))

    async def chat_access_granted(self, notice: AccessGranted) -> None:
        """The links to the chats of the user's plan (billing/chat_access.py), once per notice key."""
        t = await self._user_texts(notice.user_id)
        links = "\n".join(notice.links)
        await self._deliver(f"{notice.key}:user", notice.user_id,
                            t("chats.access.user", plan=t.plan_title(notice.plan_title), links=links), user=True)

    async def chat_access_removed(self, notice: AccessRemoved) -> None:
        t = await self._user_texts(notice.user_id)
        await self._deliver(f"{notice.key}:user", notice.user_id,
                            t(f"chats.removed.{notice.reason}.user", plan=t.plan_title(notice.plan_title)), user=True)

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None:
        """The bot cannot invite or remove in a plan's chat: the admin chat hears it once per key."""
        await self._to_admins(f"{key}:admin", self._admin_texts("chats.unmanageable.admin", chat_id=chat_id,
                                                                problem=problem))

    async def _user_texts(self, user_id: int) -> Texts:
        return self._catalogue.texts(await stored_language(user_id))

    async def _to_admins(self, key: str, text: str, markup: InlineKeyboard | None = None) -> None:
        if self._admin_chat_id is not None:
            await self._deliver(key, self._admin_chat_id, text, user=False, markup=markup)

    async def _deliver(self, key: str, chat_id: int, text: str, *, user: bool,
                       markup: InlineKeyboard | None = None) -> None:
        if await already_sent(key):
            return
        try:
            await self._send(chat_id, text, markup)
        except BotApiForbidden as err:
            log.warning("notice %s not delivered to chat %s, for good: %s", key, chat_id, err.description)
            if user:
                await mark_blocked(chat_id, self._clock())
            await record_sent(key, chat_id, "blocked", self._clock())
            return
        except BotApiBadRequest as err:
            log.error("notice %s refused by Telegram for chat %s, for good: %s", key, chat_id, err.description)
            await record_sent(key, chat_id, "refused", self._clock())
            return
        await record_sent(key, chat_id, "sent", self._clock())

    async def _send(self, chat_id: int, text: str, markup: InlineKeyboard | None = None) -> None:
        try:
            await self._bot.send_message(chat_id, text, markup)
            return
        except BotApiRetryAfter as err:
            if err.retry_after > MAX_INLINE_WAIT_SECONDS:
                raise NoticeNotSent(f"Telegram asks to wait {err.retry_after} s; left to the job's retries") from err
            log.info("Telegram asks to wait %s s before writing to chat %s", err.retry_after, chat_id)
            await self._sleep(err.retry_after)
        try:
            await self._bot.send_message(chat_id, text, markup)
        except BotApiRetryAfter as err:
            raise NoticeNotSent(f"Telegram still asks to wait {err.retry_after} s; left to the job's retries") from err


def _amount(t: Texts, notice: PaymentNotice | ReversalNotice) -> str:
    return t.money(notice.paid) if notice.paid is not None else notice.amount


def notifier_for(settings: Settings, transport: HttpTransport) -> Notifier:
    """The worker's notifier: Telegram when BOT_TOKEN is set, else the log. `transport` is the process's HTTP
    session for Telegram, with SEND_TIMEOUT_SECONDS as its timeout; its owner closes it."""
    api = bot_api_for(settings, transport)
    if api is None:
        return LogNotifier()
    return TelegramNotifier(api, admin_chat_id=settings.admin_chat_id, admin_language=settings.admin_language)


def chats_for(notifier: Notifier) -> TelegramChats | None:
    """The worker's ChatAdmin: over the Telegram notifier's Bot API client when BOT_TOKEN is set, else none."""
    return TelegramChats(notifier.api, notifier) if isinstance(notifier, TelegramNotifier) else None
