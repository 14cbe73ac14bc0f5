"""Configuration and process helpers shared by the stack's components."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stellara_kit.provision import DatabaseRoles

KAFKA_VERSION_RE = re.compile(r"<kafka.version>([^<]+)</kafka.version>")
MIN_JAVA = 17
SERVICE_DATABASES = ("tenant-svc", "usage-svc", "onboarding-svc")
PG_RUN_USER = "stellara"
ROOT_STATE = Path("/var/lib/stellara")

Progress = Callable[[str], None]


class StackError(RuntimeError):
    """A problem with the local stack, worded so the user knows what to do next."""


def find_repo_root() -> Path:
    here = Path(__file__).resolve()
    for candidate in [*here.parents, *Path.cwd().resolve().parents, Path.cwd().resolve()]:
        if (candidate / "deploy" / "kafka" / "pom.xml").exists():
            return candidate
    raise StackError("cannot find deploy/kafka/pom.xml: run stellara from the repository")


def env_int(name: str, default: int) -> int:
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
        root = find_repo_root()
        home = Path(os.environ.get("STELLARA_HOME") or root / ".stellara").resolve()
        cache_base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        maven_cache = Path(
            os.environ.get("STELLARA_MAVEN_CACHE") or cache_base / "stellara" / "maven"
        )
        return cls(
            home=home,
            repo_root=root,
            maven_cache=maven_cache,
            pg_port=env_int("STELLARA_PG_PORT", 55432),
            kafka_port=env_int("STELLARA_KAFKA_PORT", 59092),
            kafka_controller_port=env_int("STELLARA_KAFKA_CONTROLLER_PORT", 59093),
            partitions=env_int("STELLARA_PARTITIONS", 4),
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


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a concurrent reader (``stellara status`` while ``make up`` runs)
    sees the old content or the new, never an empty or half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    name: str,
    log: Path,
    timeout: float,
    interval: float,
) -> None:
    """Wait for a server just started as ``proc`` to answer ``ready``; a clear error when it
    exits first or does not answer in ``timeout`` seconds (both name its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited at start; see {log}")
        if ready():
            return
        time.sleep(interval)
    raise StackError(f"{name} did not become ready in {timeout:.0f} s; see {log}")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None, marker: str) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
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


def consumer_lag(bootstrap: str, group: str) -> int | None:
    """Records the consumer group has not committed yet, over every partition it reads."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    async def lag() -> int | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        if not committed:
            return None
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(committed))
        finally:
            await consumer.stop()
        return sum(
            max(0, ends[tp] - meta.offset) for tp, meta in committed.items() if meta.offset >= 0
        )

    try:
        return asyncio.run(asyncio.wait_for(lag(), 8))
    except Exception:
        return None
