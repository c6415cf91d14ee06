"""Slow clients: how long a request may take to arrive, and how many connections one address may hold meanwhile.

aiohttp has no timeout for either. Its keep-alive timer (75 s here) also ends a connection whose headers never
complete, but only while no request is being handled: a client that sends complete headers declaring a body and
then trickles (or never sends) that body holds its connection, and the handler awaiting the body, for ever; many
such connections, from one address, exhaust the server. The guard
wraps the protocol of every connection the site accepts (a transport-level watchdog, outside the app and its
middlewares) with one timer at a time:

- headers: from the connection's start, or from the first byte of a later request on a kept-alive connection,
  until the request reaches the app; on expiry the connection is aborted (there is no request to answer);
- body: from the request reaching the app until its body has fully arrived; on expiry the body's reads raise
  `BodyTimeout` (a 408 through the error middleware) and the connection closes once that answer is written.

While a connection is in either phase it holds one of its address's slots; an address (an IPv6 /64) already
holding `per_address` of them gets a 503 and a closed connection instead. Idle kept-alive connections and
requests being handled hold none, so a browser's or a provider's ordinary connections are not counted.
Behind a proxy every connection's peer is the proxy: addresses in TRUSTED_PROXIES are never refused (the
proxy's own limits protect then), though their timeouts still apply.

Left to aiohttp's keep-alive timeout (runner.KEEPALIVE_SECONDS): an idle kept-alive connection, and the start
of a further request that came in the same packet as the end of the one before (aiohttp buffers it unseen;
the guard sees only bytes that arrive after a request has reached the app).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader

from billing.networks import Network, address_in
from settings import Settings

log = logging.getLogger(__name__)

IPV6_CLIENT_PREFIX = 64  # the smallest network a home line or a server gets: one client, whatever its addresses
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
           b"Retry-After: 10\r\nConnection: close\r\n\r\ntoo many connections\n")
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class SlowClientLimits:
    header_seconds: float
    body_seconds: float
    per_address: int
    exempt: tuple[Network, ...] = ()  # never refused for their count: the trusted proxies

    @classmethod
    def from_settings(cls, settings: Settings, exempt: list[Network]) -> SlowClientLimits:
        return cls(settings.web_header_timeout_seconds, settings.web_body_timeout_seconds,
                   settings.web_max_slow_connections_per_ip, tuple(exempt))


class BodyTimeout(web.HTTPRequestTimeout, TimeoutError):
    """What a handler's read of a body that did not arrive in time raises.

    As an HTTP error the error middleware answers it with a 408; as a TimeoutError it ends aiohttp's lingering
    read of an unread body after the answer quietly, and the connection closes.
    """


def peer_host(peer: Any) -> str:
    """The host of a transport's `peername` (a tuple for TCP, whatever else for other sockets)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def address_key(peer: Any) -> str:
    """The address a connection counts against: its IP, an IPv4-mapped IPv6 as its IPv4, an IPv6 as its /64."""
    host = peer_host(peer)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


class SlowClientGuard:
    """The slots of every address, and the connections of one server (a site's protocol factory)."""

    def __init__(self, limits: SlowClientLimits) -> None:
        self.limits = limits
        self._reading: Counter[str] = Counter()
        self._connections: dict[web.RequestHandler, GuardedConnection] = {}  # aiohttp's protocol → its guard

    def reading(self, key: str) -> int:
        """How many connections of this address are still sending a request."""
        return self._reading[key]

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """For `loop.create_server`: aiohttp's own protocol for `server`, inside a guarded connection.

        `server.request_handler` is wrapped once so that the guard learns when a request reaches the app (its
        headers are complete) and when its handler returns; aiohttp reads it for every new connection.
        """
        server.request_handler = self._tracking(server.request_handler)
        return lambda: GuardedConnection(self, server)

    def _tracking(self, handler: Handler) -> Handler:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            connection = self._connections.get(request.protocol)
            if connection is None:
                return await handler(request)
            connection.request_started(request.content)
            try:
                return await handler(request)
            finally:
                connection.request_finished()

        return handle

    def acquire(self, key: str, limited: bool) -> bool:
        if limited and self._reading[key] >= self.limits.per_address:
            return False
        self._reading[key] += 1
        return True

    def release(self, key: str) -> None:
        self._reading[key] -= 1
        if self._reading[key] <= 0:
            del self._reading[key]

    def attach(self, inner: web.RequestHandler, connection: GuardedConnection) -> None:
        self._connections[inner] = connection

    def detach(self, inner: web.RequestHandler) -> None:
        self._connections.pop(inner, None)


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, a deadline while the client is still sending."""

    def __init__(self, guard: SlowClientGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._inner: web.RequestHandler | None = None  # made only for an accepted connection
        self._transport: asyncio.Transport | None = None
        self._key = ""
        self._limited = True
        self._holds_slot = False
        self._deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the body still arriving
        self._handling = False
        self._early_bytes = False  # a next request began while this one was handled (pipelining)
        self._given_up = False  # timed out or refused: only closing is left

    # --- asyncio.Protocol, delegated to aiohttp's protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._key = address_key(peer)
        self._limited = not address_in(peer_host(peer), self._guard.limits.exempt)
        if not self._start_reading(self._guard.limits.header_seconds, "headers"):
            self._refuse()
            return
        self._inner = self._server()
        self._guard.attach(self._inner, self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._given_up:
            self._inner.data_received(data)
            return
        if self._deadline is None and self._body is None:  # the first byte of another request
            if self._handling:
                self._early_bytes = True
            elif not self._start_reading(self._guard.limits.header_seconds, "headers"):
                self._refuse()
                return
        self._inner.data_received(data)
        if self._body is not None and self._body.is_eof():
            self._body = None
            self._stop_reading()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_reading()
        self._body = None
        if self._inner is not None:
            self._guard.detach(self._inner)
            self._inner.connection_lost(exc)

    # --- told by the guard's request handler ---

    def request_started(self, body: StreamReader) -> None:
        """The request's headers are complete: its body, if it has not all arrived yet, must follow in time."""
        self._handling, self._early_bytes = True, False
        self._cancel_deadline()
        if body.is_eof():
            self._body = None
            self._stop_reading()
        else:
            self._body = body
            self._start_reading(self._guard.limits.body_seconds, "body", refusable=False)

    def request_finished(self) -> None:
        """The handler answered; a pipelined request that began meanwhile has its headers' time from now."""
        self._handling = False
        if self._early_bytes and not self._given_up and self._deadline is None and self._body is None:
            self._early_bytes = False
            if not self._start_reading(self._guard.limits.header_seconds, "headers"):
                self._refuse()

    # --- the deadline ---

    def _start_reading(self, seconds: float, part: str, *, refusable: bool = True) -> bool:
        """Hold a slot of this address and arm the deadline; False if the address has none left (a request
        already under way is never refused)."""
        if not self._holds_slot:
            if not self._guard.acquire(self._key, self._limited and refusable):
                log.info("connection from %s refused: %s connections of that address are still sending a request",
                         self._key, self._guard.limits.per_address)
                return False
            self._holds_slot = True
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(seconds, self._expire, part, seconds)
        return True

    def _stop_reading(self) -> None:
        self._cancel_deadline()
        if self._holds_slot:
            self._holds_slot = False
            self._guard.release(self._key)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, part: str, seconds: float) -> None:
        self._deadline, self._given_up = None, True
        log.info("slow client %s: the request's %s did not arrive within %s s; connection dropped",
                 self._key, part, seconds)
        body, self._body = self._body, None
        self._stop_reading()
        if body is not None and self._inner is not None:
            body.set_exception(BodyTimeout())
            self._inner.close()  # no further request on this connection: close once the 408 is written
        elif self._transport is not None:
            self._transport.abort()

    def _refuse(self) -> None:
        self._given_up = True
        if self._transport is not None:
            self._transport.write(REFUSAL)
            self._transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a `SlowClientGuard` (aiohttp's TCPSite offers no protocol hook).

    A TLS handshake happens before the app's protocol sees the connection, so it gets the header timeout too.
    """

    def __init__(self, runner: web.BaseRunner, guard: SlowClientGuard, host: str, port: int, *,
                 ssl_context: Any = None, reuse_port: bool = False) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._web_runner, self._guard, self._host, self._port = runner, guard, host, port
        self._tls = ssl_context
        self._reuse_port = reuse_port  # SO_REUSEPORT: the sibling processes of WEB_PROCESSES share the port
        self.port = port

    @property
    def name(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._web_runner.server
        assert server is not None, "the runner is set up before its site starts"
        tls_timeouts: dict[str, float] = {}
        if self._tls is not None:
            seconds = self._guard.limits.header_seconds
            tls_timeouts = {"ssl_handshake_timeout": seconds, "ssl_shutdown_timeout": seconds}
        listening = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port, ssl=self._tls,
            reuse_port=self._reuse_port or None, **tls_timeouts)
        self._server = listening
        self.port = listening.sockets[0].getsockname()[1] if listening.sockets else self._port
