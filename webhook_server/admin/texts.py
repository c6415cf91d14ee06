"""The dashboard's words in Russian, English and Uzbek; the language comes from ?lang= or the `admin_lang` cookie."""

from __future__ import annotations

LANGUAGES = ("ru", "en", "uz")
DEFAULT = "ru"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "exports": "Exports", "from": "From", "to": "To", "export_payments": "Payments, CSV",
        "export_subscribers": "Subscribers, CSV", "grant": "Grant or extend",
        "confirm_grant": "Grant {plan} ({days} days) to subscriber {user}?",
        "granted": "Granted: {plan}, {days} days.", "grant_repeated": "This grant was already given; nothing changed.",
        "not_renewing": "This subscription does not renew automatically.",
        "auto_renew_off": "Automatic renewal is off; the saved method is being removed.",
        "auto_renew_off_action": "Turn automatic renewal off",
        "confirm_auto_renew_off": "Turn automatic renewal off for subscriber {user}?",
        "title": "Dashboard", "login": "Sign in", "login_hint": "Send /dashboard to the bot for a one-time link.",
        "login_go": "Sign in", "logout": "Sign out", "overview": "Overview", "payments": "Payments",
        "users": "Subscribers", "search": "Find", "search_hint": "Telegram id or invoice label",
        "active": "Active subscribers", "past_due": "In dunning", "review": "Kept for review",
        "revenue": "Revenue, last {days} days", "user": "Subscriber", "subscription": "Subscription",
        "invoices": "Invoices", "none": "Nothing yet", "refund": "Refund", "confirm_refund": "Refund invoice {label}?",
        "confirm": "Confirm", "cancel": "Cancel", "done": "Done", "forbidden": "Your role may not do this.",
        "not_found": "Not found", "next": "Older", "refunded": "Refund requested", "pending": "Refund pending",
        "expired_link": "This link is used or expired.", "too_many": "Too many attempts; wait a minute.",
    },
    "ru": {
        "exports": "Выгрузки", "from": "С", "to": "По", "export_payments": "Платежи, CSV",
        "export_subscribers": "Подписчики, CSV", "grant": "Выдать или продлить",
        "confirm_grant": "Выдать {plan} ({days} дн.) подписчику {user}?",
        "granted": "Выдано: {plan}, {days} дн.", "grant_repeated": "Эта выдача уже сделана; ничего не изменилось.",
        "not_renewing": "Эта подписка не продлевается автоматически.",
        "auto_renew_off": "Автопродление выключено; сохранённый способ оплаты удаляется.",
        "auto_renew_off_action": "Выключить автопродление",
        "confirm_auto_renew_off": "Выключить автопродление подписчику {user}?",
        "title": "Панель", "login": "Вход", "login_hint": "Отправьте боту /dashboard, чтобы получить разовую ссылку.",
        "login_go": "Войти", "logout": "Выйти", "overview": "Обзор", "payments": "Платежи",
        "users": "Подписчики", "search": "Найти", "search_hint": "Telegram id или метка счёта",
        "active": "Активные подписчики", "past_due": "В повторных списаниях", "review": "На проверке",
        "revenue": "Выручка за {days} дней", "user": "Подписчик", "subscription": "Подписка",
        "invoices": "Счета", "none": "Пока ничего", "refund": "Вернуть",
        "confirm_refund": "Вернуть оплату счёта {label}?",
        "confirm": "Подтвердить", "cancel": "Отмена", "done": "Готово", "forbidden": "Вашей роли это недоступно.",
        "not_found": "Не найдено", "next": "Ранее", "refunded": "Возврат запрошен", "pending": "Возврат в обработке",
        "expired_link": "Ссылка уже использована или истекла.", "too_many": "Слишком много попыток; подождите минуту.",
    },
    "uz": {
        "exports": "Eksport", "from": "Dan", "to": "Gacha", "export_payments": "To‘lovlar, CSV",
        "export_subscribers": "Obunachilar, CSV", "grant": "Berish yoki uzaytirish",
        "confirm_grant": "{user} obunachiga {plan} ({days} kun) berilsinmi?",
        "granted": "Berildi: {plan}, {days} kun.", "grant_repeated": "Bu allaqachon berilgan; hech narsa o‘zgarmadi.",
        "not_renewing": "Bu obuna avtomatik uzaytirilmaydi.",
        "auto_renew_off": "Avtomatik uzaytirish o‘chirildi; saqlangan to‘lov usuli o‘chirilmoqda.",
        "auto_renew_off_action": "Avtomatik uzaytirishni o‘chirish",
        "confirm_auto_renew_off": "{user} obunachi uchun avtomatik uzaytirish o‘chirilsinmi?",
        "title": "Boshqaruv paneli", "login": "Kirish",
        "login_hint": "Bir martalik havola olish uchun botga /dashboard yuboring.",
        "login_go": "Kirish", "logout": "Chiqish", "overview": "Umumiy ko‘rinish", "payments": "To‘lovlar",
        "users": "Obunachilar", "search": "Topish", "search_hint": "Telegram id yoki hisob belgisi",
        "active": "Faol obunachilar", "past_due": "Qayta yechishda", "review": "Tekshiruvda",
        "revenue": "So‘nggi {days} kunlik tushum", "user": "Obunachi", "subscription": "Obuna",
        "invoices": "Hisoblar", "none": "Hozircha hech narsa", "refund": "Qaytarish",
        "confirm_refund": "{label} hisobi to‘lovini qaytarasizmi?", "confirm": "Tasdiqlash", "cancel": "Bekor qilish",
        "done": "Tayyor", "forbidden": "Rolingizga bu ruxsat etilmagan.", "not_found": "Topilmadi", "next": "Avvalroq",
        "refunded": "Qaytarish so‘raldi", "pending": "Qaytarish jarayonda",
        "expired_link": "Havola ishlatilgan yoki muddati o‘tgan.", "too_many": "Urinishlar ko‘p; bir daqiqa kuting.",
    },
}


def language(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT
