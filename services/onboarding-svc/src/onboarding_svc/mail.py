"""Invitation emails: a plain-text and an HTML body with the accept link, sent over SMTP."""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Protocol

import aiosmtplib

from onboarding_svc.settings import Settings

ROLE_NAMES = {"tenant_admin": "an administrator", "user": "a member"}


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def accept_url(settings: Settings, token: str) -> str:
    return settings.accept_url_template.format(token=token)


def compose_invitation(
    settings: Settings,
    *,
    to: str,
    tenant_name: str,
    role: str,
    link: str,
    expires_at: datetime,
    sent_at: datetime,
) -> EmailMessage:
    """The invitation email: multipart/alternative with text and HTML bodies; ``Date`` and
    ``Message-ID`` as RFC 5322 asks (the id in the sender's domain)."""
    as_role = ROLE_NAMES.get(role, role)
    expiry = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    message = EmailMessage()
    message["Subject"] = f"You are invited to join {tenant_name} on Stellara"
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=_domain_of(settings.mail_from))
    message.set_content(
        f"Hello,\n\n"
        f"you are invited to join {tenant_name} on Stellara as {as_role}.\n\n"
        f"Accept the invitation here:\n{link}\n\n"
        f"The link works once and until {expiry}. If you did not expect this "
        f"invitation, ignore this email.\n"
    )
    name, url = html.escape(tenant_name), html.escape(link, quote=True)
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Hello,</p><p>you are invited to join <strong>{name}</strong> on Stellara as "
        f"{html.escape(as_role)}.</p>"
        f'<p><a href="{url}">Accept the invitation</a></p>'
        f"<p>Or open this link: {url}</p>"
        f"<p>The link works once and until {expiry}. If you did not expect this invitation, "
        "ignore this email.</p>"
        "</body></html>",
        subtype="html",
    )
    return message


def _domain_of(address: str) -> str:
    _, bare = parseaddr(address)
    domain = bare.rpartition("@")[2].strip()
    return domain or "stellara.local"


class SmtpMailer:
    """Sends mail through the configured SMTP server, one connection per message."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_use_tls,
            start_tls=s.smtp_start_tls,
            timeout=s.smtp_timeout_seconds,
        )
