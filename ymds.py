"""The `ymds` command: demo, web, bot, worker, simulate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from pydantic import ValidationError

import config_check
import logs
from billing.errors import BillingError
from billing.plans import Catalogue, load_plans
from settings import ConfigError, Settings
from webhook_server.emulators import EMULATORS

log = logging.getLogger("ymds")
MEMORY = "memory://"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure()
    try:
        return int(args.command(args) or 0)
    except (ConfigError, BillingError) as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ymds", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="everything in one process on embedded defaults, with emulators")
    demo.add_argument("--host", default=None)
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--clock-speed", type=_positive_float, default=1.0, metavar="FACTOR",
                      help="run the service's clock FACTOR times faster (86400: a day a second) to watch renewals")
    demo.set_defaults(command=cmd_demo)
    web = sub.add_parser("web", help="the HTTP server (WEB_PROCESSES processes on one port)")
    web.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # one of WEB_PROCESSES' children
    web.set_defaults(command=cmd_web)
    sub.add_parser("bot", help="the Telegram bot").set_defaults(command=cmd_bot)
    worker = sub.add_parser("worker", help="an RQ worker")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    worker.set_defaults(command=cmd_worker)
    sub.add_parser("scheduler", help="the renewal scheduler (one instance works at a time)").set_defaults(
        command=cmd_scheduler)
    simulate = sub.add_parser("simulate", help="send a correctly signed provider notification to a running server")
    simulate.add_argument("provider", choices=sorted(EMULATORS))
    simulate.add_argument("event", help="what happens: " + "; ".join(
        f"{name}: {', '.join(module.EVENTS)}" for name, module in sorted(EMULATORS.items())))
    simulate.add_argument("--invoice", required=True, metavar="LABEL")
    simulate.add_argument("--url", default=None, help="server base URL (default PUBLIC_BASE_URL)")
    simulate.add_argument("--amount", default=None, help="amount paid, e.g. 299.00 (default: the invoice's)")
    simulate.set_defaults(command=cmd_simulate)
    events = sub.add_parser("events", help="list the outbound events (EVENTS_URL); `ymds events replay` sends "
                                           "them again under the same ids")
    events.add_argument("action", nargs="?", choices=["list", "replay"], default="list")
    events.add_argument("--since", type=_iso_time, default=None, metavar="ISO",
                        help="only events recorded at or after this time, e.g. 2026-12-01T00:00:00Z")
    events.add_argument("--event", default=None, metavar="ID", help="only this event (replay)")
    events.add_argument("--failed", action="store_true", help="only the events given up on")
    events.set_defaults(command=cmd_events)
    jobs = sub.add_parser("jobs", help="list failed jobs; `ymds jobs requeue ID... | --all` sends them round again")
    jobs.add_argument("action", nargs="?", choices=["list", "requeue"], default="list")
    jobs.add_argument("ids", nargs="*", metavar="JOB_ID")
    jobs.add_argument("--all", action="store_true", help="with requeue: every failed job")
    jobs.set_defaults(command=cmd_jobs)
    check = sub.add_parser("check-config", help="validate settings, list enabled providers, check MongoDB and Redis")
    check.add_argument("--offline", action="store_true", help="do not try to reach MongoDB and Redis")
    check.set_defaults(command=cmd_check_config)
    fake = sub.add_parser("fake-telegram", help="a local fake Telegram Bot API; chat with the bot in a browser")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8081)
    fake.add_argument("--token", default=None, help="accept only this bot token (default: any well-formed one)")
    fake.add_argument("--chat", type=int, action="append", default=[], metavar="CHAT_ID",
                      help="a private supergroup where the bot is an admin (plans.toml chats); repeatable")
    fake.set_defaults(command=cmd_fake_telegram)
    reconcile = sub.add_parser("reconcile", help="ask a provider for a period's payments and record what the "
                               "ledger lacks (payme, stars: compare and print the mismatches)")
    reconcile.add_argument("provider", choices=["yoomoney", "yookassa", "cloudpayments", "click", "payme", "stars"])
    reconcile.add_argument("--from", dest="start", required=True, help="ISO date/date-time (UTC) or epoch ms")
    reconcile.add_argument("--to", dest="end", required=True, help="end of the period, exclusive")
    reconcile.set_defaults(command=cmd_reconcile)
    extras = sub.add_parser("extras", help="payments for invoices another payment had claimed: list them, or mark "
                            "a manual refund done")
    extras.add_argument("action", nargs="?", choices=["list", "refunded"], default="list")
    extras.add_argument("ids", nargs="*", metavar="PROVIDER OPERATION_ID")
    extras.add_argument("--manual", action="store_true", help="with list: only those still to refund by hand")
    extras.set_defaults(command=cmd_extras)
    return parser


def cmd_reconcile(args: argparse.Namespace) -> int:
    if args.provider not in ("payme", "stars"):
        from webhook_server.commands import reconcile_with

        status, lines = reconcile_with(load_settings(), args.provider, args.start, args.end)
        for line in lines:
            print(line)
        return status
    if args.provider == "stars":
        from bot.stars_reconcile import run
    else:
        from billing.reconcile_payme import run

    status, lines = run(load_settings(), args.start, args.end)
    for line in lines:
        print(line)
    return status


def cmd_extras(args: argparse.Namespace) -> int:
    from webhook_server.commands import extra_refunded, list_extras

    settings = load_settings()
    if args.action == "refunded":
        if len(args.ids) != 2:
            print("usage: ymds extras refunded PROVIDER OPERATION_ID", file=sys.stderr)
            return 2
        if not extra_refunded(settings, *args.ids, by="ymds extras"):
            print(f"{args.ids[0]}:{args.ids[1]} is not an extra payment waiting for a manual refund", file=sys.stderr)
            return 1
        print(f"{args.ids[0]}:{args.ids[1]} marked refunded by hand")
        return 0
    for line in list_extras(settings, manual_only=args.manual):
        print(line)
    return 0


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as err:
        raise ConfigError(config_check.explain(err)) from None
    logs.configure(settings.secret_values(), log_format=settings.log_format)
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings()
    warnings = [*settings.validate_for_run(), *config_check.production_warnings(settings)]
    errors, more = config_check.yoomoney_confirmation(settings)
    warnings += more
    plans = load_plans(settings.plans_file)
    errors += config_check.receipt_problems(settings, plans)
    for warning in warnings:
        print(f"warning: {warning}")
    if errors:
        raise ConfigError("\n".join(errors))
    print(f"environment: {settings.environment.value}")
    print(f"plans: {', '.join(plans.names())} (from {settings.plans_file})")
    print(f"enabled providers: {', '.join(settings.enabled_providers) or 'none'}")
    print(f"events: {_events_target(settings)}")
    if not args.offline:
        problems = asyncio.run(config_check.unreachable_stores(settings))
        if problems:
            raise ConfigError("\n".join(problems))
        print("MongoDB and Redis answer")
    print("configuration OK")
    return 0


def _events_target(settings: Settings) -> str:
    """Where events go, scheme and host only (the owner may keep a token in the path or the query)."""
    if settings.events_url is None:
        return "off (EVENTS_URL unset)"
    parts = urlsplit(settings.events_url)
    return f"signed and sent to {parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _require_shared_stores(settings: Settings, service: str) -> None:
    for name, value in (("MONGODB_URI", settings.mongodb_uri), ("REDIS_URL", settings.redis_url)):
        if value == MEMORY:
            raise ConfigError(f"{name}: memory:// lives inside one process; `ymds {service}` needs a real server "
                              "(use `ymds demo` for the all-in-one setup)")


def cmd_web(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.validate_for_run()
    _require_shared_stores(settings, "web")
    plans = _plans_for_receipts(settings)  # refused here, before any child process starts
    if settings.web_processes > 1 and not args.reuse_port:
        from webhook_server.web_processes import supervise  # children run this command with --reuse-port

        return supervise(settings.web_processes)
    from webhook_server.app import create_app
    from webhook_server.runner import serve_web

    serve_web(create_app(settings, plans=plans), settings, reuse_port=args.reuse_port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from webhook_server.runner import run_worker

    settings = load_settings()
    settings.validate_for_run()
    _require_shared_stores(settings, "worker")
    run_worker(settings, _plans_for_receipts(settings), burst=args.burst)
    return 0


def _plans_for_receipts(settings: Settings) -> Catalogue:
    """The plans, once every provider with receipts on has what its receipts need (as check-config says)."""
    plans = load_plans(settings.plans_file)
    problems = config_check.receipt_problems(settings, plans)
    if problems:
        raise ConfigError("\n".join(problems))
    return plans


def cmd_scheduler(args: argparse.Namespace) -> int:
    from webhook_server.runner import run_scheduler_service

    settings = load_settings()
    settings.validate_for_run()
    _require_shared_stores(settings, "scheduler")
    run_scheduler_service(settings)
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("give a finite number above 0, e.g. 86400 for a day a second")
    return value


def _iso_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cmd_events(args: argparse.Namespace) -> int:
    from webhook_server.commands import list_events, replay_events

    settings = load_settings()
    if args.action == "replay":
        lines = replay_events(settings, since=args.since, event_id=args.event, failed_only=args.failed)
        if args.event is not None and lines[-1].startswith("0 "):
            print(f"no event {args.event} to send again (`ymds events` lists them)", file=sys.stderr)
            return 1
    else:
        lines = list_events(settings, since=args.since, failed_only=args.failed)
    for line in lines:
        print(line)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from rq_access import connect, failed_jobs, requeue_failed

    settings = load_settings()
    if settings.redis_url == MEMORY:
        raise ConfigError("REDIS_URL: memory:// lives inside one process; `ymds jobs` needs the real Redis")
    connection = connect(settings.redis_url)
    if args.action == "requeue":
        if not args.ids and not args.all:
            print("name the jobs to requeue, or pass --all", file=sys.stderr)
            return 2
        requeued = requeue_failed(connection, None if args.all else args.ids)
        for job_id in requeued:
            print(f"requeued {job_id}")
        missing = sorted(set(args.ids) - set(requeued))
        for job_id in missing:
            print(f"not in the failed-job registry: {job_id}", file=sys.stderr)
        return 1 if missing else 0
    failed = failed_jobs(connection)
    for job in failed:
        print(f"{job.id}  {job.queue}  {job.ended_at}  {job.description}\n    {job.error}")
    print(f"{len(failed)} failed job(s)")
    return 0


def cmd_bot(args: argparse.Namespace) -> int:
    from bot.main import run_polling

    settings = load_settings()
    settings.validate_for_run()
    if settings.webhook_mode:
        log.info("WEBHOOK_MODE is on: `ymds web` serves the bot at POST /telegram/webhook; nothing to run here")
        return 0
    if settings.bot_token is None:
        raise ConfigError("BOT_TOKEN: the bot needs its token from @BotFather")
    _require_shared_stores(settings, "bot")
    asyncio.run(run_polling(settings, load_plans(settings.plans_file)))
    return 0


def cmd_fake_telegram(args: argparse.Namespace) -> int:
    from aiohttp import web

    from webhook_server.emulators.telegram import FakeTelegram

    base = f"http://{args.host}:{args.port}"
    announce = (f"fake Telegram Bot API on {base}\n  chat with the bot in a browser: {base}/\n"
                f"  run the bot against it: TELEGRAM_API_URL={base} BOT_TOKEN=123456:ABC ymds demo")
    telegram = FakeTelegram(token=args.token)
    for chat_id in args.chat:
        telegram.groups.add_chat(chat_id, f"Private chat {chat_id}")
    if args.chat:
        announce += f"\n  join a chat through an invite link the bot sent: POST {base}/fake/join chat_id, user_id, link"
    web.run_app(telegram.app(), host=args.host, port=args.port,
                print=lambda _: print(announce, flush=True))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aiohttp import web

    from webhook_server.demo import DemoAddress, build_demo_app, print_welcome, with_demo_values

    base = load_settings()
    address = DemoAddress(args.host or base.web_host, args.port if args.port is not None else base.web_port)
    settings = with_demo_values(base, address)
    logs.configure(settings.secret_values(), log_format=settings.log_format)
    for warning in settings.validate_for_run():
        log.warning("%s", warning)
    plans = load_plans(settings.plans_file)
    app = build_demo_app(settings, plans, clock_speed=args.clock_speed)
    web.run_app(app, host=address.host, port=address.port, print=lambda _: print_welcome(app))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from webhook_server.demo import DemoAddress, with_demo_values

    emulator = EMULATORS[args.provider]
    if args.event not in emulator.EVENTS:
        print(f"unknown event {args.event!r} for {args.provider}; choose from {', '.join(emulator.EVENTS)}",
              file=sys.stderr)
        return 2
    base = load_settings()
    settings = with_demo_values(base, DemoAddress(base.web_host, base.web_port))
    url = (args.url or settings.public_base_url).rstrip("/")

    async def send() -> int:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            status: int = await emulator.simulate(settings, session, url, args.event, args.invoice, args.amount)
            return status

    status = asyncio.run(send())
    print(f"{args.provider} {args.event} for {args.invoice}: server answered HTTP {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
