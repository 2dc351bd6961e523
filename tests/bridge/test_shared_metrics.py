"""The summed metrics of --workers N (streams.bridge.shared_metrics), without processes."""

from __future__ import annotations

from pathlib import Path

from streams.bridge.metrics import Metrics
from streams.bridge.shared_metrics import SharedMetrics

GAUGES = {
    "bridge_broker_reachable": 1.0,
    "bridge_schemas_registered": 1.0,
    "bridge_producer_queue_length": 2.0,
}


def _metrics(accepted: int, latency: float) -> Metrics:
    m = Metrics()
    m.requests["accepted"] += accepted
    m.count_event_type("customer.deleted")
    m.request_latency.observe(latency)
    m.in_flight = 1
    return m


def test_sum_over_workers_and_gauges(tmp_path: Path) -> None:
    one, two = SharedMetrics(tmp_path, 0), SharedMetrics(tmp_path, 1)
    m1, m2 = _metrics(3, 0.002), _metrics(4, 0.2)
    two.write(m2, {**GAUGES, "bridge_broker_reachable": 0.0})
    total, gauges = one.combined(m1, GAUGES)
    assert total.requests["accepted"] == 7
    assert total.event_types["customer.deleted"] == 2
    assert total.request_latency.count == 2
    assert abs(total.request_latency.sum - 0.202) < 1e-9
    assert total.in_flight == 2
    assert gauges["bridge_producer_queue_length"] == 4.0  # summed
    assert gauges["bridge_broker_reachable"] == 0.0  # only when every worker reaches it
    assert gauges["bridge_workers"] == 2.0
    text = total.render(gauges)
    assert 'bridge_requests_total{outcome="accepted"} 7.0' in text
    assert "bridge_workers 2.0" in text


def test_restarted_worker_goes_on_from_its_predecessor(tmp_path: Path) -> None:
    SharedMetrics(tmp_path, 0).write(_metrics(5, 0.01), GAUGES)
    successor = Metrics()
    SharedMetrics(tmp_path, 0).resume(successor)
    assert successor.requests["accepted"] == 5
    assert successor.request_latency.count == 1
    assert successor.in_flight == 0  # those requests died with the predecessor
