"""The domain's errors: raised by billing/, mapped to answers at the edges."""


class BillingError(Exception):
    """Base of every expected domain failure."""


class UnknownPlan(BillingError):
    pass


class PlansFileError(BillingError):
    pass


class InvoiceNotFound(BillingError):
    pass


class BadLinkSignature(BillingError):
    pass


class LinkExpired(BillingError):
    pass


class LedgerUnavailable(BillingError):
    """The event could not be recorded or enqueued; the provider must deliver it again."""


class ProviderUnavailable(BillingError):
    """A provider API needed to confirm an event did not answer; try again later."""


class OperationNotRecorded(InvoiceNotFound):
    """A job names an operation the ledger does not hold; the routes always record first."""


class ChatUnmanageable(BillingError):
    """The bot cannot act in a plan's chat: removed from it, or no longer an admin with the right to invite or
    ban (Telegram's 403, or 400 "not enough rights"). Retrying does not help; the owner must fix the chat."""

    def __init__(self, chat_id: int, problem: str) -> None:
        super().__init__(f"chat {chat_id}: {problem}")
        self.chat_id = chat_id
        self.problem = problem


class ChatBusy(BillingError):
    """Telegram asked to wait (429) before the next call about a chat: the job raises and RQ retries it later."""
