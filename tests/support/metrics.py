"""Reading metrics in tests: compare before and after (the registry is process-global)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from memlayer.metrics import current

__all__ = ["current", "metric"]


def metric(name: str, **labels: str) -> float:
    """Current value of one sample, by its exposition name and labels (0 if never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
