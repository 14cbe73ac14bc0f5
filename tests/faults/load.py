"""A steady mixed load, and the ledger of what the system acknowledged.

Every write carries an identity chosen here (event ids, ``Idempotency-Key``s, config
values, e-mail addresses), so a retry after an unsure answer is the same write, and
the checks can tell what the system acknowledged, what it refused and what it left
unsure (a 503/504 or a broken connection: may or may not have been committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from aiokafka import AIOKafkaProducer

from stellara_contracts.events import Role
from stellara_contracts.producer import usage_record
from stellara_kit.auth import Principal

METRIC = "transactions"
#: answers after which a write may or may not have been committed: resend it as it was
UNSURE = frozenset({502, 503, 504})
HTTP_TIMEOUT = 30.0
RETRIES = 4
STOP_TIMEOUT = 60.0


@dataclass
class Tokens:
    secret: str
    audience: str
    issuer: str

    def mint(
        self,
        role: Role,
        *,
        subject: str,
        tenant_id: uuid.UUID | None = None,
        email: str | None = None,
    ) -> str:
        principal = Principal(subject=subject, role=role, tenant_id=tenant_id, email=email)
        now = int(time.time())
        claims = principal.claims() | {
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 7200,
        }
        if email:
            claims["email"] = email
            claims["email_verified"] = True
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.mint(Role.PLATFORM_ADMIN, subject='faults-ops')}"}

    def tenant_admin(self, tenant: uuid.UUID) -> dict[str, str]:
        token = self.mint(Role.TENANT_ADMIN, subject=f"faults-admin-{tenant}", tenant_id=tenant)
        return {"authorization": f"Bearer {token}"}


@dataclass
class BaseTenant:
    id: uuid.UUID
    slug: str
    api_key: str


@dataclass
class Ledger:
    """What one schedule sent and what it was told."""

    acked_events: set[uuid.UUID] = field(default_factory=set)
    unsure_events: set[uuid.UUID] = field(default_factory=set)
    refused_events: set[uuid.UUID] = field(default_factory=set)
    acked_tenants: dict[str, uuid.UUID] = field(default_factory=dict)  # slug → id
    unsure_tenants: set[str] = field(default_factory=set)
    refused_tenants: set[str] = field(default_factory=set)
    # tenant → [(value, outcome)], in the order they were written (one writer per tenant)
    config_writes: dict[uuid.UUID, list[tuple[str, str]]] = field(default_factory=dict)
    acked_invitations: dict[str, uuid.UUID] = field(default_factory=dict)  # email → tenant
    unsure_invitations: set[str] = field(default_factory=set)
    answers: dict[str, int] = field(default_factory=dict)  # "kind status" → count
    details: dict[str, list[str]] = field(default_factory=dict)  # "kind status" → details seen

    def note(self, kind: str, status: int | str, response: httpx.Response | None = None) -> None:
        key = f"{kind} {status}"
        self.answers[key] = self.answers.get(key, 0) + 1
        if response is not None and response.status_code >= 400:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            seen = self.details.setdefault(key, [])
            if detail not in seen and len(seen) < 5:
                seen.append(detail)


async def send_with_retries(
    ledger: Ledger, kind: str, call: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response | None:
    """The answer to a write resent as it was after every unsure answer; None if still unsure."""
    for attempt in range(RETRIES):
        try:
            response = await call()
        except httpx.HTTPError as exc:
            ledger.note(kind, type(exc).__name__)
        else:
            ledger.note(kind, response.status_code, response)
            if response.status_code not in UNSURE:
                return response
        await asyncio.sleep(0.5 * (attempt + 1))
    return None


def usage_body(events: list[dict[str, Any]], wrapped: bool) -> Any:
    return {"events": events} if wrapped else events


class Load:
    """The mixed load of one schedule, until stopped."""

    def __init__(
        self,
        *,
        name: str,
        gateway: str,
        direct_kafka: str,
        topic: str,
        tokens: Tokens,
        tenants: list[BaseTenant],
        wrapped_batches: bool,
    ) -> None:
        self.name = name
        self.tokens = tokens
        self.tenants = tenants
        self.topic = topic
        self.direct_kafka = direct_kafka
        self.wrapped = wrapped_batches
        self.ledger = Ledger()
        self.http = httpx.AsyncClient(base_url=gateway, timeout=HTTP_TIMEOUT)
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for tenant in self.tenants:
            self.tasks.append(asyncio.create_task(self._http_usage(tenant)))
            self.tasks.append(asyncio.create_task(self._config_writes(tenant)))
        self.tasks.append(asyncio.create_task(self._kafka_usage()))
        self.tasks.append(asyncio.create_task(self._tenant_writes()))
        self.tasks.append(asyncio.create_task(self._invitations()))

    async def stop(self) -> None:
        """Stop the load; a writer still waiting after a minute is cancelled (what it was
        writing stays unsure, which the checks allow either way)."""
        self.stopping.set()
        done, pending = await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.http.aclose()
        for task in done:
            task.result()  # a writer's unexpected refusal fails the schedule

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # ------------------------------------------------------------------ usage over HTTP
    async def send_usage(self, tenant: BaseTenant, count: int, *, invalid: int = 0) -> bool:
        """One batch through the gateway, the events it was unsure about resent with their
        ids; True when every valid event was acknowledged (202)."""
        now = datetime.now(UTC).isoformat()
        events: list[dict[str, Any]] = []
        for _ in range(count):
            events.append(
                {"id": str(uuid.uuid4()), "metric": METRIC, "value": 1, "occurred_at": now}
            )
        pending = {uuid.UUID(e["id"]): e for e in events}
        self.ledger.unsure_events.update(pending)  # until told otherwise
        for _ in range(invalid):
            event_id = uuid.uuid4()
            self.ledger.refused_events.add(event_id)  # refused whatever the answer
            events.append({"id": str(event_id), "metric": METRIC, "value": "many"})
        for _ in range(RETRIES):
            body = usage_body(events, self.wrapped)
            response = await send_with_retries(
                self.ledger,
                "usage",
                lambda body=body: self.http.post(  # type: ignore[misc]
                    "/usage/events", json=body, headers={"x-api-key": tenant.api_key}
                ),
            )
            if response is None:
                return False
            if response.status_code != 202:
                raise AssertionError(f"usage batch refused as a whole: {response.text[:500]}")
            answer = response.json()
            if "ids" in answer:
                accepted = {uuid.UUID(i) for i in answer["ids"]}
            else:
                refused = {e["index"] for e in answer.get("errors", [])}
                accepted = {uuid.UUID(e["id"]) for i, e in enumerate(events) if i not in refused}
            accepted &= pending.keys()
            self.ledger.acked_events.update(accepted)
            self.ledger.unsure_events.difference_update(accepted)
            for event_id in accepted:
                del pending[event_id]
            if not pending:
                return True
            # a 202 naming events Kafka did not acknowledge: resend those, as they were
            self.ledger.note("usage", "202 partly")
            events = list(pending.values())
        return False

    async def _http_usage(self, tenant: BaseTenant) -> None:
        while not self.stopping.is_set():
            await self.send_usage(tenant, 10, invalid=1)
            await self._pause(0.15)

    # ------------------------------------------------------------------ usage over Kafka
    async def _kafka_usage(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.direct_kafka,
            enable_idempotence=True,
            request_timeout_ms=5000,
            retry_backoff_ms=200,
        )
        await producer.start()
        retry: list[tuple[uuid.UUID, uuid.UUID]] = []
        rounds_after_stop = 0
        try:
            while not self.stopping.is_set() or (retry and rounds_after_stop < 20):
                if self.stopping.is_set():
                    rounds_after_stop += 1
                batch = retry or [
                    (self.tenants[i % len(self.tenants)].id, uuid.uuid4()) for i in range(10)
                ]
                retry = []
                futures = []
                self.ledger.unsure_events.update(event_id for _, event_id in batch)
                for tenant, event_id in batch:
                    key, value = usage_record(
                        tenant,
                        METRIC,
                        1,
                        source="faults-suite",
                        occurred_at=datetime.now(UTC),
                        properties={"channel": "kafka"},
                        event_id=event_id,
                    )
                    futures.append(await producer.send(self.topic, value, key=key))
                results = await asyncio.gather(*futures, return_exceptions=True)
                for (tenant, event_id), result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        self.ledger.note("kafka-usage", type(result).__name__)
                        retry.append((tenant, event_id))
                    else:
                        self.ledger.note("kafka-usage", "ack")
                        self.ledger.acked_events.add(event_id)
                        self.ledger.unsure_events.discard(event_id)
                if retry and self.stopping.is_set():
                    await asyncio.sleep(1)  # the broker may still be on its way back
                await self._pause(0.15)
        finally:
            await producer.stop()

    # ------------------------------------------------------------------ tenant writes
    async def _tenant_writes(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            slug = f"{self.name}-t{n}"
            key = str(uuid.uuid4())
            body = {"name": f"Faults {slug}", "slug": slug, "plan": "pro"}
            self.ledger.unsure_tenants.add(slug)  # until told otherwise
            response = await send_with_retries(
                self.ledger,
                "tenant",
                lambda body=body, key=key: self.http.post(  # type: ignore[misc]
                    "/tenants",
                    json=body,
                    headers={**self.tokens.admin(), "idempotency-key": key},
                ),
            )
            if response is None:
                pass
            elif response.status_code == 201:
                self.ledger.unsure_tenants.discard(slug)
                self.ledger.acked_tenants[slug] = uuid.UUID(response.json()["id"])
            else:
                self.ledger.unsure_tenants.discard(slug)
                self.ledger.refused_tenants.add(slug)
                raise AssertionError(f"tenant {slug} refused: {response.text[:500]}")
            await self._pause(0.6)

    # ------------------------------------------------------------------ config writes
    async def _config_writes(self, tenant: BaseTenant) -> None:
        writes = self.ledger.config_writes.setdefault(tenant.id, [])
        n = 0
        while not self.stopping.is_set():
            n += 1
            value = f"{self.name} v{n}"
            body = {"category": "general", "key": "display_name", "value": value}
            writes.append((value, "unsure"))  # until told otherwise
            response = await send_with_retries(
                self.ledger,
                "config",
                lambda body=body: self.http.post(  # type: ignore[misc]
                    f"/tenants/{tenant.id}/config", json=body, headers=self.tokens.admin()
                ),
            )
            if response is None:
                pass
            elif response.status_code in (200, 201):
                writes[-1] = (value, "acked")
            else:
                raise AssertionError(f"config write refused: {response.text[:500]}")
            await self._pause(0.4)

    # ------------------------------------------------------------------ invitations
    async def _invitations(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            tenant = self.tenants[n % len(self.tenants)]
            email = f"inv{n}@{self.name}.example"
            body = {"email": email, "role": "user"}
            # not resent: after a hidden commit a resend is a 409 invitation-already-open
            self.ledger.unsure_invitations.add(email)  # until told otherwise
            try:
                response = await self.http.post(
                    f"/tenants/{tenant.id}/invitations", json=body, headers=self.tokens.admin()
                )
            except httpx.HTTPError as exc:
                self.ledger.note("invitation", type(exc).__name__)
            else:
                self.ledger.note("invitation", response.status_code, response)
                if response.status_code == 201:
                    self.ledger.unsure_invitations.discard(email)
                    self.ledger.acked_invitations[email] = tenant.id
                elif response.status_code not in UNSURE:
                    self.ledger.unsure_invitations.discard(email)
                    raise AssertionError(f"invitation refused: {response.text[:500]}")
            await self._pause(1.5)
