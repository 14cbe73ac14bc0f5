"""Apache Kafka (KRaft, single node) from the official artefacts on Maven Central."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from stellara_contracts import topics
from stellara_devstack.common import (
    KAFKA_VERSION_RE,
    MIN_JAVA,
    ComponentStatus,
    Progress,
    StackConfig,
    StackError,
    alive,
    port_open,
    read_pid,
    stop_pid,
    wait_until_ready,
    write_atomically,
)


def java_major_version(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = (
        str(Path(home) / "bin" / "java")
        if home and (Path(home) / "bin" / "java").exists()
        else shutil.which("java")
    )
    if not java:
        raise StackError(
            f"Java is not installed: Kafka needs a JDK {MIN_JAVA}+ "
            "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless), or set JAVA_HOME"
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise StackError(
            f"{java} is Java {major}; Kafka needs Java {MIN_JAVA}+: install a newer JDK or set JAVA_HOME"
        )
    return java


class Kafka:
    name = "kafka"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.home / "kafka"
        self.data = self.dir / "data"
        self.pom = config.repo_root / "deploy" / "kafka" / "pom.xml"
        self.classpath_file = self.dir / "classpath.txt"
        self.pid_file = config.run / "kafka.pid"
        self.log = config.logs / "kafka.log"

    @property
    def version(self) -> str:
        match = KAFKA_VERSION_RE.search(self.pom.read_text())
        return match.group(1) if match else "unknown"

    def _pom_digest(self) -> str:
        return hashlib.sha256(self.pom.read_bytes()).hexdigest()[:16]

    def resolve(self, progress: Progress) -> str:
        """The broker's classpath, resolved by Maven from Maven Central (cached)."""
        digest_file = self.dir / "classpath.digest"
        if (
            self.classpath_file.exists()
            and digest_file.exists()
            and digest_file.read_text() == self._pom_digest()
        ):
            return self.classpath_file.read_text().strip()
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(
                "Maven is not installed: it fetches Apache Kafka from Maven Central "
                "(Debian/Ubuntu: apt-get install maven)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.logs.mkdir(parents=True, exist_ok=True)
        progress(
            f"resolving Apache Kafka {self.version} from Maven Central into {self.config.maven_cache} "
            "(first time only, ~70 MB)"
        )
        with open(self.config.logs / "maven.log", "wb") as log_file:
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-f",
                    str(self.pom),
                    f"-Dmaven.repo.local={self.config.maven_cache}",
                    "dependency:build-classpath",
                    f"-Dmdep.outputFile={self.classpath_file}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if result.returncode != 0 or not self.classpath_file.exists():
            raise StackError(
                f"Maven could not resolve Kafka {self.version}; see {self.config.logs / 'maven.log'}"
            )
        write_atomically(digest_file, self._pom_digest())
        return self.classpath_file.read_text().strip()

    def _properties(self) -> str:
        c = self.config
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{c.kafka_controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{c.kafka_port},CONTROLLER://127.0.0.1:{c.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{c.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data}",
                f"num.partitions={c.partitions}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "group.consumer.session.timeout.ms=10000",
                "group.consumer.min.session.timeout.ms=2000",
                "group.min.session.timeout.ms=2000",
                "log.retention.hours=168",
                "delete.topic.enable=true",
                "",
            ]
        )

    def _log4j(self) -> Path:
        path = self.dir / "log4j2.properties"
        path.write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.console.type = Console",
                    "appender.console.name = STDOUT",
                    "appender.console.layout.type = PatternLayout",
                    "appender.console.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.console.ref = STDOUT",
                    "logger.state.name = state.change.logger",
                    "logger.state.level = WARN",
                    "logger.coord.name = org.apache.kafka.coordinator",
                    "logger.coord.level = WARN",
                    "logger.log.name = org.apache.kafka.storage.internals.log",
                    "logger.log.level = WARN",
                    "logger.unified.name = kafka.log",
                    "logger.unified.level = WARN",
                    "",
                ]
            )
        )
        return path

    def status(self) -> ComponentStatus:
        pid = read_pid(self.pid_file)
        running = alive(pid, "kafka.Kafka")
        healthy = running and port_open(self.config.kafka_port) and self._ping()
        return ComponentStatus(
            name="kafka",
            running=running,
            healthy=healthy,
            address=self.config.kafka_bootstrap,
            pid=pid if running else None,
            detail=f"Apache Kafka {self.version} (KRaft), data {self.data}",
            log=str(self.log),
        )

    def answers(self) -> bool:
        """Whether a broker answers on the stack's port (started by this stack or not)."""
        return port_open(self.config.kafka_port) and self._ping()

    @property
    def ping_bootstrap(self) -> str:
        """Where the health ping reaches the broker."""
        return self.config.kafka_bootstrap

    def _ping(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        async def ping() -> None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.ping_bootstrap, request_timeout_ms=3000
            )
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        try:
            asyncio.run(asyncio.wait_for(ping(), 5))
            return True
        except Exception:
            return False

    def start(self, progress: Progress) -> bool:
        if alive(read_pid(self.pid_file), "kafka.Kafka"):
            return False
        for port in (self.config.kafka_port, self.config.kafka_controller_port):
            if port_open(port):
                raise StackError(
                    f"port {port} is in use by another program; stop it or set "
                    "STELLARA_KAFKA_PORT / STELLARA_KAFKA_CONTROLLER_PORT to free ports"
                )
        java = find_java()
        classpath = self.resolve(progress)
        for folder in (self.dir, self.config.logs, self.config.run):
            folder.mkdir(parents=True, exist_ok=True)
        properties = self.dir / "server.properties"
        properties.write_text(self._properties())
        log4j = self._log4j()
        jvm = [
            java,
            "-Xms256m",
            f"-Xmx{self.config.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
        ]
        if not (self.data / "meta.properties").exists():
            progress("formatting Kafka storage (KRaft, single node)")
            cluster_id = _kafka_cluster_id()
            result = subprocess.run(
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    cluster_id,
                    "-c",
                    str(properties),
                ],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0:
                raise StackError(f"Kafka storage format failed:\n{result.stdout}\n{result.stderr}")
        progress(f"starting Apache Kafka {self.version} on {self.config.kafka_bootstrap}")
        with open(self.log, "ab") as log_file:
            proc = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(properties)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        write_atomically(self.pid_file, str(proc.pid))
        wait_until_ready(
            proc,
            lambda: port_open(self.config.kafka_port) and self._ping(),
            name="Kafka",
            log=self.log,
            timeout=90,
            interval=0.5,
        )
        return True

    def create_topics(self, progress: Progress, *, prefix: str = "") -> list[str]:
        from stellara_kit.kafka_admin import ensure_topics

        names = topic_names(prefix)
        created = asyncio.run(
            ensure_topics(
                self.config.kafka_bootstrap,
                names,
                partitions=self.config.partitions,
                compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
            )
        )
        if created:
            progress(f"created {len(created)} topics ({self.config.partitions} partitions each)")
        return created

    def stop(self) -> bool:
        pid = read_pid(self.pid_file)
        if not alive(pid, "kafka.Kafka"):
            self.pid_file.unlink(missing_ok=True)
            return False
        assert pid is not None
        stop_pid(pid, timeout=60)
        self.pid_file.unlink(missing_ok=True)
        return True


def topic_names(prefix: str = "") -> list[str]:
    """Every topic of the catalogue and its dead-letter twin."""
    names: list[str] = []
    for name in topics.ALL_TOPICS:
        names += [f"{prefix}{name}", f"{prefix}{topics.dlq_topic(name)}"]
    return names


def _kafka_cluster_id() -> str:
    """A KRaft cluster id as Kafka's own ``Uuid.randomUuid`` makes it.

    Base64url can begin with ``-``, which the storage tool's argument parser
    reads as an option (one start in 64 failed that way); Kafka draws again in
    that case, and so does this.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
