"""GET /metrics: Prometheus text an operator can scrape, with figures that follow what happened."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.billing.test_fulfilment import crash_at
from tests.helpers import new_invoice, notification, post_notification


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


async def test_metrics_count_notifications_and_read_the_stores(client, worker, clock):
    paid = await new_invoice(client, user_id=61)
    await post_notification(client, notification(paid["label"]))
    await post_notification(client, {**notification(paid["label"]), "sha1_hash": "0" * 40})
    await post_notification(client, notification("inv_unknown"))
    crashing = await new_invoice(client, user_id=62)
    await post_notification(client, notification(crashing["label"], operation_id="crash-1"))
    before = await scrape(client)
    assert before[("ymds_queue_depth", (("queue", "ymds-fulfilment"),))] == 2

    await worker.drain()
    worker.runtime.checkpoint = crash_at("after_ledger_insert")
    crashed = await new_invoice(client, user_id=63)
    await post_notification(client, notification(crashed["label"], operation_id="crash-2"))
    await worker.drain()

    figures = await scrape(client)
    notifications = {labels: value for (name, labels), value in figures.items() if name == "ymds_notifications_total"}
    assert notifications == {
        (("outcome", "accepted"), ("provider", "yoomoney")): 3,
        (("outcome", "bad_signature"), ("provider", "yoomoney")): 1,
        (("outcome", "unknown_label"), ("provider", "yoomoney")): 1,
    }, "each notification pays its own invoice: none is extra"
    assert figures[("ymds_active_subscriptions", ())] == 2
    assert figures[("ymds_queue_depth", (("queue", "ymds-fulfilment"),))] == 0
    assert figures[("ymds_failed_jobs", (("queue", "ymds-fulfilment"),))] == 1
    assert figures[("ymds_fulfilments_last_hour", ())] == 2
    assert ("ymds_fulfilment_latency_seconds", (("quantile", "0.99"),)) in figures
