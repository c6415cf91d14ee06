"""Slow clients against the real serve path (start_web, and serve_web in its own process) over real sockets:
headers and bodies that do not arrive in time are dropped, one address holds a bounded number of connections
while it is still sending, and a slow but progressing client within the limits is served."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bench.deployment import until, wait_ready
from tests.conftest import ADMIN_TOKEN, REDIS_TEST_URL, ROOT, make_settings
from tests.webhook_server.test_https_and_proxies import make_certificate
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.app import create_app
from webhook_server.runner import WebServing, start_web
from webhook_server.slow_clients import address_key
from webhook_server.tls import ReloadableTLS

DEADLINE_SECONDS = 10  # generous: every wait below ends on a condition long before this
SHORT = 0.3  # the timeout under test
LONG = 30.0  # a timeout that must not be what ends the test
HOST, OTHER_HOST = "127.0.0.1", "127.0.0.2"  # the whole 127/8 is loopback: a second client address
INVOICE = json.dumps({"user_id": 42, "plan": "month"}).encode()
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def serving(plans: Any, **overrides: Any) -> AsyncIterator[WebServing]:
    settings = make_settings(web_host=HOST, web_port=0, **overrides)
    started = await start_web(create_app(settings, plans=plans), settings)
    try:
        yield started
    finally:
        await started.runner.cleanup()


async def connect(server: WebServing, source: str = HOST) -> Streams:
    return await asyncio.open_connection(HOST, server.port, local_addr=(source, 0))


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (a reset counts as closed)."""
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


async def closed_within_deadline(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(until_closed(reader), DEADLINE_SECONDS)


async def holding(server: WebServing, count: int, address: str = HOST) -> None:
    """Until the server counts `count` connections of `address` still sending a request."""
    async def counted() -> bool:
        return server.guard.reading(address) == count

    await until(counted, f"{count} connections of {address} were not counted", DEADLINE_SECONDS)


def post_head(length: int, path: str = "/api/invoices") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: shop.test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n").encode()


async def status_of(reader: asyncio.StreamReader) -> int:
    return int((await asyncio.wait_for(reader.readline(), DEADLINE_SECONDS)).split()[1])


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of one response with a Content-Length, read to its end (the connection stays usable)."""
    status = await status_of(reader)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), DEADLINE_SECONDS)) != b"\r\n":
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await asyncio.wait_for(reader.readexactly(length), DEADLINE_SECONDS)
    return status


async def healthz_from(server: WebServing, source: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://{HOST}:{server.port}/healthz") as response:
            return response.status


async def test_half_sent_headers_are_dropped_after_the_header_timeout(plans, redis_conn):
    async with serving(plans, web_header_timeout_seconds=SHORT) as server:
        reader, writer = await connect(server)
        started = asyncio.get_running_loop().time()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n")  # the blank line never comes
        assert await closed_within_deadline(reader) == b"", "dropped without an answer"
        assert asyncio.get_running_loop().time() - started >= SHORT * 0.9, "not before the header timeout"
        assert server.guard.reading(HOST) == 0, "its slot is free again"
        writer.close()


async def test_headers_trickled_byte_by_byte_are_dropped_all_the_same(plans, redis_conn):
    """The header timeout bounds the whole header, not the gap between two bytes."""
    async with serving(plans, web_header_timeout_seconds=SHORT) as server:
        reader, writer = await connect(server)
        closing = asyncio.create_task(closed_within_deadline(reader))
        trickle = b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n" + b"X-Padding: " + b"a" * 4000
        for byte in trickle:
            if closing.done() or writer.is_closing():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(SHORT / 10)  # the slow client's pace: well inside the timeout for each byte
        assert await closing == b""
        writer.close()


async def test_a_declared_body_that_does_not_come_gets_408_and_a_closed_connection(plans, redis_conn):
    """The issue's case: 100 kB declared, 2 bytes sent."""
    async with serving(plans, web_header_timeout_seconds=LONG, web_body_timeout_seconds=SHORT) as server:
        reader, writer = await connect(server)
        writer.write(post_head(100_000) + b'{"')
        answer = await closed_within_deadline(reader)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b'"request_timeout"' in answer, "the admin API's own JSON error"
        assert server.guard.reading(HOST) == 0
        writer.close()


async def test_one_address_holds_at_most_n_connections_still_sending(plans, redis_conn):
    async with serving(plans, web_header_timeout_seconds=LONG, web_max_slow_connections_per_ip=2) as server:
        slow = [await connect(server) for _ in range(2)]
        for _, writer in slow:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n")
        await holding(server, 2)

        extra_reader, extra_writer = await connect(server)
        refused = await closed_within_deadline(extra_reader)
        assert refused.startswith(b"HTTP/1.1 503 "), refused[:80]
        assert await healthz_from(server, OTHER_HOST) == 200, "another address is served meanwhile"

        first_reader, first_writer = slow[0]
        first_writer.write(b"\r\n")
        assert await read_response(first_reader) == 200, "the slow ones within their time are served"
        await holding(server, 1)
        assert await healthz_from(server, HOST) == 200, "a freed slot takes a new connection"
        for _, writer in (*slow, (extra_reader, extra_writer)):
            writer.close()


async def test_kept_alive_idle_connections_hold_no_slot_and_their_next_request_is_timed(plans, redis_conn):
    async with serving(plans, web_header_timeout_seconds=SHORT, web_max_slow_connections_per_ip=1) as server:
        kept_reader, kept_writer = await connect(server)
        kept_writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        assert await read_response(kept_reader) == 200
        await holding(server, 0)
        assert await healthz_from(server, HOST) == 200, "the idle kept-alive connection does not count"

        kept_writer.write(b"GET /healthz HTTP/1.1\r\n")  # a second request on it that stalls
        assert await closed_within_deadline(kept_reader) == b""
        kept_writer.close()


async def test_a_trusted_proxy_is_never_refused_for_its_count(plans, redis_conn):
    """Behind a proxy every connection's peer is the proxy: refusing it would refuse every client."""
    async with serving(plans, web_header_timeout_seconds=LONG, web_max_slow_connections_per_ip=1,
                       trusted_proxies=[HOST]) as server:
        connections = [await connect(server) for _ in range(3)]
        for _, writer in connections:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n")
        await holding(server, 3)
        for reader, writer in connections:
            writer.write(b"Connection: close\r\n\r\n")
            assert await read_response(reader) == 200
            writer.close()


async def test_a_slow_but_progressing_client_within_the_limits_is_served(plans, redis_conn):
    body = INVOICE[:-1] + b" " * 4000 + INVOICE[-1:]  # JSON allows the padding: a few kilobytes, in pieces
    head = post_head(len(body))
    async with serving(plans, web_header_timeout_seconds=5, web_body_timeout_seconds=5,
                       web_max_slow_connections_per_ip=1) as server:
        reader, writer = await connect(server)
        for piece in (head[:20], head[20:60], head[60:], *(body[n:n + 500] for n in range(0, len(body), 500))):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)  # the slow client's pace: a fraction of either timeout in all
        assert await status_of(reader) == 201
        answer = await closed_within_deadline(reader)
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == "pending"
        writer.close()


def test_addresses_count_as_one_client_per_ip_and_per_ipv6_network():
    assert address_key(("203.0.113.9", 4431)) == "203.0.113.9"
    assert address_key(("::ffff:203.0.113.9", 4431, 0, 0)) == "203.0.113.9"
    assert address_key(("2001:db8:1:2::1", 1, 0, 0)) == address_key(("2001:db8:1:2:ffff::9", 2, 0, 0))
    assert address_key(("2001:db8:1:2::1", 1, 0, 0)) != address_key(("2001:db8:1:3::1", 1, 0, 0))


@pytest.fixture
async def web_process(redis_conn) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """serve_web (what `ymds web` runs) in its own process on a free port, answering /healthz."""
    port = free_port()
    environment = {**os.environ, "ENVIRONMENT": "development", "ADMIN_API_TOKEN": ADMIN_TOKEN,
                   "LINK_SECRET": "test-link-secret", "MONGODB_URI": "memory://", "REDIS_URL": REDIS_TEST_URL,
                   "PLANS_FILE": str(ROOT / "plans.toml"), "WEB_HOST": HOST, "WEB_PORT": str(port),
                   "WEB_HEADER_TIMEOUT_SECONDS": str(SHORT)}
    script = ("from settings import Settings; from webhook_server.app import create_app; "
              "from webhook_server.runner import serve_web; settings = Settings(_env_file=None); "
              "serve_web(create_app(settings), settings)")
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT, env=environment)
    try:
        await wait_ready(f"http://{HOST}:{port}/healthz")
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_web_drops_half_sent_headers_and_stops_cleanly_on_sigterm(web_process):
    process, port = web_process
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n")
    assert await closed_within_deadline(reader) == b""
    writer.close()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), DEADLINE_SECONDS * 3) == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make test certificates")
async def test_over_tls_a_stalled_handshake_and_half_sent_headers_are_dropped(tmp_path, plans, redis_conn):
    cert, key = make_certificate(tmp_path, "slow")
    settings = make_settings(web_host=HOST, web_port=0, web_header_timeout_seconds=SHORT)
    server = await start_web(create_app(settings, plans=plans), settings, ssl_context=ReloadableTLS(cert, key).context)
    try:
        silent_reader, silent_writer = await connect(server)  # TCP only: its TLS handshake never starts
        assert await closed_within_deadline(silent_reader) == b""

        reader, writer = await asyncio.open_connection(HOST, server.port, ssl=ssl.create_default_context(
            cafile=str(cert)))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        assert await read_response(reader) == 200, "a whole request over TLS is served"
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        assert await closed_within_deadline(reader) == b""
        for stream in (silent_writer, writer):
            stream.close()
    finally:
        await server.runner.cleanup()
