from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from onboarding_svc.main import create_app
from onboarding_svc.migrate import MIGRATIONS
from onboarding_svc.settings import Settings
from stellara_contracts import CloudEvent, decode_event, new_event, topics
from stellara_contracts.envelope import EventData
from stellara_contracts.events import TenantCreated, TenantDeleted
from stellara_kit.db import asyncpg_dsn
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import (
    Infrastructure,
    TestDatabase,
    auth_headers,
    consume,
    running_app,
    wait_for,
)

ACCEPT_LINK = re.compile(r"http://accept\.test/invitations/([A-Za-z0-9_\-]+)/accept")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailSink:
    """A real SMTP server on a loopback port that keeps what it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._server: Any = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    async def start(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="mail.test"), host="127.0.0.1", port=self.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def bodies(message: EmailMessage) -> tuple[str, str]:
        plain = message.get_body(preferencelist=("plain",))
        rich = message.get_body(preferencelist=("html",))
        assert plain is not None and rich is not None
        return plain.get_content(), rich.get_content()  # type: ignore[attr-defined]

    @classmethod
    def token_in(cls, message: EmailMessage) -> str:
        plain, _ = cls.bodies(message)
        match = ACCEPT_LINK.search(plain)
        assert match, plain
        return match.group(1)


@dataclass
class Harness:
    """The service running on real PostgreSQL, Kafka and SMTP, with helpers for tests."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    database: TestDatabase
    mail: MailSink
    tenants: list[UUID] = field(default_factory=list)

    def headers(
        self,
        role: str = "platform_admin",
        tenant_id: UUID | None = None,
        *,
        subject: str = "test-user",
        email: str | None = None,
        email_verified: bool | None = None,
    ) -> dict[str, str]:
        return auth_headers(
            self.settings,
            role=role,
            tenant_id=tenant_id,
            subject=subject,
            email=email,
            email_verified=email_verified,
        )

    def admin_of(self, tenant_id: UUID) -> dict[str, str]:
        return self.headers("tenant_admin", tenant_id, subject=f"admin-of-{tenant_id}")

    async def tenant_event(self, data: EventData, event: CloudEvent | None = None) -> CloudEvent:
        """Hand an event to the service's tenant.events handler (as the consumer would)."""
        event = event or new_event(data, source="tenant-svc")
        await self.app.state.tenant_events(event)
        return event

    async def create_tenant(self, plan: str = "starter", *, name: str = "Acme Corp") -> UUID:
        tenant_id = uuid4()
        await self.tenant_event(
            TenantCreated(
                tenant_id=tenant_id,
                slug=f"t{tenant_id.hex[:12]}",
                name=name,
                plan=plan,
                created_at=datetime.now(UTC),
            )
        )
        return tenant_id

    async def delete_tenant(self, tenant_id: UUID) -> None:
        await self.tenant_event(TenantDeleted(tenant_id=tenant_id, slug="gone", version=2))

    async def invite(
        self, tenant_id: UUID, email_address: str, role: str = "tenant_admin"
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/tenants/{tenant_id}/invitations",
            json={"email": email_address, "role": role},
            headers=self.admin_of(tenant_id),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def invitation(self, tenant_id: UUID, invitation_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/tenants/{tenant_id}/invitations/{invitation_id}", headers=self.headers()
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mail_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        return await wait_for(
            lambda: _now(self.mail.to(address)), until=lambda ms: len(ms) >= count
        )

    async def accept(
        self,
        token: str,
        *,
        email: str | None,
        subject: str = "new-user",
        email_verified: bool | None = None,
    ) -> httpx.Response:
        """Accept as a user signed in with ``email`` (None: a token without one)."""
        return await self.client.post(
            f"/invitations/{token}/accept",
            headers=self.headers(
                "user", None, subject=subject, email=email, email_verified=email_verified
            ),
        )

    async def accept_mail(
        self, message: EmailMessage, *, subject: str = "new-user"
    ) -> httpx.Response:
        """Accept the invitation of ``message`` as its addressee."""
        return await self.accept(self.mail.token_in(message), email=message["To"], subject=subject)

    async def status(self, tenant_id: UUID) -> dict[str, Any]:
        response = await self.client.get(
            f"/tenants/{tenant_id}/onboarding-status", headers=self.headers()
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        """Run SQL as the database administrator (no row-level security)."""
        conn = await asyncpg.connect(asyncpg_dsn(self.database.admin_url))
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    async def published(self) -> list[CloudEvent]:
        """Everything the service has published to onboarding.events, once its outbox is empty."""
        db = self.app.state.parts.db

        async def outbox_size() -> int:
            async with db.unscoped_transaction() as session:
                return int(
                    (await session.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
                )

        await wait_for(outbox_size, until=lambda n: n == 0)
        records = await consume(
            self.settings.kafka_bootstrap_servers,
            self.settings.topic(topics.ONBOARDING_EVENTS),
            timeout=3.0,
            settle=0.5,
        )
        return [decode_event(topics.ONBOARDING_EVENTS, r.value) for r in records if r.value]

    @staticmethod
    def of_type(events: list[CloudEvent], suffix: str) -> list[Any]:
        return [e for e in events if e.type == f"stellara.onboarding.{suffix}.v1"]


async def _now(value: Any) -> Any:
    return value


@pytest_asyncio.fixture
async def mail_sink() -> AsyncIterator[MailSink]:
    """An SMTP server on a free loopback port, not started yet (a mail server that is down)."""
    sink = MailSink()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest_asyncio.fixture
async def mail(mail_sink: MailSink) -> MailSink:
    """The SMTP server, running."""
    await mail_sink.start()
    return mail_sink


@pytest_asyncio.fixture
async def settings(
    infrastructure: Infrastructure,
    topic_prefix: str,
    test_database: TestDatabase,
    mail_sink: MailSink,
) -> Settings:
    await upgrade_async(MIGRATIONS, test_database.owner_url)
    return Settings(
        environment="test",
        database_url=test_database.runtime_url,
        migration_database_url=test_database.owner_url,
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}onboarding-svc",
        log_json=False,
        internal_token_secret=SecretStr("onboarding-tests-internal-secret-0123456789"),
        smtp_port=mail_sink.port,
        accept_url_template="http://accept.test/invitations/{token}/accept",
        sender_interval_seconds=0.2,
        sender_backoff_seconds=0.1,
        sender_max_backoff_seconds=0.3,
        sweeper_interval_seconds=0.2,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL."""
    async with running_app(create_app(settings)) as http:
        yield http


StartService = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest_asyncio.fixture
async def start(
    settings: Settings, test_database: TestDatabase, mail_sink: MailSink
) -> StartService:
    """Start the service with some settings changed: ``async with start(x=1) as svc``."""

    @asynccontextmanager
    async def _start(**overrides: Any) -> AsyncIterator[Harness]:
        changed = Settings.model_validate(settings.model_dump() | overrides)
        app = create_app(changed)
        async with running_app(app) as http:
            yield Harness(app, http, changed, test_database, mail_sink)

    return _start


@pytest_asyncio.fixture
async def svc(start: StartService, mail: MailSink) -> AsyncIterator[Harness]:
    """The service with default test settings and a running mail server."""
    async with start() as harness:
        yield harness
