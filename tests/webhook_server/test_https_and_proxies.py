"""HTTPS served by us (with SIGHUP certificate reload) and X-Forwarded-For believed only from TRUSTED_PROXIES."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.app import create_app
from webhook_server.client_ip import client_ip, parse_networks
from webhook_server.tls import ReloadableTLS

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1"])


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_ip("203.0.113.9", "185.71.76.1", PROXIES) == "203.0.113.9"
    assert client_ip("127.0.0.1", "185.71.76.1", []) == "127.0.0.1"


def test_the_client_is_the_first_hop_our_proxies_did_not_add():
    assert client_ip("127.0.0.1", "185.71.76.1", PROXIES) == "185.71.76.1"
    assert client_ip("127.0.0.1", "6.6.6.6, 185.71.76.1, 10.1.2.3", PROXIES) == "185.71.76.1"
    assert client_ip("10.0.0.5", "10.0.0.6, 10.0.0.7", PROXIES) == "10.0.0.6"
    assert client_ip("127.0.0.1", "", PROXIES) == "127.0.0.1"


async def test_notification_routes_see_the_forwarded_client_only_behind_a_trusted_proxy(plans, redis_conn, caplog):
    caplog.set_level(logging.WARNING, logger="webhook_server.views.notify")
    for trusted, expected in (([], "127.0.0.1"), (["127.0.0.1"], "185.71.76.1")):
        app = create_app(make_settings(trusted_proxies=trusted), plans=plans)
        async with TestClient(TestServer(app)) as client:
            await client.post("/notify/yoomoney", data={"x": "1"}, headers={"X-Forwarded-For": "185.71.76.1"})
        assert f"from {expected} rejected" in caplog.text
        caplog.clear()


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def served_certificate(port: int, trust: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(trust))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 200")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return der


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make test certificates")
async def test_https_serves_the_certificate_and_reloads_it_on_sighup(tmp_path, plans, redis_conn):
    first_cert, first_key = make_certificate(tmp_path, "first")
    second_cert, second_key = make_certificate(tmp_path, "second")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(first_cert, live_cert)
    shutil.copy(first_key, live_key)
    bundle = tmp_path / "both.pem"
    bundle.write_bytes(first_cert.read_bytes() + second_cert.read_bytes())

    tls = ReloadableTLS(live_cert, live_key)
    tls.reload_on_sighup(asyncio.get_running_loop())
    runner = web.AppRunner(create_app(make_settings(), plans=plans))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.context).start()
    try:
        assert await served_certificate(port, bundle) == ssl.PEM_cert_to_DER_cert(first_cert.read_text())

        shutil.copy(second_cert, live_cert)
        shutil.copy(second_key, live_key)
        reloaded = asyncio.get_running_loop().create_future()
        original = tls.reload
        tls.reload = lambda: reloaded.set_result(original())  # type: ignore[method-assign]
        tls.reload_on_sighup(asyncio.get_running_loop())
        os.kill(os.getpid(), signal.SIGHUP)
        assert await asyncio.wait_for(reloaded, 10) is True
        tls.reload = original  # type: ignore[method-assign]
        assert await served_certificate(port, bundle) == ssl.PEM_cert_to_DER_cert(second_cert.read_text())

        shutil.copy(first_cert, live_cert)
        live_key.write_text("not a key")
        assert tls.reload() is False, "a broken renewal keeps the running certificate"
        assert await served_certificate(port, bundle) == ssl.PEM_cert_to_DER_cert(second_cert.read_text())
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await runner.cleanup()
