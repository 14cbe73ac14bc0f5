"""Seeded, randomized fault schedules under a steady mixed load, every invariant checked.

Run by ``make test-faults`` (and CI after ``make test``), not by ``make test``: the file
name keeps it out of the default collection.

The whole system runs as real processes (the ``system`` fixture of ``tests/conftest.py``)
on a Kafka broker and a PostgreSQL of the suite's own (``infra.py``), each behind a
Toxiproxy proxy, so the broker and the database can be killed and restarted and the
network between them and the services degraded, without touching the shared servers
other tests use. Each schedule runs on tenants of its own while the load runs:
usage over HTTP through the gateway (with refused events mixed in) and straight to
Kafka, tenant creations, configuration writes and invitations. Then its faults, one
after the other, each followed by a wait until the system answers again (its recovery
time); then the load stops and the invariants are checked on that schedule's data.

``FAULTS_SEED`` fixes the seed every schedule derives from (printed, so a failing run
can be replayed exactly); ``FAULTS_SCHEDULES`` sets how many schedules run (12).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from stellara_kit.testing import Infrastructure

from ..conftest import JWT_SECRET, System
from . import checks
from .infra import FaultInfra, say, start_infra
from .load import BaseTenant, Load, Tokens

SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1, 2**31))
SCHEDULES = int(os.environ.get("FAULTS_SCHEDULES", "12"))
SERVICES = ("gateway", "tenant-svc", "usage-svc", "onboarding-svc")
PROXIES = ("kafka", "postgres")
NETWORK = ("latency", "bandwidth", "reset", "partition")
KINDS = (
    *(f"kill {s}" for s in SERVICES),
    *(f"stop {s}" for s in SERVICES),
    "restart kafka",
    "restart postgres",
    "restart stack",
    *(f"{n} {p}" for p in PROXIES for n in NETWORK),
)
RECOVERY_TIMEOUT = 120.0
REPORT = Path(
    os.environ.get("FAULTS_REPORT")
    or Path(__file__).parents[2] / ".stellara" / "faults-report.json"
)


@dataclass
class Fault:
    kind: str
    gap: float  # load before the fault
    duration: float  # how long it lasts (down, stopped, degraded)
    attributes: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.attributes.items())
        return f"{self.kind} for {self.duration:.1f} s{extra}"


@dataclass
class Schedule:
    index: int
    seed: int
    faults: list[Fault]

    @property
    def name(self) -> str:
        """``f<FAULTS_SEED>s<index>``: names its tenants, slugs and addresses too."""
        return f"f{self.seed // 1000}s{self.index}"


def build_schedules(seed: int, count: int) -> list[Schedule]:
    """Every fault kind in some schedule of each run (dealt from a seeded shuffle), two or
    three faults a schedule, their order, gaps, lengths and strengths drawn from its seed."""
    dealer = random.Random(seed)
    deck = list(KINDS)
    dealer.shuffle(deck)
    while len(deck) < 2 * count:
        deck.append(dealer.choice(KINDS))
    schedules = []
    for index in range(count):
        own_seed = seed * 1000 + index
        rng = random.Random(own_seed)
        kinds = deck[2 * index : 2 * index + 2]
        if rng.random() < 0.25:
            kinds.append(rng.choice(KINDS))
        faults = []
        for kind in kinds:
            attributes: dict[str, int] = {}
            if kind.startswith("latency"):
                attributes = {"latency": rng.randrange(200, 1500), "jitter": rng.randrange(0, 300)}
            elif kind.startswith("bandwidth"):
                attributes = {"rate": rng.randrange(8, 64)}  # KB/s
            elif kind.startswith("reset"):
                attributes = {"timeout": rng.randrange(0, 500)}
            duration = rng.uniform(2.0, 5.0)
            if kind.startswith(("stop", "partition")) and rng.random() < 0.4:
                duration = rng.uniform(10.5, 12.0)  # beyond the gateway's 10 s timeouts
            faults.append(
                Fault(kind, round(rng.uniform(1.0, 2.5), 1), round(duration, 1), attributes)
            )
        schedules.append(Schedule(index, own_seed, faults))
    return schedules


ALL_SCHEDULES = build_schedules(SEED, SCHEDULES)
RESULTS: list[dict[str, Any]] = []


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fault_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultInfra]:
    print(f"\nFAULTS_SEED={SEED} ({SCHEDULES} schedules; replay with FAULTS_SEED={SEED})")
    infra = start_infra(tmp_path_factory.mktemp("faults"))
    try:
        yield infra
    finally:
        infra.close()


@pytest.fixture(scope="module")
def infrastructure(fault_infra: FaultInfra) -> Infrastructure:
    """What the ``system`` fixture builds the services on: the proxies' addresses."""
    return Infrastructure(fault_infra.kafka_bootstrap, fault_infra.pg_admin_url, "faults")


@pytest.fixture(scope="module")
def report() -> Iterator[list[dict[str, Any]]]:
    yield RESULTS
    REPORT.write_text(json.dumps({"seed": SEED, "schedules": RESULTS}, indent=2) + "\n")
    print(f"\nFAULTS_SEED={SEED}: {len(RESULTS)} schedules, report in {REPORT.resolve()}")
    for result in RESULTS:
        print(
            f"  {result['name']}: {'; '.join(result['faults'])} → recovered "
            f"{result['recovery_s']}, lag drained in {result['lag_drained_s']} s, "
            f"{'OK' if not result['broken'] else 'BROKEN: ' + ' | '.join(result['broken'])}"
        )


@dataclass
class Harness:
    system: System
    infra: FaultInfra
    tokens: Tokens
    databases: checks.Databases
    wrapped_batches: bool


@pytest_asyncio.fixture(scope="module")
async def harness(system: System, fault_infra: FaultInfra) -> AsyncIterator[Harness]:
    from stellara_kit.auth import UserTokenSettings

    defaults = UserTokenSettings()
    tokens = Tokens(JWT_SECRET, defaults.jwt_audience, defaults.jwt_issuer)
    base = system.topic_prefix[1:-1]
    databases = checks.Databases(
        {
            package: f"postgresql://127.0.0.1:{fault_infra.stack.config.pg_port}/sys_{base}_{package}"
            for package in ("tenant_svc", "usage_svc", "onboarding_svc")
        }
    )
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as http:
        spec = (await http.get("/openapi.json")).json()
    yield Harness(system, fault_infra, tokens, databases, _wants_wrapped_batches(spec))


def _wants_wrapped_batches(spec: dict[str, Any]) -> bool:
    """Whether the gateway takes usage as ``{"events": [...]}`` rather than a bare array."""
    operation = spec["paths"]["/usage/events"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    ref = schema.get("$ref", "")
    if ref:
        schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema.get("type") == "object" and "events" in schema.get("properties", {})


# ---------------------------------------------------------------------- faults
async def apply(fault: Fault, h: Harness) -> None:
    """Inflict the fault, wait its duration, heal it."""
    verb, target = fault.kind.split(" ", 1)
    system, infra = h.system, h.infra
    if verb == "kill" and target in SERVICES:
        service = system.services[target]
        await asyncio.to_thread(system.stop, service, kill=True)
        await asyncio.sleep(fault.duration)
        await asyncio.to_thread(system.start, service)
        await asyncio.to_thread(system.wait_ready, service, 90)
    elif verb == "stop":
        process = system.services[target].process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(fault.duration)
        finally:
            process.send_signal(signal.SIGCONT)
    elif fault.kind == "restart stack":
        # the whole system stopped the way an operator stops it (services first, then the
        # broker and the database, each shut down cleanly) and started again in order
        services = list(system.services.values())
        for service in services:
            await asyncio.to_thread(system.stop, service)
        await asyncio.to_thread(infra.stop_kafka)
        await asyncio.to_thread(infra.stop_postgres)
        await asyncio.sleep(fault.duration / 2)
        await asyncio.to_thread(infra.start_postgres)
        await asyncio.to_thread(infra.start_kafka)
        for service in services:
            await asyncio.to_thread(system.start, service)
        for service in services:
            await asyncio.to_thread(system.wait_ready, service, 90)
    elif fault.kind == "restart kafka":
        await asyncio.to_thread(infra.kill_kafka)
        await asyncio.sleep(fault.duration / 2)
        await asyncio.to_thread(infra.start_kafka)
    elif fault.kind == "restart postgres":
        await asyncio.to_thread(infra.kill_postgres)
        await asyncio.sleep(fault.duration / 2)
        await asyncio.to_thread(infra.start_postgres)
    elif verb == "partition":
        # nothing passes either way until it is removed (Toxiproxy drops what it holds back)
        infra.toxiproxy.add_toxic(target, "partition", "timeout", {"timeout": 0})
        await asyncio.sleep(fault.duration)
        infra.toxiproxy.reset()
    else:
        toxic = {"latency": "latency", "bandwidth": "bandwidth", "reset": "reset_peer"}[verb]
        infra.toxiproxy.add_toxic(target, verb, toxic, fault.attributes)
        await asyncio.sleep(fault.duration)
        infra.toxiproxy.reset()


async def recovered(h: Harness, load: Load, http: httpx.AsyncClient) -> bool:
    """The system answers again: every service ready, a usage batch acknowledged, a read."""
    for service in h.system.services.values():
        try:
            if (await http.get(f"{service.url}/readyz", timeout=3)).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    tenant = load.tenants[0]
    if not await load.send_usage(tenant, 1):
        return False
    try:
        read = await http.get(
            f"{h.system.gateway_url}/tenants/{tenant.id}", headers=h.tokens.admin(), timeout=5
        )
    except httpx.HTTPError:
        return False
    return read.status_code == 200


async def base_tenant(h: Harness, http: httpx.AsyncClient, slug: str) -> BaseTenant:
    admin = h.tokens.admin()
    created = await http.post(
        "/tenants", json={"name": f"Faults {slug}", "slug": slug, "plan": "pro"}, headers=admin
    )
    assert created.status_code == 201, created.text
    tenant = uuid.UUID(created.json()["id"])
    activated = await http.post(f"/tenants/{tenant}/activate", headers=admin)
    assert activated.status_code == 200, activated.text
    key = await http.post(
        f"/tenants/{tenant}/api-keys",
        json={"name": "faults load", "scopes": ["usage:write"]},
        headers=admin,
    )
    assert key.status_code == 201, key.text

    async def known_everywhere() -> bool:
        for path in (f"/tenants/{tenant}/onboarding-status", f"/tenants/{tenant}/usage"):
            if (await http.get(path, headers=admin)).status_code != 200:
                return False
        return True

    _, took = await checks.until(known_everywhere, lambda ok: ok, RECOVERY_TIMEOUT)
    assert took is not None, f"{slug} never reached onboarding-svc and usage-svc"
    return BaseTenant(tenant, slug, key.json()["secret"])


# ---------------------------------------------------------------------- the schedules
@pytest.mark.timeout(600)
@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=[s.name for s in ALL_SCHEDULES])
async def test_schedule(schedule: Schedule, harness: Harness, report: list[dict[str, Any]]) -> None:
    h = harness
    h.infra.toxiproxy.reset()
    say(
        f"schedule {schedule.name} (seed {schedule.seed}): "
        + "; ".join(f.describe() for f in schedule.faults)
    )
    findings = checks.Findings()
    async with httpx.AsyncClient(base_url=h.system.gateway_url, timeout=30) as http:
        tenants = [await base_tenant(h, http, f"{schedule.name}-b{i}") for i in range(2)]
        load = Load(
            name=schedule.name,
            gateway=h.system.gateway_url,
            direct_kafka=h.infra.direct_kafka,
            topic=f"{h.system.topic_prefix}usage.recorded",
            tokens=h.tokens,
            tenants=tenants,
            wrapped_batches=h.wrapped_batches,
        )
        # the API keys reach the gateway before the load starts
        _, ready = await checks.until(
            lambda: load.send_usage(tenants[0], 1), lambda ok: ok, RECOVERY_TIMEOUT
        )
        assert ready is not None, "the schedule's API key never worked"
        load.start()
        recovery: dict[str, float | None] = {}
        per_fault: list[dict[str, Any]] = []
        try:
            for fault in schedule.faults:
                await asyncio.sleep(fault.gap)
                say(f"  {fault.describe()}")
                before = dict(load.ledger.answers)
                began = time.monotonic()
                await apply(fault, h)
                outage = round(time.monotonic() - began, 2)
                _, took = await checks.until(
                    lambda: recovered(h, load, http), lambda ok: ok, RECOVERY_TIMEOUT
                )
                recovery[fault.kind] = took
                answers = {
                    k: n - before.get(k, 0)
                    for k, n in load.ledger.answers.items()
                    if n != before.get(k, 0)
                }
                per_fault.append(
                    {
                        "fault": fault.describe(),
                        "kind": fault.kind,
                        "outage_s": outage,
                        "answering_after_s": took,
                        "answers": answers,
                    }
                )
                say(f"  healed after {outage} s; answering again {took} s later; {answers}")
                findings.expect(
                    took is not None, f"not answering {RECOVERY_TIMEOUT:.0f} s after {fault.kind}"
                )
            await asyncio.sleep(1)
        finally:
            h.infra.toxiproxy.reset()
            await load.stop()
        healed = time.monotonic()

        groups = [f"{h.system.topic_prefix}{name}" for name in SERVICES]
        drained, took = await checks.until(
            lambda: checks.lags(h.infra.direct_kafka, groups),
            lambda lags: (
                all(v == 0 for v in lags.values() if v is not None)
                and lags[f"{h.system.topic_prefix}usage-svc"] == 0
            ),
            checks.DRAIN_TIMEOUT,
        )
        findings.expect(took is not None, f"consumer lag not drained: {drained}")
        ledger = load.ledger
        await checks.check_usage(findings, h.databases, ledger, tenants)
        await checks.check_aggregates(findings, h.databases, tenants)
        await checks.check_tenants(findings, h.databases, http, h.tokens, ledger, schedule.name)
        await checks.check_config(findings, h.databases, http, h.tokens, ledger)
        await checks.check_invitations(
            findings, h.databases, http, h.tokens, ledger, h.system.mail_folder, schedule.name
        )
        await checks.check_isolation(findings, h.databases, tenants)
    result = {
        "name": schedule.name,
        "seed": schedule.seed,
        "faults": [f.describe() for f in schedule.faults],
        "recovery_s": recovery,
        "per_fault": per_fault,
        "details": ledger.details,
        "lag_drained_s": took,
        "checked_after_s": round(time.monotonic() - healed, 1),
        "answers": ledger.answers,
        "figures": findings.figures,
        "broken": findings.broken,
    }
    report.append(result)
    say(f"  {json.dumps(result)}")
    assert not findings.broken, findings.broken
