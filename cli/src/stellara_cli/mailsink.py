"""A local SMTP sink: accepts every message on loopback and keeps it as a file.

The local stack runs it so that a person trying the system sees the mail
the services send (invitations): ``stellara mail`` lists what arrived.
Nothing is relayed anywhere.

    python -m stellara_cli.mailsink --port 1025 --dir .stellara/mail
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailboxHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        store(self.folder, envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def store(folder: Path, content: bytes) -> Path:
    """Keep one message: written under a hidden name readers skip, then renamed into place
    (a reader sees the whole message or none of it)."""
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content)
    return tmp.rename(folder / name)


@dataclass(frozen=True)
class StoredMail:
    path: Path
    sender: str
    to: str
    subject: str
    date: str
    raw: bytes = field(default=b"", repr=False)
    """The message as read (no second read of a file that may be gone by then)."""

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def text(self) -> str:
        message = self.message()
        part = message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""


def read_mailbox(folder: Path) -> list[StoredMail]:
    """Every stored message, newest first.

    The sink writes into this folder while it is read: hidden files (a message being
    written) are skipped, and a file gone between listing and reading is left out.
    """
    try:
        paths = [
            p for p in folder.iterdir() if p.name.endswith(".eml") and not p.name.startswith(".")
        ]
    except FileNotFoundError:
        return []
    out = []
    for path in sorted(paths, reverse=True):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        out.append(
            StoredMail(
                path=path,
                sender=str(parsed.get("From", "")),
                to=str(parsed.get("To", "")),
                subject=str(parsed.get("Subject", "")),
                date=str(parsed.get("Date", "")),
                raw=raw,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(MailboxHandler(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, keeping mail in {args.dir}", flush=True)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()


if __name__ == "__main__":
    main()
