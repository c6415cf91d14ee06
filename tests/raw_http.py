"""HTTP/1.1 requests as raw bytes on a socket: header values that no HTTP client library would send (invalid
UTF-8, stray bytes), to a TestServer on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp.test_utils import TestClient


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(client: TestClient, method: str, target: str, headers: dict[str, bytes | str],
                      body: bytes = b"") -> RawAnswer:
    """One request, written byte for byte (Host, Content-Length and Connection: close added), and its answer."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
             b"Content-Length: " + str(len(body)).encode()]
    lines += [name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
              for name, value in headers.items()]
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()  # the server closes the connection after its answer
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return RawAnswer(int(status_line.split(" ")[1]), {k.lower(): v for k, v in fields.items()}, payload)
