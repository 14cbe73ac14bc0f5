"""The whole system end to end: every service a real process, on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from stellara_cli.demo import EVENTS_TOTAL, STORY_METRIC, Story
from stellara_contracts import topics
from stellara_contracts.events import Role
from stellara_contracts.producer import UsageEmitter
from stellara_kit.testing import wait_for


def admin_headers(system: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {system.target().token(Role.PLATFORM_ADMIN, subject='ops')}"}


async def create_active_tenant(
    system: Any, gateway: httpx.AsyncClient, *, plan: str = "pro"
) -> uuid.UUID:
    headers = admin_headers(system)
    slug = f"t-{uuid.uuid4().hex[:10]}"
    created = await gateway.post(
        "/tenants", json={"name": slug, "slug": slug, "plan": plan}, headers=headers
    )
    assert created.status_code == 201, created.text
    tenant = uuid.UUID(created.json()["id"])
    activated = await gateway.post(f"/tenants/{tenant}/activate", headers=headers)
    assert activated.status_code == 200, activated.text
    return tenant


async def usage_count(
    system: Any, gateway: httpx.AsyncClient, tenant: uuid.UUID, metric: str
) -> int:
    response = await gateway.get(
        f"/tenants/{tenant}/usage", params={"metric": metric}, headers=admin_headers(system)
    )
    if response.status_code != 200:
        return -1
    for entry in response.json().get("metrics", []):
        if entry.get("metric") == metric:
            return int(entry.get("events") or 0)
    return 0


async def emit(
    system: Any, tenant: uuid.UUID, metric: str, count: int, *, ids: list[uuid.UUID] | None = None
) -> None:
    async with UsageEmitter(
        system.infra.kafka_bootstrap,
        source="system-test",
        topic=f"{system.topic_prefix}usage.recorded",
    ) as emitter:
        for i in range(count):
            await emitter.emit(
                tenant, metric, 1, occurred_at=datetime.now(UTC), event_id=ids[i] if ids else None
            )


class TestTheStory:
    async def test_the_demo_story_holds(self, system: Any) -> None:
        said: list[str] = []
        result = await Story(system.target(), say=said.append).run()
        assert result.figures["usage"]["events"] == EVENTS_TOTAL
        assert any("tenant is active" in line for line in said)
        assert any("refused" in line for line in said)


class TestResilience:
    async def test_restarting_usage_svc_mid_ingestion_loses_and_doubles_nothing(
        self, system: Any, gateway: httpx.AsyncClient
    ) -> None:
        tenant = await create_active_tenant(system, gateway)
        await wait_for(
            lambda: usage_count(system, gateway, tenant, STORY_METRIC),
            until=lambda n: n == 0,
            timeout=60,
        )
        ids = [uuid.uuid4() for _ in range(3000)]
        await emit(system, tenant, STORY_METRIC, 1500, ids=ids[:1500])
        await asyncio.to_thread(system.restart, "usage-svc", kill=True)
        # the same 1,500 again (a producer retrying) and 1,500 new ones
        await emit(system, tenant, STORY_METRIC, 1500, ids=ids[:1500])
        await emit(system, tenant, STORY_METRIC, 1500, ids=ids[1500:])
        count = await wait_for(
            lambda: usage_count(system, gateway, tenant, STORY_METRIC),
            until=lambda n: n >= 3000,
            timeout=90,
        )
        await asyncio.sleep(2)  # anything counted twice would show up by now
        assert await usage_count(system, gateway, tenant, STORY_METRIC) == count == 3000

    async def test_tenant_svc_down_mid_story_misses_no_event(self, system: Any) -> None:
        """Onboarding completes while tenant-svc is down; back up, it activates the tenant."""
        story = Story(system.target(), say=lambda _: None)
        try:
            await story.create_tenant()
            await story.invite_admin()
            await asyncio.to_thread(system.stop, system.services["tenant-svc"], kill=True)
            await story.complete_steps()  # OnboardingCompleted is published now
            down = await story.http.get(f"/tenants/{story.tenant}", headers=story.admin)
            assert down.status_code == 503
            assert down.headers["content-type"].startswith("application/problem+json")
            await asyncio.to_thread(system.restart, "tenant-svc")
            await story.await_active()
        finally:
            await story.http.aclose()


class TestScaling:
    async def test_two_usage_replicas_split_partitions_and_totals_stay_exact(
        self, system: Any, gateway: httpx.AsyncClient
    ) -> None:
        replica = await asyncio.to_thread(system.add_replica, "usage-svc")
        group = f"{system.topic_prefix}usage-svc-ingest"
        admin = AIOKafkaAdminClient(bootstrap_servers=system.infra.kafka_bootstrap)
        await admin.start()
        try:

            async def assignments() -> list[set[int]]:
                (response,) = await admin.describe_consumer_groups([group])
                (_error, _group, state, _ptype, _protocol, members) = response.groups[0]
                if state != "Stable":
                    return []
                # each process also has a member for its other subscriptions
                return [p for member in members if (p := _partitions(member[4]))]

            assigned = await wait_for(assignments, until=lambda found: len(found) == 2, timeout=60)
        finally:
            await admin.close()
        assert not (assigned[0] & assigned[1]), "no partition is owned twice"

        tenants = [await create_active_tenant(system, gateway) for _ in range(6)]
        for tenant in tenants:
            await emit(system, tenant, STORY_METRIC, 200)
        for tenant in tenants:
            await wait_for(
                lambda t=tenant: usage_count(system, gateway, t, STORY_METRIC),
                until=lambda n: n == 200,
                timeout=90,
            )
        totals = [await usage_count(system, gateway, t, STORY_METRIC) for t in tenants]
        assert totals == [200] * len(tenants)
        system.stop(replica)


class TestDefaultTenant:
    async def test_a_caller_naming_no_tenant_lands_in_the_default_tenant(
        self, system: Any, gateway: httpx.AsyncClient
    ) -> None:
        target = system.target()
        single = {
            "authorization": f"Bearer {target.token(Role.TENANT_ADMIN, subject='legacy-app')}"
        }
        main = await wait_for(
            lambda: gateway.get("/tenants/main", headers=admin_headers(system)),
            until=lambda r: r.status_code == 200,
            timeout=60,
        )
        main_id = main.json()["id"]
        event = {
            "metric": "workflow_runs",
            "value": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        accepted = await gateway.post("/usage/events", json=[event], headers=single)
        assert accepted.status_code == 202, accepted.text
        await wait_for(
            lambda: usage_count(system, gateway, uuid.UUID(main_id), "workflow_runs"),
            until=lambda n: n >= 1,
            timeout=60,
        )


def _partitions(raw_assignment: bytes) -> set[int]:
    """The usage.recorded partitions in a consumer group member's assignment."""
    if not raw_assignment:
        return set()
    decoded = ConsumerProtocolMemberAssignment.decode(raw_assignment)
    return {
        partition
        for topic, partitions in decoded.assignment
        if topic.endswith(topics.USAGE_RECORDED)
        for partition in partitions
    }
