"""The usage decoder alone, next to a bare ``orjson.loads`` of the same records.

``UsageRecordParser.parse`` reads what the UsageRecorded JSON Schema accepts
(see ``services/usage-svc/tests/test_decoding_contract.py``); this measures
what that strictness costs an event beyond parsing the JSON. Two shapes of
traffic: timestamps shared by many events (a producer's batch of one moment,
as ``bench/usage_ingest.py`` sends), and a distinct timestamp per event (the
gateway's metering, microseconds apart). CPU only, no Kafka or PostgreSQL:

    uv run python bench/usage_decoding.py          # BENCH_EVENTS=200000 by default
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))

from usage_ingest import usage_json

from usage_svc.ingest.decoding import UsageRecordParser

N = int(os.environ.get("BENCH_EVENTS", "200000"))
ROUNDS = 7
METRICS = ("api_calls", "storage_gb", "active_users", "workflow_runs", "seats")


def records(distinct_stamps: bool) -> list[bytes]:
    rng = random.Random(7)
    tenants = [str(uuid.uuid4()) for _ in range(1000)]
    shared = [f"2026-12-03T10:{m:02d}:{s:02d}Z" for m in range(10) for s in range(60)]
    out = []
    for i in range(N):
        metric = METRICS[i % len(METRICS)]
        props = {"route": "/tenants/{id}", "status": 200} if metric == "api_calls" else None
        stamp = (
            f"2026-12-03T10:{(i // 60_000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 10**6:06d}Z"
            if distinct_stamps
            else shared[i % len(shared)]
        )
        out.append(usage_json(rng.choice(tenants), metric, rng.randrange(1, 10**7), stamp, props))
    return out


def best_of(label: str, make: Callable[[], Callable[[bytes], object]], batch: list[bytes]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        handle = make()
        started = time.perf_counter()
        for raw in batch:
            handle(raw)
        best = min(best, time.perf_counter() - started)
    per_event = best / len(batch) * 1e6
    print(f"  {label:<32} {per_event:6.2f} µs/event  {len(batch) / best:>10,.0f} events/s")
    return per_event


def main() -> None:
    gc.disable()  # the ingester's batches keep the collector out of the way too
    for distinct in (False, True):
        batch = records(distinct)
        print(f"{N:,} events, {'a distinct timestamp each' if distinct else '600 timestamps'}:")
        bare = best_of("orjson.loads", lambda: orjson.loads, batch)
        parsed = best_of("UsageRecordParser.parse", lambda: UsageRecordParser().parse, batch)
        print(f"  the contract's checks: {parsed - bare:.2f} µs/event beyond the JSON parse")


if __name__ == "__main__":
    main()
