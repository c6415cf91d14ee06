"""Payouts to contractors and partners through konsol.pro.

A user files a claim in the bot (amount; card, or phone and SBP bank); admins Accept or Reject it; an
accepted claim becomes a konsol.pro payment (`submit`), whose outcome comes from konsol.pro's API on every
webhook and poll (`settle`). The modules: `cards` (input checks, the card cipher), `claims` (filing and
decisions), `submit` (the payout job), `settle` (outcomes), `notices`.

Claim statuses (db.payouts.ClaimStatus): draft → new → accepted → creating → submitted ⇄ needs_action →
paid | failed | cancelled; new → rejected | expired; creating → unknown → submitted (found) or by hand.
"""

from billing.payouts.submit import CREATE_RETRIES, PayoutServices

__all__ = ["CREATE_RETRIES", "PayoutServices"]
