"""`stellara start / stop / restart / logs <component>` on a stack home of the test's own.

The stack's Kafka port points at the test broker (with fresh topic names), so a service can
start without a broker of its own; the test never starts or stops that broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from stellara_kit.testing import Infrastructure

STELLARA = str(Path(sys.executable).parent / "stellara")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stellara(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STELLARA, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def components(env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = stellara(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)}


@pytest.fixture
def stack_env(
    tmp_path: Path, infrastructure: Infrastructure, topic_prefix: str
) -> Iterator[dict[str, str]]:
    kafka_host, kafka_port = infrastructure.kafka_bootstrap.rsplit(":", 1)
    assert kafka_host == "127.0.0.1", "the stack's components reach Kafka on 127.0.0.1"
    env = dict(os.environ)
    env.update(
        STELLARA_HOME=str(tmp_path / "stack"),
        STELLARA_PG_PORT=str(free_port()),
        STELLARA_KAFKA_PORT=kafka_port,
        STELLARA_KAFKA_CONTROLLER_PORT=str(free_port()),
        STELLARA_SMTP_PORT=str(free_port()),
        STELLARA_GATEWAY_PORT=str(free_port()),
        STELLARA_TENANT_SVC_PORT=str(free_port()),
        STELLARA_USAGE_SVC_PORT=str(free_port()),
        STELLARA_ONBOARDING_SVC_PORT=str(free_port()),
        GATEWAY_TOPIC_PREFIX=topic_prefix,
    )
    yield env
    # stops by the pid files of this home only: the test broker is not the stack's
    stellara(env, "down", "--purge")


class TestPostgres:
    def test_start_restart_stop(self, stack_env: dict[str, str]) -> None:
        started = stellara(stack_env, "start", "postgres")
        assert started.returncode == 0, started.stderr
        assert "postgres: started, healthy in" in started.stderr
        before = components(stack_env)["postgres"]["pid"]

        restarted = stellara(stack_env, "restart", "postgres")
        assert restarted.returncode == 0, restarted.stderr
        after = components(stack_env)["postgres"]
        assert after["healthy"] is True and after["pid"] != before

        stopped = stellara(stack_env, "stop", "postgres")
        assert "postgres: stopped" in stopped.stderr
        assert components(stack_env)["postgres"]["running"] is False

    def test_start_after_kill_waits_for_the_old_backends(self, stack_env: dict[str, str]) -> None:
        """A backend that outlives its killed postmaster holds the old shared memory: the new
        server is started only once it is gone."""
        started = stellara(stack_env, "start", "postgres")
        assert started.returncode == 0, started.stderr
        url = f"postgresql://postgres@127.0.0.1:{stack_env['STELLARA_PG_PORT']}/postgres"

        async def backend_pid() -> tuple[asyncpg.Connection, int]:
            conn = await asyncpg.connect(url)
            return conn, await conn.fetchval("SELECT pg_backend_pid()")

        loop = asyncio.new_event_loop()
        conn, backend = loop.run_until_complete(backend_pid())
        os.kill(backend, signal.SIGSTOP)  # it cannot notice its postmaster's death
        psutil.Process(components(stack_env)["postgres"]["pid"]).kill()
        starting = subprocess.Popen(
            [STELLARA, "start", "postgres"],
            env=stack_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        lines: list[str] = []
        try:
            # the backend is let go only once the command says it waits for it, however long
            # the command took to get there on a busy machine
            assert starting.stderr is not None
            for line in starting.stderr:
                lines.append(line)
                if "waiting for the previous PostgreSQL" in line:
                    break
            time.sleep(0.5)
            assert starting.poll() is None, "".join(lines)  # still waiting, not started
            os.kill(backend, signal.SIGKILL)
            rest = starting.stderr.read()  # through the same buffer the lines came from
            starting.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(backend, signal.SIGKILL)
            if starting.poll() is None:
                starting.kill()
            conn.terminate()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        again = subprocess.CompletedProcess(
            starting.args, starting.returncode, "", "".join(lines) + rest
        )
        assert again.returncode == 0, again.stderr
        assert "waiting for the previous PostgreSQL" in again.stderr
        assert str(backend) in again.stderr, again.stderr
        assert "postgres: started" in again.stderr
        assert components(stack_env)["postgres"]["healthy"] is True


class TestSmtpSink:
    def test_start_restart_logs_stop(self, stack_env: dict[str, str]) -> None:
        port = int(stack_env["STELLARA_SMTP_PORT"])
        started = stellara(stack_env, "start", "smtp-sink")
        assert started.returncode == 0, started.stderr
        assert "smtp-sink: started, healthy in" in started.stderr
        first = components(stack_env)["smtp-sink"]
        assert first["healthy"] is True

        again = stellara(stack_env, "start", "smtp-sink")
        assert "smtp-sink: already running" in again.stderr

        restarted = stellara(stack_env, "restart", "smtp-sink")
        assert restarted.returncode == 0, restarted.stderr
        second = components(stack_env)["smtp-sink"]
        assert second["healthy"] is True and second["pid"] != first["pid"]
        assert f"pid {first['pid']} → {second['pid']}" in restarted.stderr

        log = stellara(stack_env, "logs", "smtp-sink", "-n", "1")
        assert log.returncode == 0, log.stderr
        assert log.stdout == f"SMTP sink on 127.0.0.1:{port}, keeping mail in " + str(
            Path(stack_env["STELLARA_HOME"]) / "mail\n"
        )
        both = stellara(stack_env, "logs", "smtp-sink", "--lines", "0")
        assert both.stdout.count("SMTP sink on") == 2  # one line per start

        stopped = stellara(stack_env, "stop", "smtp-sink")
        assert "smtp-sink: stopped" in stopped.stderr
        assert components(stack_env)["smtp-sink"]["running"] is False
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
        assert "smtp-sink: was not running" in stellara(stack_env, "stop", "smtp-sink").stderr


class TestService:
    def test_restart_waits_until_ready_and_logs_follow(self, stack_env: dict[str, str]) -> None:
        url = f"http://127.0.0.1:{stack_env['STELLARA_GATEWAY_PORT']}"
        started = stellara(stack_env, "start", "gateway")
        assert started.returncode == 0, started.stderr
        assert "gateway: started, healthy in" in started.stderr
        assert httpx.get(f"{url}/readyz").status_code == 200
        before = components(stack_env)["gateway"]["pid"]

        follower = subprocess.Popen(
            [STELLARA, "logs", "gateway", "-f", "-n", "0"],
            env=stack_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            restarted = stellara(stack_env, "restart", "gateway")
            assert restarted.returncode == 0, restarted.stderr
            # ready as soon as the command returns
            assert httpx.get(f"{url}/readyz").status_code == 200
            after = components(stack_env)["gateway"]["pid"]
            assert after != before
            assert f"gateway: restarted (pid {before} → {after}), healthy in" in restarted.stderr

            marker = f"a line appended at {time.time()}"
            with open(Path(stack_env["STELLARA_HOME"]) / "logs" / "gateway.log", "a") as log:
                log.write(marker + "\n")
            assert follower.stdout is not None
            seen = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = follower.stdout.readline().decode()
                seen.append(line)
                if marker in line:
                    break
            assert marker in seen[-1], seen
            # the follower printed the whole file from where it began: the second start too
            assert any("Application startup complete" in line for line in seen), seen
        finally:
            follower.terminate()
            follower.wait(10)

        stopped = stellara(stack_env, "stop", "gateway")
        assert "gateway: stopped" in stopped.stderr
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/readyz")

    def test_a_service_whose_broker_does_not_answer_is_not_started(
        self, stack_env: dict[str, str]
    ) -> None:
        env = dict(stack_env, STELLARA_KAFKA_PORT=str(free_port()))
        result = stellara(env, "start", "gateway")
        assert result.returncode == 1
        assert f"gateway needs Kafka at 127.0.0.1:{env['STELLARA_KAFKA_PORT']}" in result.stderr
        assert "stellara start kafka" in result.stderr
        assert components(env)["gateway"]["running"] is False


def test_an_unknown_component_is_named_with_the_known_ones(stack_env: dict[str, str]) -> None:
    for command in ("restart", "logs"):
        result = stellara(stack_env, command, "gatway")
        assert result.returncode == 1, command
        assert "there is no component 'gatway'" in result.stderr
        assert "smtp-sink" in result.stderr and "gateway" in result.stderr
