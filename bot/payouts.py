"""What the bot's payout handlers use besides the database: the queue, konsol.pro's client (the SBP bank
directory and the balance), the card cipher and the limits. One desk per Dispatcher; closed at its shutdown."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from billing.payouts.cards import CardCipher
from billing.providers.konsol import FALLBACK_BANKS, Account, Bank, KonsolClient, KonsolRejected, KonsolUnavailable
from db.payouts import SbpBankDirectory
from rq_access import RqQueues, connect
from settings import Settings
from webhook_server.payout_services import OwnSessionTransport, konsol_client

log = logging.getLogger(__name__)
DIRECTORY_TTL = timedelta(hours=24)


class PayoutDesk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._transport = OwnSessionTransport(settings.konsol_timeout + 5)
        self.konsol: KonsolClient | None = konsol_client(settings, self._transport)
        self._queue: RqQueues | None = None
        self._cipher: CardCipher | None = None

    @property
    def enabled(self) -> bool:
        return self.konsol is not None

    @property
    def queue(self) -> RqQueues:
        if self._queue is None:  # connections open on first use, not when the Dispatcher is built
            self._queue = RqQueues(connect(self.settings.redis_url), max_retries=self.settings.job_max_retries,
                                   retry_intervals=self.settings.job_retry_intervals)
        return self._queue

    @property
    def cipher(self) -> CardCipher:
        if self._cipher is None:
            self._cipher = CardCipher.from_link_key(self.settings.link_key)
        return self._cipher

    async def banks(self, now: datetime) -> list[Bank]:
        """konsol.pro's SBP directory, kept in MongoDB for a day; when konsol.pro cannot be asked, the last
        one fetched, else the well-known banks."""
        cached = await SbpBankDirectory.find_one({"key": "fps_bank_members"})
        if cached is not None and now - cached.fetched_at < DIRECTORY_TTL:
            return [Bank(row["id"], row["name"]) for row in cached.banks]
        fetched: list[Bank] = []
        if self.konsol is not None:
            try:
                fetched = await self.konsol.banks()
            except (KonsolUnavailable, KonsolRejected) as err:
                log.warning("konsol.pro's SBP directory not fetched: %s", err)
        if fetched:
            try:
                await SbpBankDirectory.get_motor_collection().update_one(
                    {"key": "fps_bank_members"},
                    {"$set": {"banks": [{"id": bank.id, "name": bank.name} for bank in fetched], "fetched_at": now}},
                    upsert=True)
            except DuplicateKeyError:  # another process stored it at the same moment
                pass
            return fetched
        if cached is not None:
            return [Bank(row["id"], row["name"]) for row in cached.banks]
        return list(FALLBACK_BANKS)

    async def balance(self) -> list[Account]:
        if self.konsol is None:
            return []
        return await self.konsol.balance()

    async def close(self) -> None:
        await self._transport.close()
        if self._queue is not None:
            self._queue.connection.close()
            self._queue = None


def search_banks(banks: list[Bank], query: str) -> list[Bank]:
    """Banks whose name holds every word of the query, case and ё/е aside."""
    words = _fold(query).split()
    return [bank for bank in banks if words and all(word in _fold(bank.name) for word in words)]


def _fold(text: str) -> str:
    return text.casefold().replace("ё", "е").replace("-", " ")
