"""The bridge's metrics, exposed in the Prometheus text format (hand-written: no locks and no
label machinery on the hot path; everything is updated from the event loop only)."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

#: Outcomes of `POST /webhooks/voucherify` (the `outcome` label).
OUTCOMES = (
    "accepted",  # customer.deleted published and acknowledged
    "ignored",  # another event type, not published
    "routed_raw",  # another event type, published to the raw topic
    "unauthorized",  # signature missing or wrong
    "too_large",
    "unsupported_media_type",
    "malformed_json",
    "invalid_utf8",
    "invalid_payload",
    "unavailable",  # 503: broker unreachable, queue full, delivery failed, deadline
    "error",  # 500: a bug
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = []
        cumulative = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            cumulative += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.sum}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter({o: 0 for o in OUTCOMES})
        self.event_types: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.signature_fallbacks = 0
        self.in_flight = 0
        self.publish_latency = {
            "customer_deleted": Histogram(),
            "dead_letter": Histogram(),
            "raw": Histogram(),
        }
        self.request_latency = Histogram()

    def count_event_type(self, event_type: str) -> None:
        # Bounded label set: only a signed sender gets here, but keep the cardinality sane.
        if event_type in self.event_types or len(self.event_types) < 100:
            self.event_types[event_type] += 1
        else:
            self.event_types["other"] += 1

    def render(self, extra: dict[str, float] | None = None) -> str:
        lines = [
            "# HELP bridge_requests_total Webhook requests by outcome.",
            "# TYPE bridge_requests_total counter",
        ]
        lines += [
            f'bridge_requests_total{{outcome="{o}"}} {n}' for o, n in sorted(self.requests.items())
        ]
        lines += [
            "# HELP bridge_webhook_events_total Signed webhooks by event type.",
            "# TYPE bridge_webhook_events_total counter",
        ]
        lines += [
            f'bridge_webhook_events_total{{type="{_escape(t)}"}} {n}'
            for t, n in sorted(self.event_types.items())
        ]
        lines += [
            "# HELP bridge_dead_letters_total Requests published to the dead-letter topic.",
            "# TYPE bridge_dead_letters_total counter",
        ]
        lines += [
            f'bridge_dead_letters_total{{reason="{r}"}} {n}'
            for r, n in sorted(self.dead_letters.items())
        ]
        lines += [
            "# HELP bridge_signature_whitespace_fallbacks_total Signatures that matched only "
            "the whitespace-stripped body.",
            "# TYPE bridge_signature_whitespace_fallbacks_total counter",
            f"bridge_signature_whitespace_fallbacks_total {self.signature_fallbacks}",
            "# HELP bridge_requests_in_flight Webhook requests being handled.",
            "# TYPE bridge_requests_in_flight gauge",
            f"bridge_requests_in_flight {self.in_flight}",
            "# HELP bridge_publish_latency_seconds From produce to broker acknowledgement.",
            "# TYPE bridge_publish_latency_seconds histogram",
        ]
        for kind, hist in self.publish_latency.items():
            lines += hist.render("bridge_publish_latency_seconds", f'kind="{kind}"')
        lines += [
            "# HELP bridge_request_latency_seconds Webhook handling time, body read to answer.",
            "# TYPE bridge_request_latency_seconds histogram",
        ]
        lines += self.request_latency.render("bridge_request_latency_seconds")
        for name, value in (extra or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
