"""The fault suite's own Kafka and PostgreSQL, behind Toxiproxy.

The suite never touches the shared broker and database other tests use: it starts a
broker and a PostgreSQL of its own with ``cli``'s ``LocalStack`` on free ports,
under a stack home of its own (``FAULTS_HOME``), so it may kill and restart them.
Between the services and each of them sits a Toxiproxy proxy; the services only
know the proxies' ports. The broker's client listener advertises the proxy's port
(a Kafka client connects to the advertised address after bootstrap, so without it
every connection after the first would bypass the proxy); a second listener,
``DIRECT``, is advertised as itself and serves the suite's own producer and checks,
which must not be subject to the faults they measure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from stellara_cli.stack import LocalStack
from stellara_devstack import Kafka, StackConfig
from stellara_devstack.common import alive, find_repo_root, port_open, read_pid

TOXIPROXY_VERSION = "v2.5.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {text}", flush=True)


class ProxiedKafka(Kafka):
    """A single-node broker whose client listener is reached through a proxy."""

    def __init__(self, config: StackConfig, *, advertised_port: int, direct_port: int) -> None:
        super().__init__(config)
        self.advertised_port = advertised_port
        self.direct_port = direct_port

    @property
    def direct_bootstrap(self) -> str:
        return f"127.0.0.1:{self.direct_port}"

    def _properties(self) -> str:
        c = self.config
        lines = []
        for line in super()._properties().splitlines():
            if line.startswith("listeners="):
                line = (
                    f"listeners=PLAINTEXT://127.0.0.1:{c.kafka_port},"
                    f"DIRECT://127.0.0.1:{self.direct_port},"
                    f"CONTROLLER://127.0.0.1:{c.kafka_controller_port}"
                )
            elif line.startswith("advertised.listeners="):
                line = (
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.advertised_port},"
                    f"DIRECT://127.0.0.1:{self.direct_port}"
                )
            elif line.startswith("listener.security.protocol.map="):
                line += ",DIRECT:PLAINTEXT"
            elif line.startswith("inter.broker.listener.name="):
                line = "inter.broker.listener.name=DIRECT"
            lines.append(line)
        return "\n".join(lines) + "\n"

    @property
    def ping_bootstrap(self) -> str:
        # the listener no proxy stands in front of, so a network fault never reads as a dead broker
        return self.direct_bootstrap


def toxiproxy_binary() -> Path:
    """The Toxiproxy server `make test-faults` installed (``TOXIPROXY_SERVER``)."""
    configured = os.environ.get("TOXIPROXY_SERVER")
    if configured and Path(configured).exists():
        return Path(configured)
    found = shutil.which("toxiproxy-server") or str(Path.home() / "go" / "bin" / "server")
    if not Path(found).exists():
        raise AssertionError(
            "Toxiproxy is not installed: run `make test-faults` (it installs "
            f"github.com/Shopify/toxiproxy/v2/cmd/server@{TOXIPROXY_VERSION} with go install)"
        )
    return Path(found)


class Toxiproxy:
    """The few calls of Toxiproxy's HTTP API the suite needs."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "toxiproxy.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(toxiproxy_binary()), "-host", "127.0.0.1", "-port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.http.get("/version").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"Toxiproxy did not start:\n{self.log.read_text()[-2000:]}")

    def proxy(self, name: str, listen: int, upstream: int) -> None:
        response = self.http.post(
            "/proxies",
            json={
                "name": name,
                "listen": f"127.0.0.1:{listen}",
                "upstream": f"127.0.0.1:{upstream}",
                "enabled": True,
            },
        )
        assert response.status_code in (200, 201), response.text

    def add_toxic(self, proxy: str, name: str, kind: str, attributes: dict[str, int]) -> None:
        for stream in ("downstream", "upstream"):
            response = self.http.post(
                f"/proxies/{proxy}/toxics",
                json={
                    "name": f"{name}-{stream}",
                    "type": kind,
                    "stream": stream,
                    "toxicity": 1.0,
                    "attributes": attributes,
                },
            )
            assert response.status_code in (200, 201), response.text

    def remove_toxic(self, proxy: str, name: str) -> None:
        for stream in ("downstream", "upstream"):
            response = self.http.delete(f"/proxies/{proxy}/toxics/{name}-{stream}")
            assert response.status_code in (200, 204), response.text

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        response = self.http.post("/reset")
        assert response.status_code in (200, 204), response.text

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class FaultInfra:
    """Kafka and PostgreSQL of the suite's own, each behind a proxy."""

    stack: LocalStack
    kafka: ProxiedKafka
    toxiproxy: Toxiproxy
    kafka_proxy_port: int
    pg_proxy_port: int

    @property
    def kafka_bootstrap(self) -> str:
        """What the services use: the proxy."""
        return f"127.0.0.1:{self.kafka_proxy_port}"

    @property
    def pg_admin_url(self) -> str:
        """What the services' URLs derive from: the proxy."""
        return f"postgresql://postgres@127.0.0.1:{self.pg_proxy_port}/postgres"

    @property
    def direct_kafka(self) -> str:
        return self.kafka.direct_bootstrap

    def direct_pg(self, database: str, user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.stack.config.pg_port}/{database}"

    # ------------------------------------------------------------------ process faults
    def kill_kafka(self) -> None:
        pid = read_pid(self.kafka.pid_file)
        assert pid is not None and alive(pid, "kafka.Kafka"), "the suite's broker is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        _wait_closed(self.stack.config.kafka_port, self.stack.config.kafka_controller_port)

    def stop_kafka(self) -> None:
        """A clean shutdown (SIGTERM, controlled shutdown, logs flushed)."""
        assert self.kafka.stop(), "the suite's broker is not running"
        _wait_closed(self.stack.config.kafka_port, self.stack.config.kafka_controller_port)

    def start_kafka(self) -> None:
        self.kafka.start(lambda _: None)

    def kill_postgres(self) -> None:
        pid = read_pid(self.stack.postgres.pid_file)
        assert pid is not None and alive(pid, "postgres"), "the suite's PostgreSQL is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        _wait_closed(self.stack.config.pg_port)

    def stop_postgres(self) -> None:
        """A clean shutdown (``pg_ctl stop``: a checkpoint, no recovery at the next start)."""
        assert self.stack.postgres.stop(), "the suite's PostgreSQL is not running"
        _wait_closed(self.stack.config.pg_port)

    def start_postgres(self) -> None:
        self.stack.postgres.start(lambda _: None)

    def close(self) -> None:
        try:
            self.stack.kafka.stop()
            self.stack.postgres.stop()
        finally:
            self.toxiproxy.close()


def _wait_gone(pid: int, timeout: float = 10) -> None:
    """Wait for a killed server to exit and reap it (the suite started it: it is our child,
    and a zombie postmaster is one a new PostgreSQL would wait for)."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def _wait_closed(*ports: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(port_open(port) for port in ports):
        time.sleep(0.1)


def start_infra(workdir: Path) -> FaultInfra:
    home = Path(
        os.environ.get("FAULTS_HOME") or find_repo_root() / ".stellara" / "faults"
    ).resolve()
    real_kafka, real_pg = free_port(), free_port()
    config = StackConfig(
        home=home,
        repo_root=find_repo_root(),
        maven_cache=Path(
            os.environ.get("STELLARA_MAVEN_CACHE")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            / "stellara"
            / "maven"
        ),
        pg_port=real_pg,
        kafka_port=real_kafka,
        kafka_controller_port=free_port(),
        partitions=2,
        kafka_heap="512m",
    )
    stack = LocalStack(config)
    toxiproxy = Toxiproxy(workdir)
    kafka_proxy, pg_proxy = free_port(), free_port()
    kafka = ProxiedKafka(config, advertised_port=kafka_proxy, direct_port=free_port())
    stack.kafka = kafka
    # a previous run's data (an aborted run may have left its servers: stop them first);
    # Kafka's resolved classpath is kept
    stack.kafka.stop()
    stack.postgres.stop()
    for folder in (kafka.data, stack.postgres.state, config.logs, config.run):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    try:
        toxiproxy.proxy("kafka", kafka_proxy, real_kafka)
        toxiproxy.proxy("postgres", pg_proxy, real_pg)
        stack.postgres.start(say)
        kafka.start(say)
    except BaseException:
        kafka.stop()
        stack.postgres.stop()
        toxiproxy.close()
        raise
    say(
        f"own PostgreSQL on :{real_pg} (proxy :{pg_proxy}), own Kafka on :{real_kafka} "
        f"(proxy :{kafka_proxy}, direct :{kafka.direct_port}), "
        f"Toxiproxy API :{toxiproxy.port}; up in {time.monotonic() - started:.1f} s"
    )
    return FaultInfra(stack, kafka, toxiproxy, kafka_proxy, pg_proxy)
