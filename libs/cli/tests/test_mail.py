"""The local SMTP sink keeps what it receives, and `stellara mail` shows it."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

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
