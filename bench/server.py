"""The hello-world server the benchmark compares our routes with: a minimal aiohttp route in its own process.

    python -m bench.server --port 8200
"""

from __future__ import annotations

import argparse

from aiohttp import web


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="OK")

    app = web.Application()
    app.add_routes([web.post("/hello", hello)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(hello_app(), host="127.0.0.1", port=args.port, access_log=None,
                print=lambda _: print("ready", flush=True))


if __name__ == "__main__":
    main()
