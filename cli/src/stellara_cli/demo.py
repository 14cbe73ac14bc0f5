"""``stellara demo``: the main story, step by step, against the running system.

create a tenant → onboarding starts → invite an admin → the invitation mail
arrives → accept it → complete the remaining steps → the tenant becomes
active → 10,000 usage events (half over HTTP through the gateway, half
straight to Kafka) → usage totals, daily series, trends, invoice preview →
cross the plan's limit → the quota alert and the suspension → a request as
that tenant is refused.

Every step checks what it claims; the first that does not behave as
described stops the story with a non-zero exit. The same story runs as the
system test in ``tests/``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer

from stellara_contracts import topics
from stellara_contracts.events import Role
from stellara_contracts.producer import UsageEmitter
from stellara_kit.auth import Principal, mint_token

T = TypeVar("T")
EVENTS_TOTAL = 10_000
STORY_METRIC = "transactions"
STORY_PLAN = "starter"  # 10,000 transactions are within it; its workflow_runs are capped
HTTP_BATCH = 500
TOKEN_RE = re.compile(r"/invitations/([A-Za-z0-9_\-]+)/accept")


class DemoFailed(Exception):
    """A step did not behave as described."""


@dataclass
class Target:
    """Where the system runs and how to speak to it."""

    gateway_url: str
    kafka_bootstrap: str
    mail_folder: Path
    jwt_secret: str
    jwt_audience: str
    jwt_issuer: str
    topic_prefix: str = ""
    timeout: float = 60.0

    @classmethod
    def local(cls) -> Target:
        from stellara_cli.stack import LocalStack
        from stellara_kit.auth import UserTokenSettings

        stack = LocalStack()
        gateway = UserTokenSettings()
        return cls(
            gateway_url=next(s.spec.url for s in stack.services if s.name == "gateway"),
            kafka_bootstrap=stack.config.kafka_bootstrap,
            mail_folder=stack.mail.folder,
            jwt_secret=gateway.jwt_secret.get_secret_value(),
            jwt_audience=gateway.jwt_audience,
            jwt_issuer=gateway.jwt_issuer,
        )

    def token(
        self,
        role: Role,
        *,
        tenant_id: uuid.UUID | None = None,
        subject: str = "demo",
        email: str | None = None,
    ) -> str:
        principal = Principal(subject=subject, role=role, tenant_id=tenant_id, email=email)
        return mint_token(
            principal,
            key=self.jwt_secret,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
            ttl_seconds=3600,
        )


@dataclass
class StoryResult:
    tenant_id: uuid.UUID | None = None
    slug: str = ""
    steps: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


Say = Callable[[str], None]
Progress = Callable[[int], None]


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *, what: str, timeout: float
) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if until(last):
            return last
        await asyncio.sleep(0.25)
    raise DemoFailed(f"{what}: not seen within {timeout:.0f} s (last: {str(last)[:300]})")


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise DemoFailed(
            f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:400]}"
        )
    return response.json() if response.content else None


class Story:
    def __init__(
        self, target: Target, *, say: Say, progress: Callable[[int], Progress] | None = None
    ) -> None:
        self.t = target
        self.say = say
        self.progress = progress
        self.result = StoryResult()
        self.http = httpx.AsyncClient(base_url=target.gateway_url, timeout=30)
        self.admin = {
            "authorization": f"Bearer {target.token(Role.PLATFORM_ADMIN, subject='demo-operator')}"
        }

    async def run(self) -> StoryResult:
        try:
            await self.create_tenant()
            await self.invite_admin()
            await self.complete_steps()
            await self.await_active()
            await self.send_usage()
            await self.read_usage()
            await self.cross_the_limit()
        finally:
            await self.http.aclose()
        return self.result

    def step(self, text: str) -> None:
        self.result.steps.append(text)
        self.say(text)

    # ------------------------------------------------------------------ steps
    async def create_tenant(self) -> None:
        slug = f"demo-{uuid.uuid4().hex[:8]}"
        self.result.slug = slug
        body = expect(
            await self.http.post(
                "/tenants",
                json={"name": f"Demo {slug[5:]}", "slug": slug, "plan": STORY_PLAN},
                headers=self.admin,
            ),
            201,
            "create the tenant",
        )
        self.tenant = uuid.UUID(body["id"])
        self.result.tenant_id = self.tenant
        if body["status"] != "pending":
            raise DemoFailed(f"a new tenant starts pending, this one is {body['status']}")
        self.step(f"created tenant {slug} ({self.tenant}), status pending")

    async def invite_admin(self) -> None:
        status = await eventually(
            lambda: self.http.get(f"/tenants/{self.tenant}/onboarding-status", headers=self.admin),
            lambda r: r.status_code == 200,
            what="onboarding starts by itself",
            timeout=self.t.timeout,
        )
        steps = [s["key"] for s in status.json()["steps"]]
        self.step(f"onboarding started by itself: steps {', '.join(steps)}")

        email = f"admin@{self.result.slug}.example"
        expect(
            await self.http.post(
                f"/tenants/{self.tenant}/invitations",
                json={"email": email, "role": "tenant_admin"},
                headers=self.admin,
            ),
            201,
            "invite an admin",
        )
        self.step(f"invited {email} as tenant_admin")

        mail = await eventually(
            lambda: self._mail_to(email),
            lambda m: m is not None,
            what="the invitation mail",
            timeout=self.t.timeout,
        )
        assert mail is not None
        match = TOKEN_RE.search(mail)
        if not match:
            raise DemoFailed("the invitation mail holds no accept link")
        self.step("the invitation mail arrived with its accept link")

        user_id = f"user-{uuid.uuid4().hex[:8]}"
        accepting = {
            "authorization": f"Bearer {self.t.token(Role.USER, subject=user_id, email=email)}"
        }
        expect(
            await self.http.post(f"/invitations/{match.group(1)}/accept", headers=accepting),
            200,
            "accept the invitation",
        )
        self.ada = {
            "authorization": f"Bearer {self.t.token(Role.TENANT_ADMIN, tenant_id=self.tenant, subject=user_id, email=email)}"
        }
        members = await eventually(
            lambda: self.http.get(f"/tenants/{self.tenant}/members", headers=self.admin),
            lambda r: (
                r.status_code == 200 and any(m.get("user_id") == user_id for m in _items(r.json()))
            ),
            what="the admin becomes a member",
            timeout=self.t.timeout,
        )
        role = next(m["role"] for m in _items(members.json()) if m.get("user_id") == user_id)
        if role != "tenant_admin":
            raise DemoFailed(f"the invited admin joined as {role}")
        self.step(f"accepted: {user_id} is a tenant_admin of {self.result.slug}")

    async def complete_steps(self) -> None:
        for step_key in ("configure_tenant", "setup_billing"):
            expect(
                await self.http.post(
                    f"/tenants/{self.tenant}/onboard/complete-step",
                    json={"step_key": step_key, "payload": {"by": "demo"}},
                    headers=self.ada,
                ),
                200,
                f"complete {step_key}",
            )
            self.step(f"completed step {step_key}")

    async def await_active(self) -> None:
        await eventually(
            lambda: self.http.get(f"/tenants/{self.tenant}", headers=self.admin),
            lambda r: r.status_code == 200 and r.json()["status"] == "active",
            what="the tenant becomes active",
            timeout=self.t.timeout,
        )
        self.step("onboarding completed: the tenant is active")

        expect(
            await self.http.post(
                f"/tenants/{self.tenant}/config",
                json={"category": "billing", "key": "hard_limit_action", "value": "suspend"},
                headers=self.ada,
            ),
            201,
            "set billing.hard_limit_action",
        )
        self.step("set billing.hard_limit_action = suspend")

    async def send_usage(self) -> None:
        key = expect(
            await self.http.post(
                f"/tenants/{self.tenant}/api-keys",
                json={"name": "demo ingest", "scopes": ["usage:write"]},
                headers=self.ada,
            ),
            201,
            "create an API key",
        )
        api_key = {"x-api-key": key["secret"]}
        half = EVENTS_TOTAL // 2
        now = datetime.now(UTC)
        advance = self.progress(EVENTS_TOTAL) if self.progress else (lambda _n: None)
        started = time.perf_counter()
        for start in range(0, half, HTTP_BATCH):
            batch = [
                {
                    "metric": STORY_METRIC,
                    "value": 1,
                    "occurred_at": (now - timedelta(seconds=i)).isoformat(),
                    "properties": {"channel": "http"},
                }
                for i in range(start, start + HTTP_BATCH)
            ]
            body = expect(
                await self.http.post("/usage/events", json=batch, headers=api_key),
                202,
                "send usage over HTTP",
            )
            if body.get("accepted", len(batch)) != len(batch):
                raise DemoFailed(
                    f"the gateway accepted {body.get('accepted')} of {len(batch)} events"
                )
            advance(len(batch))
        async with UsageEmitter(
            self.t.kafka_bootstrap,
            source="stellara-demo",
            topic=f"{self.t.topic_prefix}usage.recorded",
        ) as emitter:
            for i in range(half, EVENTS_TOTAL):
                await emitter.emit(
                    self.tenant,
                    STORY_METRIC,
                    1,
                    occurred_at=now - timedelta(seconds=i),
                    properties={"channel": "kafka"},
                )
                if (i + 1) % HTTP_BATCH == 0:
                    advance(HTTP_BATCH)
        self.result.figures["send_seconds"] = round(time.perf_counter() - started, 2)
        self.step(
            f"sent {EVENTS_TOTAL:,} usage events: {half:,} over HTTP, {half:,} straight to Kafka"
        )

    async def read_usage(self) -> None:
        usage = await eventually(
            lambda: self.http.get(
                f"/tenants/{self.tenant}/usage", params={"metric": STORY_METRIC}, headers=self.ada
            ),
            lambda r: (
                r.status_code == 200
                and _metric(r.json(), STORY_METRIC).get("events") == EVENTS_TOTAL
            ),
            what=f"usage totals reach {EVENTS_TOTAL}",
            timeout=self.t.timeout,
        )
        figures = _metric(usage.json(), STORY_METRIC)
        self.result.figures["usage"] = figures
        self.step(
            f"usage totals: {STORY_METRIC} value {figures.get('value')} from {figures.get('events')} events"
        )

        daily = expect(
            await self.http.get(
                f"/tenants/{self.tenant}/usage/daily",
                params={"metric": STORY_METRIC},
                headers=self.ada,
            ),
            200,
            "daily series",
        )
        self.step(f"daily series: {len(_items(daily))} days")
        trends = expect(
            await self.http.get(
                f"/tenants/{self.tenant}/usage/trends",
                params={"metric": STORY_METRIC, "period": "7d"},
                headers=self.ada,
            ),
            200,
            "trends",
        )
        self.result.figures["trends"] = trends
        self.step("trends: this period against the previous one, with a projection")
        invoice = expect(
            await self.http.get(f"/tenants/{self.tenant}/usage/invoice-preview", headers=self.ada),
            200,
            "invoice preview",
        )
        self.result.figures["invoice_total"] = invoice.get("total")
        self.step(
            f"invoice preview: total {invoice.get('total')} {invoice.get('currency', '')}".rstrip()
        )

    async def cross_the_limit(self) -> None:
        plans = expect(await self.http.get("/plans", headers=self.ada), 200, "plans")
        plan = next(p for p in _items(plans) if p.get("key") == STORY_PLAN)
        metric, limit = _hard_limit(plan)
        usage = expect(
            await self.http.get(
                f"/tenants/{self.tenant}/usage", params={"metric": metric}, headers=self.ada
            ),
            200,
            "usage before the limit",
        )
        used = float(_metric(usage, metric).get("value") or 0)
        needed = max(1, int(limit - used) + 1)
        self.step(
            f"the {STORY_PLAN} plan allows {limit:g} {metric}; sending {needed:g} more to cross it"
        )
        async with UsageEmitter(
            self.t.kafka_bootstrap,
            source="stellara-demo",
            topic=f"{self.t.topic_prefix}usage.recorded",
        ) as emitter:
            await emitter.emit(self.tenant, metric, needed, properties={"channel": "kafka"})
        alerts = await eventually(
            lambda: self._alerts(metric),
            lambda found: "stellara.usage.quota_exceeded.v1" in found,
            what="the quota alerts on usage.alerts",
            timeout=self.t.timeout,
        )
        for kind, data in alerts.items():
            self.step(
                f"alert {kind.split('.')[2]}: {metric} at {float(data['value']):g} of "
                f"{float(data['limit']):g} ({data.get('threshold_percent', 100)} %)"
            )
        tenant = await eventually(
            lambda: self.http.get(f"/tenants/{self.tenant}", headers=self.admin),
            lambda r: r.status_code == 200 and r.json()["status"] == "suspended",
            what="QuotaExceeded suspends the tenant",
            timeout=self.t.timeout,
        )
        self.step(f"quota exceeded → tenant suspended ({tenant.json().get('status_reason')})")
        refused = await eventually(
            lambda: self.http.get(f"/tenants/{self.tenant}/config", headers=self.ada),
            lambda r: r.status_code == 403,
            what="a suspended tenant's user is refused",
            timeout=self.t.timeout,
        )
        self.step(
            f"a request as that tenant is refused: {refused.status_code} {refused.json().get('detail', '')}"
        )

    async def _alerts(self, metric: str) -> dict[str, dict[str, Any]]:
        """This tenant's quota alerts for the metric on usage.alerts, by event type."""
        consumer = AIOKafkaConsumer(
            f"{self.t.topic_prefix}{topics.USAGE_ALERTS}",
            bootstrap_servers=self.t.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        found: dict[str, dict[str, Any]] = {}
        key = str(self.tenant).encode()
        try:
            batches = await consumer.getmany(timeout_ms=2000, max_records=10_000)
            while batches:
                for records in batches.values():
                    for record in records:
                        if record.key != key or record.value is None:
                            continue
                        event = json.loads(record.value)
                        data = event.get("data") or {}
                        if data.get("metric") == metric and "billing_period" not in event["type"]:
                            found[event["type"]] = data
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        finally:
            await consumer.stop()
        return found

    async def _mail_to(self, email: str) -> str | None:
        from stellara_cli.mailsink import read_mailbox

        for message in read_mailbox(self.t.mail_folder):
            if email in message.to:
                return message.text()
        return None


def _items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    for key in ("items", "days", "data", "plans", "rows"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return list(body[key])
    return []


def _metric(body: Any, metric: str) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("metrics"), list):
        for entry in body["metrics"]:
            if entry.get("metric") == metric:
                return dict(entry)
    if isinstance(body, dict) and isinstance(body.get("metrics"), dict):
        return dict(body["metrics"].get(metric) or {})
    return {}


def _hard_limit(plan: dict[str, Any]) -> tuple[str, float]:
    """The first metric the plan caps with a hard limit, and that limit."""
    terms = plan.get("metrics") or {}
    entries = terms.items() if isinstance(terms, dict) else ((t.get("metric"), t) for t in terms)
    for metric, entry in entries:
        if entry.get("limit") is not None and entry.get("limit_kind") == "hard":
            return str(metric), float(entry["limit"])
    raise DemoFailed(f"plan {plan.get('key')} has no hard limit to cross")
