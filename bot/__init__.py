"""The Telegram bot: routers per feature, middlewares, keyboards, texts, and the worker's notifier."""
