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
