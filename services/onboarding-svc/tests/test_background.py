"""The mail sender and the expiry sweeper: retries, bounded attempts, once-only effects."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from uuid import UUID

from onboarding_svc.background import ExpirySweeper, InvitationSender
from stellara_contracts.events import Role
from stellara_kit.testing import wait_for

if TYPE_CHECKING:
    from conftest import Harness, MailSink, StartService

QUIET = {"sender_interval_seconds": 3600, "sweeper_interval_seconds": 3600}


async def delivery(svc: Harness, tenant_id: UUID, invitation_id: str, until: Any) -> dict[str, Any]:
    return await wait_for(lambda: svc.invitation(tenant_id, invitation_id), until=until)


async def invite_quietly(svc: Harness, tenant_id: UUID, addresses: list[str]) -> None:
    """Create invitations without waking the service's own sender."""
    services = svc.app.state.parts
    async with services.db.transaction(tenant_id) as session:
        for address in addresses:
            await services.invitations.create(
                session, tenant_id, email=address, role=Role.USER, by="test"
            )


class RecordingMailer:
    """Records the recipients; the first send can be held until released."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.recipients: list[str] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        if not hold_first:
            self.release.set()

    async def send(self, message: EmailMessage) -> None:
        self.holding.set()
        await self.release.wait()
        self.recipients.append(str(message["To"]))


class TestMailServerDown:
    async def test_invitations_wait_for_the_mail_server_and_go_out_when_it_is_back(
        self, start: StartService, mail_sink: MailSink
    ) -> None:
        async with start(sender_max_attempts=100) as svc:
            tenant_id = await svc.create_tenant()
            invitation = await svc.invite(tenant_id, "ada@acme.example")

            waiting = await delivery(
                svc, tenant_id, invitation["id"], until=lambda i: i["delivery_attempts"] >= 2
            )
            await mail_sink.start()
            (message,) = await svc.mail_to("ada@acme.example")
            sent = await delivery(
                svc, tenant_id, invitation["id"], until=lambda i: i["delivery_state"] == "sent"
            )
            accepted = await svc.accept_mail(message)

        assert waiting["delivery_state"] == "pending"
        assert waiting["status"] == "pending"
        assert (
            "Connect" in waiting["last_delivery_error"]
            or "refused" in waiting["last_delivery_error"]
        )
        assert waiting["next_delivery_at"] is not None
        assert sent["last_delivery_error"] is None
        assert accepted.status_code == 200, accepted.text

    async def test_after_the_last_attempt_delivery_fails_and_resend_queues_it_again(
        self, start: StartService, mail_sink: MailSink
    ) -> None:
        async with start(sender_max_attempts=2) as svc:
            tenant_id = await svc.create_tenant()
            invitation = await svc.invite(tenant_id, "ada@acme.example")
            failed = await delivery(
                svc, tenant_id, invitation["id"], until=lambda i: i["delivery_state"] == "failed"
            )

            await mail_sink.start()
            resent = await svc.client.post(
                f"/tenants/{tenant_id}/invitations/{invitation['id']}/resend",
                headers=svc.admin_of(tenant_id),
            )
            await svc.mail_to("ada@acme.example")
            sent = await delivery(
                svc, tenant_id, invitation["id"], until=lambda i: i["delivery_state"] == "sent"
            )

        assert failed["delivery_attempts"] == 2
        assert failed["next_delivery_at"] is None
        assert failed["status"] == "pending"  # the invitation itself is kept
        assert resent.status_code == 200
        assert sent["delivery_attempts"] == 1
        assert len(mail_sink.messages) == 1


class TestNoDoubleSending:
    async def test_two_senders_never_send_the_same_invitation(
        self, start: StartService, mail: MailSink
    ) -> None:
        addresses = [f"user{n}@acme.example" for n in range(5)]
        async with start(**QUIET) as svc:
            tenant_id = await svc.create_tenant()
            await invite_quietly(svc, tenant_id, addresses)
            services = svc.app.state.parts
            slow, fast = RecordingMailer(hold_first=True), RecordingMailer()
            first = InvitationSender(services.db, services.invitations, slow, svc.settings)
            second = InvitationSender(services.db, services.invitations, fast, svc.settings)

            held = asyncio.create_task(first.send_next())
            await slow.holding.wait()  # the first replica is in the middle of one mail
            sent_by_second = await second.round()
            slow.release.set()
            await held
            leftovers = await first.round() + await second.round()
            listed = await svc.client.get(
                f"/tenants/{tenant_id}/invitations", headers=svc.headers()
            )

        assert sent_by_second == 4
        assert len(slow.recipients) == 1
        assert sorted(slow.recipients + fast.recipients) == sorted(addresses)
        assert leftovers == 0
        assert {i["delivery_state"] for i in listed.json()["items"]} == {"sent"}

    async def test_revoked_while_on_its_way_the_mail_is_recorded_but_not_announced(
        self, start: StartService, mail: MailSink
    ) -> None:
        async with start(**QUIET) as svc:
            tenant_id = await svc.create_tenant()
            await invite_quietly(svc, tenant_id, ["ada@acme.example"])
            (listed,) = (
                await svc.client.get(f"/tenants/{tenant_id}/invitations", headers=svc.headers())
            ).json()["items"]
            services = svc.app.state.parts
            held = RecordingMailer(hold_first=True)
            sender = InvitationSender(services.db, services.invitations, held, svc.settings)

            sending = asyncio.create_task(sender.send_next())
            await held.holding.wait()
            revoked = await svc.client.post(
                f"/tenants/{tenant_id}/invitations/{listed['id']}/revoke",
                headers=svc.admin_of(tenant_id),
            )
            held.release.set()
            await sending
            after = await svc.invitation(tenant_id, listed["id"])
            events = await svc.published()

        assert revoked.status_code == 200, revoked.text
        assert after["status"] == "revoked"
        assert after["delivery_state"] == "sent"  # it did go out; its link no longer works
        assert not svc.of_type(events, "invitation_sent")


class TestSweeper:
    async def test_an_expired_invitation_is_announced_once(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation = await svc.invite(tenant_id, "ada@acme.example")
        await svc.mail_to("ada@acme.example")
        await svc.sql(
            "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
            invitation["id"],
        )

        expired = await delivery(
            svc, tenant_id, invitation["id"], until=lambda i: i["status"] == "expired"
        )
        await svc.app.state.sweeper.round()  # another round finds nothing more to do

        assert expired["expired_at"] is not None
        events = svc.of_type(await svc.published(), "invitation_expired")
        assert len(events) == 1
        assert str(events[0].data.invitation_id) == invitation["id"]
        assert events[0].data.email == "ada@acme.example"

    async def test_two_sweepers_expire_each_invitation_once(self, start: StartService) -> None:
        addresses = [f"user{n}@acme.example" for n in range(6)]
        async with start(**QUIET) as svc:
            tenant_id = await svc.create_tenant()
            await invite_quietly(svc, tenant_id, addresses)
            await svc.sql("UPDATE invitations SET expires_at = now() - interval '1 second'")
            services = svc.app.state.parts
            sweepers = [
                ExpirySweeper(services.db, services.invitations, svc.settings) for _ in range(2)
            ]

            counts = await asyncio.gather(*(s.round() for s in sweepers))
            events = svc.of_type(await svc.published(), "invitation_expired")

        assert sum(counts) == 6
        assert sorted(e.data.email for e in events) == sorted(addresses)

    async def test_expired_invitations_are_not_mailed(
        self, start: StartService, mail_sink: MailSink
    ) -> None:
        async with start(**QUIET) as svc:
            tenant_id = await svc.create_tenant()
            await invite_quietly(svc, tenant_id, ["late@acme.example"])
            await svc.sql("UPDATE invitations SET expires_at = now() - interval '1 second'")
            services = svc.app.state.parts
            mailer = RecordingMailer()
            sender = InvitationSender(services.db, services.invitations, mailer, svc.settings)

            assert await sender.round() == 0
        assert mailer.recipients == []
