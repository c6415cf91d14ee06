"""Admin commands (/stats, /invoice, /grant, /chats) and the Confirm button of held payments, for ADMIN_IDS only: the
AdminOnly middleware refuses others."""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from billing.admin_access import issue_login_token
from billing.chat_access import whitelist
from billing.clock import Clock
from billing.errors import UnknownPlan
from billing.grants import grant
from billing.invoices import find_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.orders import item_title
from billing.plans import Catalogue as Plans
from bot.chats_check import check_chats
from bot.holds import confirm_pressed
from bot.keyboards import HoldConfirm
from bot.middlewares import AdminOnly
from bot.promo_admin import create_promo
from bot.stats import active_subscriptions, donation_totals, payment_totals, start_of_day, start_of_month
from bot.texts import Texts
from db import Invoice
from settings import Settings

MAX_TELEGRAM_ID = 2**53


def router(admin_ids: frozenset[int]) -> Router:
    router = Router(name="admin")
    router.message.middleware(AdminOnly(admin_ids))
    router.message.register(stats, Command("stats"))
    router.message.register(invoice_state, Command("invoice"))
    router.message.register(grant_plan, Command("grant"))
    router.message.register(create_promo, Command("newpromo"))
    router.message.register(dashboard_link, Command("dashboard"))
    router.message.register(chats_status, Command("chats"))
    router.callback_query.middleware(AdminOnly(admin_ids))
    router.callback_query.register(confirm_pressed, HoldConfirm.filter())
    return router


async def chats_status(message: Message, command: CommandObject, t: Texts, plans: Plans, bot: Bot,
                       clock: Clock) -> None:
    """Each chat a plan grants and what the bot lacks there (the rights to invite users and to ban);
    `/chats allow USER_ID CHAT_ID` whitelists a member, who is then never removed from that chat; `/chats import
    CHAT_ID USER_ID...` whitelists the members already inside when a chat is first managed."""
    if command.args and command.args.split()[0] == "import":
        await _import(message, command.args.split()[1:], t, plans, clock)
        return
    if command.args:
        await _allow(message, command.args.split(), t, plans, clock)
        return
    checks = await check_chats(bot, plans)
    if not checks:
        await message.answer(t("admin.chats.none"))
        return
    lines = []
    for check in checks:
        name = check.title or str(check.chat_id)
        if check.ready:
            lines.append(t("admin.chats.ready", chat=name, chat_id=check.chat_id, plans=", ".join(check.plans)))
        else:
            lines.append(t("admin.chats.missing", chat=name, chat_id=check.chat_id, plans=", ".join(check.plans),
                           missing=", ".join(t(f"admin.chats.right.{right}") for right in check.missing),
                           error=check.error or "—"))
    await message.answer("\n".join(lines))


async def _allow(message: Message, args: list[str], t: Texts, plans: Plans, clock: Clock) -> None:
    ids = [int(arg) for arg in args[1:] if arg.lstrip("-").isdigit()]
    if len(args) != 3 or args[0] != "allow" or len(ids) != 2 or ids[1] not in plans.managed_chats():
        await message.answer(t("admin.chats.allow_usage"))
        return
    await whitelist(ids[0], ids[1], clock())
    await message.answer(t("admin.chats.allowed", user_id=ids[0], chat_id=ids[1]))


MAX_IMPORT = 1000  # ids per message; a larger chat is imported in several


async def _import(message: Message, args: list[str], t: Texts, plans: Plans, clock: Clock) -> None:
    """`/chats import CHAT_ID USER_ID...`: the members already inside when a chat is first managed stay (the Bot
    API cannot list a chat's members, so the owner gives their ids, e.g. exported from a Telegram app)."""
    numbers = [arg for arg in args if arg.lstrip("-").isdigit() and len(arg) <= 20]
    if len(numbers) < 2 or len(numbers) != len(args) or int(numbers[0]) not in plans.managed_chats() or \
            len(numbers) > MAX_IMPORT + 1 or any(not 0 < int(user) < MAX_TELEGRAM_ID for user in numbers[1:]):
        await message.answer(t("admin.chats.import_usage"))
        return
    chat_id, users = int(numbers[0]), sorted({int(user) for user in numbers[1:]})
    for user_id in users:
        await whitelist(user_id, chat_id, clock())
    await message.answer(t("admin.chats.imported", count=len(users), chat_id=chat_id))


async def stats(message: Message, t: Texts, clock: Clock) -> None:
    now = clock()
    lines = [t("admin.stats.today", date=t.moment(start_of_day(now)))]
    lines += await _totals(t, start_of_day(now))
    lines.append(t("admin.stats.month", month=t.moment(start_of_month(now))))
    lines += await _totals(t, start_of_month(now))
    lines.append(t("admin.stats.donations", month=t.moment(start_of_month(now))))
    lines += [t("admin.stats.donation_line", total=t.money(Money(item.total, item.currency)), count=item.count)
              for item in await donation_totals(start_of_month(now))] or [t("admin.stats.none")]
    lines.append(t("admin.stats.active", count=await active_subscriptions(now)))
    await message.answer("\n".join(lines))


async def _totals(t: Texts, since: datetime) -> list[str]:
    totals = await payment_totals(since)
    return [t("admin.stats.line", provider=item.provider, total=t.money(Money(item.total, item.currency)),
              count=item.count) for item in totals] or [t("admin.stats.none")]


async def dashboard_link(message: Message, t: Texts, settings: Settings, clock: Clock) -> None:
    """A one-time sign-in link to the web dashboard, in this private chat only (it signs its holder in)."""
    if message.from_user is None or message.chat.type != "private":
        return
    token = await issue_login_token(message.from_user.id, clock())
    await message.answer(t("admin.dashboard.link", url=f"{settings.public_base_url}/admin/login/link/{token}"))


async def invoice_state(message: Message, command: CommandObject, t: Texts, plans: Plans) -> None:
    label = (command.args or "").strip()
    if not label or " " in label:
        await message.answer(t("admin.invoice.usage"))
        return
    invoice = await find_invoice(label)
    if invoice is None:
        await message.answer(t("admin.invoice.not_found", label=label))
        return
    await message.answer(describe_invoice(invoice, t, plans))


def describe_invoice(invoice: Invoice, t: Texts, plans: Plans) -> str:
    lines = [t("admin.invoice.info", label=invoice.label, status=t(f"invoice.status.{invoice.status.value}"),
               user_id=invoice.user_id, plan=t.plan_title(item_title(invoice, plans)), prices=t.prices(invoice.amounts),
               created=t.moment(invoice.created_at), expires=t.moment(invoice.expires_at))]
    if invoice.paid_at and invoice.paid_amount is not None and invoice.paid_currency:
        lines.append(t("admin.invoice.paid", paid_at=t.moment(invoice.paid_at), provider=invoice.provider,
                       amount=t.money(Money(invoice.paid_amount, invoice.paid_currency))))
    if invoice.refunded_at:
        lines.append(t("admin.invoice.refunded", refunded_at=t.moment(invoice.refunded_at)))
    return "\n".join(lines)


async def grant_plan(message: Message, command: CommandObject, t: Texts, plans: Plans, ledger: Ledger,
                     settings: Settings, clock: Clock) -> None:
    parts = (command.args or "").split()
    names = ", ".join(plans.names())
    if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()) or not 0 < int(parts[0]) < MAX_TELEGRAM_ID:
        await message.answer(t("admin.grant.usage", plans=names))
        return
    user_id, plan_name = int(parts[0]), parts[1]
    try:
        plan = plans.get(plan_name)
    except UnknownPlan:
        await message.answer(t("admin.grant.unknown_plan", plan=plan_name, plans=names))
        return
    result = await grant(ledger, plan, user_id, request_id=f"{message.chat.id}-{message.message_id}", now=clock(),
                         ttl_seconds=settings.invoice_ttl_seconds)
    key = "admin.grant.done" if result.fresh else "admin.grant.duplicate"
    await message.answer(t(key, plan=t.plan_title(plan.title), user_id=user_id, label=result.label))
