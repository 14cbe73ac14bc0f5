"""The local stack: the local infrastructure (``stellara_devstack``), the SMTP sink and the
services, each a component ``stellara start/stop/restart/logs`` can name."""

from __future__ import annotations

import shutil
from typing import Any

from stellara_cli.stack.processes import MailSink, ServiceProcess, ServiceSpec, service_specs
from stellara_devstack import (
    ComponentStatus,
    LocalInfrastructure,
    Progress,
    StackConfig,
    StackError,
)

__all__ = ["LocalStack", "MailSink", "ServiceProcess", "ServiceSpec", "service_specs"]


class LocalStack(LocalInfrastructure):
    def __init__(self, config: StackConfig | None = None) -> None:
        super().__init__(config)
        self.mail = MailSink(self.config)
        self.services = [
            ServiceProcess(self.config, spec, self.mail.port) for spec in service_specs()
        ]

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
