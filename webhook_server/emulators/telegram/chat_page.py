"""The fake Bot API's chat page: a person types to the bot and presses its buttons in a browser."""

from __future__ import annotations

import html
from typing import Any

from webhook_server.emulators.telegram.stars import LINK_PREFIX, pay_button

LANGUAGE_CHOICES = ("en", "ru", "uz", "de")


def render_chat(user_id: int, language: str, messages: list[dict[str, Any]], stars: str = "") -> str:
    """`stars`: the Telegram Stars panel (the user's subscriptions, with a button that renews one now)."""
    language = html.escape(language)
    items = "".join(_render_message(message, user_id, language) for message in messages) + stars
    options = "".join(f'<option{" selected" if code == language else ""}>{code}</option>' for code in LANGUAGE_CHOICES)
    return _PAGE.format(user_id=user_id, options=options, items=items or "<p><i>No messages yet.</i></p>")


_PAGE = """<!doctype html><meta charset="utf-8"><title>Fake Telegram</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:1rem auto}}.msg{{border-radius:.6rem;
padding:.5rem .8rem;margin:.4rem 0;white-space:pre-wrap}}.bot{{background:#eef}}.user{{background:#efe;
text-align:right}}.kb a,.kb button{{display:inline-block;margin:.2rem;padding:.3rem .6rem;border:1px solid #99c;
border-radius:.4rem;background:#fff;text-decoration:none;cursor:pointer}}</style>
<h1>Fake Telegram</h1>
<form method="post" action="/fake/send"><input type="hidden" name="redirect" value="1">
user id <input name="user_id" value="{user_id}" size="10"> language <select name="language_code">{options}</select>
<br><input id="text" name="text" value="/subscribe" size="40" autofocus> <button type="submit">Send</button></form>
{items}
<script>setInterval(() => {{ if (document.activeElement.id !== "text") location.reload(); }}, 3000);</script>
"""


def _render_message(message: dict[str, Any], user_id: int, language: str) -> str:
    who = "bot" if message.get("from", {}).get("is_bot") else "user"
    buttons = []
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            text = html.escape(str(button.get("text", "")))
            if str(button.get("url", "")).startswith(LINK_PREFIX):  # a Stars invoice link: the app pays in place
                buttons.append(pay_button(user_id, language, url=button["url"], text=str(button.get("text", ""))))
            elif "url" in button:
                buttons.append(f'<a href="{html.escape(button["url"])}" target="_blank">{text}</a>')
            elif "callback_data" in button:
                buttons.append(
                    f'<form method="post" action="/fake/press" style="display:inline">'
                    f'<input type="hidden" name="redirect" value="1"><input type="hidden" name="user_id" '
                    f'value="{user_id}"><input type="hidden" name="language_code" value="{language}">'
                    f'<input type="hidden" name="message_id" value="{message["message_id"]}">'
                    f'<input type="hidden" name="data" value="{html.escape(button["callback_data"])}">'
                    f'<button type="submit">{text}</button></form>')
    if "invoice" in message:  # sendInvoice: Telegram shows the invoice with its Pay button
        invoice = message["invoice"]
        buttons.insert(0, pay_button(user_id, language, message_id=message["message_id"],
                                     text=f"Pay ⭐ {invoice['total_amount']}"))
        message = {**message, "text": f"{invoice['title']}\n{invoice['description']}"}
    keyboard = f'<div class="kb">{"".join(buttons)}</div>' if buttons else ""
    return f'<div class="msg {who}">{html.escape(str(message.get("text", "")))}{keyboard}</div>'
