"""`python -m bench` prints every figure it promises (bench/README.md), with a small load: a guard against the
command rotting between the runs that publish its figures. The figures themselves are not asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import redis

from bench.deployment import ROOT
from tests.conftest import REDIS_TEST_URL

PAYMENTS = 40
NUMBER = r"[\d,.]+"


def test_the_bench_command_prints_every_figure(redis_conn: redis.Redis):
    run = subprocess.run([sys.executable, "-m", "bench", "--requests", str(PAYMENTS), "--redis-url", REDIS_TEST_URL],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for load in ("hello-world, 32 clients", "floor (1 insert, 1 find, 1 RQ enqueue)",
                 "POST /notify/yoomoney, 32 clients", "POST /notify/yoomoney, 2 web processes, 32 clients",
                 "POST /notify/yoomoney at ",
                 "open-ymds: Payme CheckPerformTransaction", "open-ymds: Payme CreateTransaction",
                 "open-ymds: Payme PerformTransaction"):
        assert re.search(rf"\| {re.escape(load)}.* \| {NUMBER}/s \| {NUMBER} ms \| {NUMBER} ms \| 0 \| {NUMBER} ms",
                         out), f"no figures for {load!r}:\n{out}"
    assert "paytechuz" in out, "the comparison, or a line saying the [bench] extra is not installed"
    assert re.search(rf"RQ's own no-op job .*: {NUMBER} ms of CPU each", out)
    assert re.search(rf"Database commands per notification .*: {NUMBER} \(.*per payment .*: {NUMBER} \(.*find", out)
    assert re.search(rf"Redis commands per notification .*: {NUMBER} \(.*per payment, end to end: {NUMBER} \(", out)
    for target in ("`POST /notify/yoomoney` web CPU per request", "Payme Check / Create / Perform",
                   "worker CPU per payment", "database commands per payment", "peak RSS web / worker / bot",
                   "p99 under an open loop"):
        assert re.search(rf"\| {re.escape(target)}.* \| (yes|no) \|", out), f"no target row {target!r}:\n{out}"
    for workers in (1, 2):
        assert re.search(rf"\| {workers} × `ymds worker` \| {PAYMENTS} \| {NUMBER}/s \| {PAYMENTS} \| {NUMBER}/s \| "
                         rf"{PAYMENTS} \|", out), f"every payment active and told with {workers} worker(s):\n{out}"
    for process in ("`ymds web`", "`ymds worker` (the largest)", "`ymds bot`", "the database stand-in"):
        assert re.search(rf"\| {re.escape(process)}.* \| \d+ MB \|", out), f"no peak RSS for {process}:\n{out}"


def test_the_dashboard_bench_prints_every_page_against_its_target(redis_conn: redis.Redis):
    run = subprocess.run([sys.executable, "-m", "bench.dashboard", "--payments", "200", "--idle-seconds", "1",
                          "--redis-url", REDIS_TEST_URL], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for page in ("overview", "payments, first page", "payments, 300 days back", "invoices, first page",
                 "a subscriber's page", "find by invoice label", "renewals in dunning", "payments CSV, one day"):
        row = rf"\| {re.escape(page)} \| {NUMBER} ms \| {NUMBER} ms \| {NUMBER} ms \| {NUMBER} ms \| ({NUMBER}×|—) \| "
        assert re.search(row + r"≤ 1.5× \| (yes|no|—)", run.stdout), f"no figures for {page!r}:\n{run.stdout}"
