"""The client's address: X-Forwarded-For is believed only when the direct peer is a trusted proxy."""

from __future__ import annotations

from billing.networks import Network, address_in, parse_networks

__all__ = ["Network", "client_ip", "parse_networks"]


def client_ip(peer: str, forwarded_for: str | None, proxies: list[Network]) -> str:
    """Walk X-Forwarded-For from the right past our own proxies; the first address they did not add is the client.

    Entries left of an untrusted hop could be written by anyone, so they are never believed.
    """
    if not proxies or not address_in(peer, proxies) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not address_in(hop, proxies):
            return hop
    return hops[0] if hops else peer
