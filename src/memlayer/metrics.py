"""Reading a metric's current value in this process.

Prometheus scrapes ``/metrics`` for dashboards and alerts; this is for code that needs
one number now (the cache's stats, the ops summary) and for tests that compare a
counter before and after. It goes through ``collect()``, the client library's public
way to read samples, not through private attributes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge


def current(metric: Counter | Gauge) -> float:
    """The value of a counter or gauge; for a labelled parent, the sum over its children."""
    total = 0.0
    for family in metric.collect():
        wanted = f"{family.name}_total" if family.type == "counter" else family.name
        total += sum(sample.value for sample in family.samples if sample.name == wanted)
    return total
