"""What the ingester reports: Prometheus metrics for operators, running figures for benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from stellara_contracts import topics
from stellara_kit.runtime import ServiceRuntime
from usage_svc.ingest.classify import REASONS


@dataclass
class IngestStats:
    """Running figures of this process's ingester (for benchmarks and operators)."""

    records_committed: int = 0
    events_accepted: int = 0
    batches_committed: int = 0
    first_fetch_at: float | None = None  # time.perf_counter() of the first fetched batch
    last_commit_at: float | None = None
    # where the time goes (seconds, summed over batches)
    prepare_seconds: float = 0.0  # decoding and classifying (this process's CPU)
    store_seconds: float = 0.0  # the database transaction folding a batch
    commit_seconds: float = 0.0  # dead letters acknowledged and offsets committed


class IngestMetrics:
    def __init__(self, runtime: ServiceRuntime) -> None:
        registry = runtime.registry
        self.events = Counter(
            "stellara_usage_events_total",
            "Usage records consumed, by outcome (accepted, duplicate, dead_lettered, ignored)",
            ["outcome"],
            registry=registry,
        )
        self.batches = Histogram(
            "stellara_usage_batch_seconds",
            "Time from fetching a batch to committing its offsets",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "stellara_usage_batch_records",
            "Records per ingested batch",
            registry=registry,
            buckets=(1, 10, 100, 1000, 5000, 10_000, 20_000, 50_000, 100_000),
        )
        self.alerts = Counter(
            "stellara_usage_alerts_total",
            "Quota alerts raised, by threshold",
            ["threshold"],
            registry=registry,
        )
        self.dead_lettered = runtime.consumer_metrics.dead_lettered
        for reason in REASONS:  # every reason listed from the start, at 0
            self.dead_lettered.labels(topic=topics.USAGE_RECORDED, reason=reason)
