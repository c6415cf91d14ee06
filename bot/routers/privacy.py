"""/privacy and /deletedata, which Telegram's Bot Developer Terms ask of bots that take payments.

/privacy shows the owner's policy (PRIVACY_POLICY_RU/_EN/_UZ in the user's language, else the default language's,
and PRIVACY_POLICY_URL), or says that none is published. /deletedata asks first (a DataDeletion button), then
billing.privacy erases or anonymises the presser's own data and the answer says what was kept and why; what must
be settled first (auto-renewal, a payout claim, a charge under way) is named instead, and nothing changes."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from billing.clock import Clock
from billing.plans import Catalogue as Plans
from billing.privacy import AccessChanged, Blocker, DeletionBlocked, Inventory, erase, inventory
from bot.keyboards import DataDeletion
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, Texts
from settings import Settings

ERASE = "erase"
KEEP = "keep"
NOT_MODIFIED = "message is not modified"  # Telegram's description of an edit to the same text


def router() -> Router:
    router = Router(name="privacy")
    router.message.register(privacy, Command("privacy"))
    router.message.register(delete_data, Command("deletedata"), F.chat.type == "private")
    router.callback_query.register(deletion_answered, DataDeletion.filter(F.action.in_({ERASE, KEEP})))
    return router


async def privacy(message: Message, t: Texts, settings: Settings) -> None:
    texts = [settings.privacy_policy(language) for language in (t.language, DEFAULT_LANGUAGE, *LANGUAGES)]
    text = next((text for text in texts if text), None)
    parts = [text] if text else []
    if settings.privacy_policy_url:
        parts.append(t("privacy.link", url=settings.privacy_policy_url))
    await message.answer("\n\n".join([*(parts or [t("privacy.unset")]), t("privacy.deletion")]))


async def delete_data(message: Message, t: Texts, plans: Plans, clock: Clock) -> None:
    assert message.from_user is not None
    found = await inventory(message.from_user.id, clock())
    if found.blockers:
        await message.answer(_blocked(found, t))
        return
    await message.answer(_question(found, t, plans), reply_markup=_keyboard(found, t))


async def deletion_answered(query: CallbackQuery, callback_data: DataDeletion, t: Texts, plans: Plans,
                            clock: Clock, state: FSMContext) -> None:
    if callback_data.action != ERASE:
        await _reply(query, t("deletedata.kept"))
        return
    try:
        done = await erase(query.from_user.id, clock(), accepted_access=callback_data.access)
    except DeletionBlocked as refused:
        await _reply(query, _blocked(refused.inventory, t))
        return
    except AccessChanged as changed:
        await query.answer()
        if isinstance(query.message, Message):
            text = "\n\n".join([t("deletedata.changed"), _question(changed.inventory, t, plans)])
            await query.message.edit_text(text, reply_markup=_keyboard(changed.inventory, t))
        return
    await state.clear()  # a payout dialogue's amount or phone number, kept for this chat by the FSM storage
    await _reply(query, t("deletedata.done", payments=done.payments_kept, payouts=done.payouts_kept))


def _question(found: Inventory, t: Texts, plans: Plans) -> str:
    parts = [t("deletedata.confirm", payments=found.payments_kept, payouts=found.payouts_kept)]
    if found.access_until is not None and found.plan is not None:
        parts.append(t("deletedata.confirm.access", plan=t.plan_title(plans.title(found.plan)),
                       until=t.moment(found.access_until)))
    return "\n\n".join(parts)


def _keyboard(found: Inventory, t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("deletedata.erase"),
                             callback_data=DataDeletion(action=ERASE, access=found.access_seconds).pack()),
        InlineKeyboardButton(text=t("deletedata.keep"), callback_data=DataDeletion(action=KEEP).pack()),
    ]])


def _blocked(found: Inventory, t: Texts) -> str:
    reasons = [t("deletedata.blocked.payout_open", labels=", ".join(found.open_payouts))
               if blocker is Blocker.PAYOUT_OPEN else t(f"deletedata.blocked.{blocker.value}")
               for blocker in found.blockers]
    return "\n".join([t("deletedata.blocked"), *reasons, "", t("deletedata.blocked.then")])


async def _reply(query: CallbackQuery, text: str) -> None:
    """Answer the press and replace the question, so its buttons cannot be pressed again. A second press (a double
    tap, a redelivered update) finds the answer already there: Telegram's "message is not modified" is that."""
    await query.answer()
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text)
        except TelegramBadRequest as err:
            if NOT_MODIFIED not in err.message:
                raise
