"""Reading metrics: one value of this process, or every sample of the whole service.

Prometheus scrapes ``/metrics`` for dashboards and alerts; this is for code that needs
numbers now (the cache's stats, the ops summary) and for tests that compare a counter
before and after. It goes through ``collect()``, the client library's public way to read
samples, not through private attributes.

"The service" is this process, or, under ``memlayer serve --workers N``, every worker of
it (``multiproc``): ``/metrics`` and the ops summary read the same samples.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.samples import Sample

from memlayer import multiproc


def current(metric: Counter | Gauge) -> float:
    """This process's value of a counter or gauge; for a labelled parent, the sum of children."""
    total = 0.0
    for family in metric.collect():
        wanted = f"{family.name}_total" if family.type == "counter" else family.name
        total += sum(sample.value for sample in family.samples if sample.name == wanted)
    return total


def service_registry() -> CollectorRegistry:
    """Where the service's metrics are read: every worker's files, or this process."""
    path = multiproc.metrics_dir()
    return REGISTRY if path is None else multiproc.aggregate_registry(path)


def service_samples() -> list[Sample]:
    """Every sample of the service, collected once."""
    return [sample for family in service_registry().collect() for sample in family.samples]


def sample_total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
