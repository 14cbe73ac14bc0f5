"""What every service process runs: database, broker, outbox relay, subscribers, HTTP app.

A service's ``main.create_app(settings)`` builds one :class:`ServiceRuntime`,
registers its subscribers on it (an event table per topic, see
:mod:`stellara_kit.handlers`; its events leave through ``runtime.sink``) and asks it for the FastAPI app; the app's
lifespan starts the broker, the relay and any background tasks, and stops
them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from sqlalchemy import Table

from stellara_kit.auth import internal_verifier
from stellara_kit.consumer import ConsumerMetrics, EventHandler, RetryPolicy, subscribe_events
from stellara_kit.db import Database
from stellara_kit.handlers import EventTable, check_table, table_handler
from stellara_kit.inbox import Inbox
from stellara_kit.logs import configure_logging
from stellara_kit.observability import install_observability
from stellara_kit.outbox import EventSink, Outbox, OutboxRelay
from stellara_kit.paths import PathGuardMiddleware, document_path_rules
from stellara_kit.problems import document_problems, install_problem_handlers, refine_openapi
from stellara_kit.settings import ServiceSettings
from stellara_kit.strict_input import StrictInputMiddleware

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0

BackgroundTask = Callable[[], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        outbox_table: Table | None = None,
        inbox_table: Table | None = None,
        with_database: bool = True,
        configure_logs: bool = True,
    ) -> None:
        self.settings = settings
        if configure_logs:
            configure_logging(
                settings.service_name, level=settings.log_level, json_lines=settings.log_json
            )
        self.registry = CollectorRegistry()
        self.consumer_metrics = ConsumerMetrics(self.registry)
        self.db = (
            Database(settings.database_url, pool_size=settings.db_pool_size)
            if with_database
            else None
        )
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=settings.service_name,
            enable_idempotence=True,
            logger=logging.getLogger(f"faststream.{settings.service_name}"),
        )
        self.outbox = (
            Outbox(outbox_table, topic_prefix=settings.topic_prefix)
            if outbox_table is not None
            else None
        )
        #: how the service's events get into the outbox (source = the service)
        self.sink = (
            EventSink(self.outbox, source=settings.service_name)
            if self.outbox is not None
            else None
        )
        self.inbox = (
            Inbox(inbox_table, consumer=settings.group_id) if inbox_table is not None else None
        )
        self.relay = (
            OutboxRelay(
                settings.database_url,
                settings.kafka_bootstrap_servers,
                name=settings.service_name,
                batch_size=settings.relay_batch_size,
            )
            if outbox_table is not None
            else None
        )
        self.retry = RetryPolicy(
            max_retries=settings.consumer_max_retries,
            backoff_seconds=settings.consumer_retry_backoff_ms / 1000,
        )
        self._background: list[BackgroundTask] = []
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._on_start: list[BackgroundTask] = []
        self._on_stop: list[BackgroundTask] = []
        self._checks: dict[str, Callable[[], Awaitable[object]]] = {}

    def subscribe(self, logical_topic: str, handler: EventHandler, **options: Any) -> Any:
        """Consume ``logical_topic`` (catalogue name) with commit-after-handle, retries, DLQ."""
        return subscribe_events(
            self.broker,
            topic=self.settings.topic(logical_topic),
            logical_topic=logical_topic,
            group_id=self.settings.group_id,
            handler=handler,
            retry=self.retry,
            metrics=self.consumer_metrics,
            **options,
        )

    def subscribe_table(
        self, logical_topic: str, table: EventTable, **options: Any
    ) -> EventHandler:
        """Consume ``logical_topic`` by its event table: each type the table names is
        handled once (inbox) in its tenant's transaction; other types are skipped.

        Returns the handler the subscriber calls (tests may hand it events directly).
        """
        assert self.db is not None and self.inbox is not None, "an event table needs the inbox"
        check_table(logical_topic, table)
        handler = table_handler(self.db, self.inbox, table)
        self.subscribe(logical_topic, handler, **options)
        return handler

    def add_background(self, task: BackgroundTask) -> None:
        """A long-running task started with the app and cancelled at shutdown."""
        self._background.append(task)

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        """An extra dependency `/readyz` waits for (raise to report it failing)."""
        self._checks[name] = check

    def on_start(self, hook: BackgroundTask) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: BackgroundTask) -> None:
        self._on_stop.append(hook)

    async def _broker_ready(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka does not answer")

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        checks: dict[str, Callable[[], Awaitable[object]]] = {"kafka": self._broker_ready}
        if self.db is not None:
            checks["database"] = self.db.ping
        checks.update(self._checks)
        return checks

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self._stopping = False
        await self.broker.start()
        try:
            for hook in self._on_start:
                await hook()
            if self.relay is not None:
                await self.relay.start()
            self._tasks = [asyncio.create_task(self._guard(t)) for t in self._background]
            log.info("%s started", self.settings.service_name)
            yield
        finally:
            self._stopping = True
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                # a task that swallows its cancellation must not hold shutdown for ever
                _, stuck = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in stuck:
                    log.warning("background task %s did not stop in time", task.get_name())
            for hook in reversed(self._on_stop):
                with contextlib.suppress(Exception):
                    await hook()
            if self.relay is not None:
                await self.relay.stop()
            await self.broker.stop()
            if self.db is not None:
                await self.db.dispose()

    async def _guard(self, task: BackgroundTask) -> None:
        """Run a background task for ever; log and restart it if it fails."""
        while True:
            try:
                await task()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping:
                    # shutting down, and a library turned our cancellation into an ordinary
                    # error (task.cancelling() is no guide: on 3.11 a TaskGroup can leave it set)
                    raise asyncio.CancelledError from None
                log.exception("background task %s failed; restarting in 1 s", task)
                await asyncio.sleep(1.0)

    def create_app(
        self,
        *,
        title: str,
        version: str = "0.1.0",
        description: str = "",
        asgi_middleware: bool = False,
        check_bodies: bool = True,
    ) -> FastAPI:
        """The service's app; ``asgi_middleware`` picks the plain-ASGI request-context
        middleware (same behaviour, less overhead a request). Input no database can store
        is refused before routing (:mod:`stellara_kit.strict_input`); ``check_bodies=False``
        leaves request bodies to the app (a proxy that streams them on)."""
        app = FastAPI(title=title, version=version, description=description, lifespan=self.lifespan)
        app.state.runtime = self
        app.state.settings = self.settings
        app.state.token_verifier = internal_verifier(self.settings)
        install_problem_handlers(app)
        document_problems(app)
        refine_openapi(app, document_path_rules)
        # both inside the request-context middleware (added next, so outer): refusals get a
        # request id; unstorable input first, so a NUL in a path is named by its parameter
        app.add_middleware(PathGuardMiddleware)
        app.add_middleware(
            StrictInputMiddleware,
            max_body_bytes=self.settings.max_body_bytes,
            check_bodies=check_bodies,
        )
        install_observability(
            app,
            registry=self.registry,
            checks=self.readiness_checks,
            asgi_middleware=asgi_middleware,
        )
        return app
