"""The local SMTP sink keeps what it receives, and `stellara mail` shows it, even while it writes."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

from stellara_cli.mailsink import read_mailbox, store

STELLARA = str(Path(sys.executable).parent / "stellara")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def test_sink_keeps_mail_and_stellara_mail_lists_it(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "stack"
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stellara_cli.mailsink",
            "--port",
            str(port),
            "--dir",
            str(home / "mail"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        message = EmailMessage()
        message["From"] = "noreply@stellara.test"
        message["To"] = "ada@acme.test"
        message["Subject"] = "You are invited to Acme"
        message.set_content("Accept: http://127.0.0.1:8000/invitations/abc/accept")
        message.add_alternative(
            "<p><a href='http://127.0.0.1:8000/invitations/abc/accept'>Accept</a></p>",
            subtype="html",
        )
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
    finally:
        sink.terminate()
        sink.wait(10)

    env = dict(os.environ, STELLARA_HOME=str(home))
    listing = subprocess.run(
        [STELLARA, "mail", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    (mail,) = json.loads(listing.stdout)
    assert mail["to"] == "ada@acme.test"
    assert mail["subject"] == "You are invited to Acme"
    assert "invitations/abc/accept" in mail["text"]

    shown = subprocess.run(
        [STELLARA, "mail", "--show", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Subject: You are invited to Acme" in shown.stdout
    assert "invitations/abc/accept" in shown.stdout


def _message(n: int) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply@stellara.test"
    message["To"] = f"user-{n}@acme.test"
    message["Subject"] = f"Invitation {n}"
    message.set_content("x" * 20_000)  # big enough that writing it takes a moment
    return bytes(message)


def _read_while(folder: Path, busy: threading.Event) -> tuple[int, list[BaseException]]:
    """Read the mailbox over and over while ``busy`` is set; every failure is kept."""
    failures: list[BaseException] = []
    reads = 0
    while busy.is_set():
        try:
            for mail in read_mailbox(folder):
                assert mail.to.startswith("user-"), mail
                assert "x" * 100 in mail.text()
            reads += 1
        except BaseException as exc:  # the test reports any failure
            failures.append(exc)
    return reads, failures


def test_reading_the_mailbox_while_the_sink_writes_never_fails(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    busy = threading.Event()
    busy.set()
    with ThreadPoolExecutor(2) as pool:
        reader = pool.submit(_read_while, folder, busy)
        for n in range(400):
            store(folder, _message(n))
        busy.clear()
        reads, failures = reader.result(timeout=60)
    assert failures == []
    assert reads > 0
    assert len(read_mailbox(folder)) == 400


def test_hidden_files_and_files_gone_while_reading_are_left_out(tmp_path: Path) -> None:
    """Another writer's temporary `.name.eml` (the sink's old naming) and messages deleted
    while the mailbox is read are not errors."""
    folder = tmp_path / "mail"
    folder.mkdir()
    busy = threading.Event()
    busy.set()
    with ThreadPoolExecutor(2) as pool:
        reader = pool.submit(_read_while, folder, busy)
        for n in range(300):
            name = f"{time.time_ns()}-{n}.eml"
            (folder / f".{name}").write_bytes(_message(n))
            (folder / f".{name}").rename(folder / name)
            if n % 3 == 0:
                (folder / name).unlink()
        busy.clear()
        reads, failures = reader.result(timeout=60)
    assert failures == []
    assert reads > 0
    assert len(read_mailbox(folder)) == 200
    (folder / ".half-written.eml").write_bytes(b"From: x")
    assert len(read_mailbox(folder)) == 200
