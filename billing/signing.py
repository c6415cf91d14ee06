"""The one constant-time comparison every signature check goes through."""

import hmac


def secrets_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two strings of any characters (hmac.compare_digest wants ASCII str)."""
    # surrogatepass: a header aiohttp decoded with surrogate escapes still compares (unequal), never raises
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))
