"""Invitations over HTTP: create, list, resend, revoke, accept — with real mail over SMTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest

from stellara_contracts.events import Role
from stellara_kit.testing import wait_for

if TYPE_CHECKING:
    from conftest import Harness


async def invited_and_mailed(svc: Harness, tenant_id, address: str, role: str = "tenant_admin"):  # type: ignore[no-untyped-def]
    invitation = await svc.invite(tenant_id, address, role)
    (message,) = await svc.mail_to(address)
    return invitation, svc.mail.token_in(message)


class TestCreate:
    async def test_a_new_invitation_is_queued_for_mail(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()

        invitation = await svc.invite(tenant_id, "ada@acme.example")

        assert invitation["status"] == "pending"
        assert invitation["role"] == "tenant_admin"
        assert invitation["delivery_state"] == "pending"
        assert invitation["created_by"] == f"admin-of-{tenant_id}"
        assert "token" not in str(invitation).lower().replace("token_hash", "")

    async def test_the_default_expiry_is_seven_days(self, svc: Harness) -> None:
        from datetime import datetime

        tenant_id = await svc.create_tenant()
        invitation = await svc.invite(tenant_id, "ada@acme.example")

        created = datetime.fromisoformat(invitation["created_at"])
        expires = datetime.fromisoformat(invitation["expires_at"])
        assert (expires - created).total_seconds() == 7 * 24 * 3600

    async def test_a_second_open_invitation_for_the_same_address_is_a_conflict(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        first = await svc.invite(tenant_id, "ada@acme.example")

        response = await svc.client.post(
            f"/tenants/{tenant_id}/invitations",
            json={"email": "ADA@acme.example", "role": "user"},
            headers=svc.admin_of(tenant_id),
        )

        assert response.status_code == 409
        assert response.json()["invitation_id"] == first["id"]

    async def test_bad_addresses_and_the_platform_admin_role_are_refused(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        bodies = [
            {"email": "not-an-address", "role": "user"},
            {"email": "ada@acme.example\r\nBcc: eve@evil.example", "role": "user"},
            {"email": "ada@acme.example", "role": "platform_admin"},
            # a next-line control: whitespace to some regular-expression dialects, not to others
            {"email": "ada\u0085@acme.example", "role": "user"},
            {"email": f"{'a' * 65}@acme.example", "role": "user"},
        ]

        codes = [
            (
                await svc.client.post(
                    f"/tenants/{tenant_id}/invitations", json=body, headers=svc.admin_of(tenant_id)
                )
            ).status_code
            for body in bodies
        ]

        assert codes == [422] * 5

    async def test_inviting_to_an_unknown_or_deleted_tenant_is_refused(self, svc: Harness) -> None:
        deleted = await svc.create_tenant()
        await svc.delete_tenant(deleted)
        body = {"email": "ada@acme.example", "role": "user"}

        unknown = await svc.client.post(
            f"/tenants/{uuid4()}/invitations", json=body, headers=svc.headers()
        )
        gone = await svc.client.post(
            f"/tenants/{deleted}/invitations", json=body, headers=svc.headers()
        )

        assert unknown.status_code == 404
        assert gone.status_code == 409


class TestMail:
    async def test_the_mail_carries_a_working_accept_link_in_text_and_html(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant(name="Acme & Sons")
        invitation = await svc.invite(tenant_id, "ada@acme.example")

        (message,) = await svc.mail_to("ada@acme.example")
        plain, rich = svc.mail.bodies(message)
        token = svc.mail.token_in(message)

        assert "Acme & Sons" in message["Subject"]
        assert f"http://accept.test/invitations/{token}/accept" in plain
        assert f'href="http://accept.test/invitations/{token}/accept"' in rich
        assert "Acme &amp; Sons" in rich
        assert len(token) == 43  # 32 random bytes, URL-safe
        # the sink has the message before the sender has recorded that it went out
        sent = await wait_for(
            lambda: svc.invitation(tenant_id, invitation["id"]),
            until=lambda i: i["delivery_state"] != "pending",
        )
        assert sent["delivery_state"] == "sent"
        assert sent["delivery_attempts"] == 1
        assert sent["sent_at"] is not None
        response = await svc.accept(token, email="ada@acme.example")
        assert response.status_code == 200, response.text

    async def test_the_mail_has_the_headers_rfc_5322_asks_for(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        before = datetime.now(UTC).replace(microsecond=0)
        await svc.invite(tenant_id, "ada@acme.example")

        (message,) = await svc.mail_to("ada@acme.example")

        dated = parsedate_to_datetime(message["Date"])
        assert dated.tzinfo is not None
        assert before - timedelta(seconds=1) <= dated <= datetime.now(UTC) + timedelta(seconds=1)
        assert len(message.get_all("Date") or []) == 1
        message_id = message["Message-ID"]
        assert message_id.startswith("<") and message_id.endswith(">") and "@" in message_id
        assert message["From"]

    async def test_only_the_hash_of_the_token_is_stored(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        rows = await svc.sql("SELECT token_hash FROM invitations")

        assert len(rows) == 1
        stored = bytes(rows[0]["token_hash"])
        assert token.encode() not in stored and len(stored) == 32

    async def test_sending_is_announced_with_invitation_sent(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation, _ = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        await svc.mail_to("ada@acme.example")

        async def sent_state() -> str:
            return str((await svc.invitation(tenant_id, invitation["id"]))["delivery_state"])

        from stellara_kit.testing import wait_for

        await wait_for(sent_state, until=lambda s: s == "sent")
        (event,) = svc.of_type(await svc.published(), "invitation_sent")
        assert str(event.data.invitation_id) == invitation["id"]
        assert event.data.email == "ada@acme.example"
        assert event.data.role == Role.TENANT_ADMIN


class TestAccept:
    async def test_accepting_announces_the_new_member_and_completes_invite_admin(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        invitation, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.accept(token, subject="user-ada", email="Ada@Acme.example")

        assert response.status_code == 200, response.text
        assert response.json()["tenant_id"] == str(tenant_id)
        assert response.json()["user_id"] == "user-ada"
        status = await svc.status(tenant_id)
        assert status["steps"][0]["status"] == "done"
        assert status["steps"][0]["completed_by"] == "user-ada"
        assert status["next_steps"] == ["configure_tenant"]
        (accepted,) = svc.of_type(await svc.published(), "invitation_accepted")
        assert accepted.tenantid == tenant_id
        assert str(accepted.data.invitation_id) == invitation["id"]
        assert (accepted.data.email, accepted.data.role, accepted.data.user_id) == (
            "ada@acme.example",
            Role.TENANT_ADMIN,
            "user-ada",
        )

    async def test_a_user_invitation_does_not_complete_invite_admin(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "bob@acme.example", role="user")

        assert (await svc.accept(token, email="bob@acme.example")).status_code == 200

        assert (await svc.status(tenant_id))["steps"][0]["status"] == "in_progress"

    async def test_a_used_token_is_a_conflict(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        await svc.accept(token, email="ada@acme.example")

        again = await svc.accept(token, email="ada@acme.example")

        assert again.status_code == 409
        assert again.json()["type"].endswith("invitation-already-accepted")
        assert str(tenant_id) not in again.text
        assert len(svc.of_type(await svc.published(), "invitation_accepted")) == 1

    async def test_an_unknown_token_is_not_found(self, svc: Harness) -> None:
        await svc.create_tenant()
        responses = [
            await svc.accept("A" * 43, email="ada@acme.example"),
            await svc.accept("short", email="ada@acme.example"),
        ]
        assert [r.status_code for r in responses] == [404, 404]

    async def test_a_revoked_invitation_is_a_conflict(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        await svc.client.delete(
            f"/tenants/{tenant_id}/invitations/{invitation['id']}", headers=svc.admin_of(tenant_id)
        )

        response = await svc.accept(token, email="ada@acme.example")

        assert response.status_code == 409
        assert response.json()["type"].endswith("invitation-revoked")
        assert str(tenant_id) not in response.text

    async def test_an_expired_invitation_is_gone(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        await svc.sql(
            "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
            invitation["id"],
        )

        response = await svc.accept(token, email="ada@acme.example")

        assert response.status_code == 410
        assert str(tenant_id) not in response.text
        assert (await svc.status(tenant_id))["steps"][0]["status"] == "in_progress"

    async def test_someone_with_another_address_cannot_accept(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.accept(token, email="eve@evil.example")

        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "urn:stellara:problem:invitation-email-mismatch"
        assert str(tenant_id) not in response.text
        assert "ada" not in response.text.lower()
        assert (await svc.accept(token, email="ada@acme.example")).status_code == 200

    async def test_a_token_without_an_email_cannot_accept(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.accept(token, email=None, subject="mallory")

        assert response.status_code == 403
        assert response.json()["type"] == "urn:stellara:problem:invitation-email-required"
        assert str(tenant_id) not in response.text and "ada" not in response.text.lower()
        assert svc.of_type(await svc.published(), "invitation_accepted") == []
        assert (await svc.status(tenant_id))["steps"][0]["status"] == "in_progress"
        assert (await svc.accept(token, email="ada@acme.example")).status_code == 200

    async def test_a_user_id_no_member_can_have_cannot_accept(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        for subject in ("ada/sub", "50%", "..", "ünicode", "x" * 201):
            response = await svc.accept(token, email="ada@acme.example", subject=subject)
            assert response.status_code == 403, subject
            problem = response.json()
            assert problem["type"] == "urn:stellara:problem:invitation-user-id-unsupported"
            assert "printable ASCII" in problem["detail"]
        assert svc.of_type(await svc.published(), "invitation_accepted") == []
        accepted = await svc.accept(token, email="ada@acme.example", subject="auth0|42")
        assert accepted.status_code == 200, accepted.text

    async def test_an_unverified_email_cannot_accept(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.accept(token, email="ada@acme.example", email_verified=False)

        assert response.status_code == 403
        assert response.json()["type"] == "urn:stellara:problem:invitation-email-unverified"
        verified = await svc.accept(token, email="ada@acme.example", email_verified=True)
        assert verified.status_code == 200, verified.text

    async def test_the_address_is_compared_without_case_or_spaces(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "Ada.Lovelace@Acme.example")

        assert (await svc.accept(token, email="ada.lovelace+x@acme.example")).status_code == 403
        assert (await svc.accept(token, email=" ADA.LOVELACE@acme.EXAMPLE ")).status_code == 200

    async def test_another_address_learns_nothing_of_a_closed_invitation(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        assert (await svc.accept(token, email="ada@acme.example")).status_code == 200

        response = await svc.accept(token, email="eve@evil.example")

        assert response.status_code == 403
        assert response.json()["type"].endswith("invitation-email-mismatch")

    async def test_accepting_needs_an_authenticated_user(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.client.post(f"/invitations/{token}/accept")

        assert response.status_code == 401


class TestTokenSecrecy:
    async def test_no_refusal_echoes_the_token(
        self, svc: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        tenant_id = await svc.create_tenant()
        _, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        unknown = "U" * 43
        caplog.set_level(logging.DEBUG)

        answers = [
            await svc.accept(unknown, email="ada@acme.example"),  # 404
            await svc.accept(token, email="eve@evil.example"),  # 403 mismatch
            await svc.accept(token, email=None),  # 403 no email
            await svc.client.post(f"/invitations/{token}/accept"),  # 401
            await svc.client.get(f"/invitations/{token}/accept"),  # 405
        ]
        assert (await svc.accept(token, email="ada@acme.example")).status_code == 200
        answers.append(await svc.accept(token, email="ada@acme.example"))  # 409 used

        assert [a.status_code for a in answers] == [404, 403, 403, 401, 405, 409]
        for answer in answers:
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["instance"] == "/invitations/{token}/accept"
            seen = answer.text + str(answer.headers)
            assert token not in seen and unknown not in seen
        # what the service logged (the test's own HTTP client logs its requests)
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
        assert token not in logged and unknown not in logged


class TestListResendRevoke:
    async def test_the_list_pages_with_a_cursor_and_shows_delivery_state(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        for name in ("a", "b", "c"):
            await svc.invite(tenant_id, f"{name}@acme.example", "user")
        await svc.mail_to("c@acme.example")
        url = f"/tenants/{tenant_id}/invitations"

        first = (
            await svc.client.get(url, params={"limit": 2}, headers=svc.admin_of(tenant_id))
        ).json()
        second = (
            await svc.client.get(
                url,
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=svc.admin_of(tenant_id),
            )
        ).json()
        bad = await svc.client.get(
            url, params={"cursor": "nonsense"}, headers=svc.admin_of(tenant_id)
        )

        emails = [i["email"] for i in first["items"] + second["items"]]
        assert emails == ["a@acme.example", "b@acme.example", "c@acme.example"]
        assert second["next_cursor"] is None
        assert {"delivery_state", "delivery_attempts", "last_delivery_error"} <= set(
            first["items"][0]
        )
        assert (bad.status_code, bad.json()["type"]) == (400, "urn:stellara:problem:bad-cursor")

    async def test_resend_sends_a_new_link_and_the_old_one_stops_working(
        self, svc: Harness
    ) -> None:
        tenant_id = await svc.create_tenant()
        invitation, old_token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")

        response = await svc.client.post(
            f"/tenants/{tenant_id}/invitations/{invitation['id']}/resend",
            headers=svc.admin_of(tenant_id),
        )
        _, second = await svc.mail_to("ada@acme.example", count=2)
        new_token = svc.mail.token_in(second)

        assert response.status_code == 200
        assert response.json()["delivery_state"] == "pending"
        assert response.json()["expires_at"] > invitation["expires_at"]
        assert new_token != old_token
        assert (await svc.accept(old_token, email="ada@acme.example")).status_code == 404
        assert (await svc.accept(new_token, email="ada@acme.example")).status_code == 200

    async def test_closed_invitations_cannot_be_resent_or_revoked(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation, token = await invited_and_mailed(svc, tenant_id, "ada@acme.example")
        await svc.accept(token, email="ada@acme.example")
        base = f"/tenants/{tenant_id}/invitations/{invitation['id']}"

        resend = await svc.client.post(f"{base}/resend", headers=svc.admin_of(tenant_id))
        revoke = await svc.client.delete(base, headers=svc.admin_of(tenant_id))

        assert (resend.status_code, revoke.status_code) == (409, 409)

    async def test_revoking_twice_is_the_same_as_once(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        invitation = await svc.invite(tenant_id, "ada@acme.example")
        base = f"/tenants/{tenant_id}/invitations/{invitation['id']}"

        first = await svc.client.delete(base, headers=svc.admin_of(tenant_id))
        second = await svc.client.post(f"{base}/revoke", headers=svc.admin_of(tenant_id))

        assert first.status_code == second.status_code == 200
        # (the mail may go out in between; delivery fields are the sender's)
        assert first.json()["status"] == second.json()["status"] == "revoked"
        assert first.json()["revoked_at"] == second.json()["revoked_at"] is not None


class TestAccess:
    async def test_another_tenants_invitations_are_not_found(self, svc: Harness) -> None:
        mine, theirs = await svc.create_tenant(), await svc.create_tenant()
        their_invitation = await svc.invite(theirs, "ada@theirs.example")
        me = svc.admin_of(mine)

        responses = [
            await svc.client.get(f"/tenants/{theirs}/invitations", headers=me),
            await svc.client.post(
                f"/tenants/{theirs}/invitations", json={"email": "x@y.example"}, headers=me
            ),
            # their invitation through my tenant's path: row-level security hides it
            await svc.client.get(
                f"/tenants/{mine}/invitations/{their_invitation['id']}", headers=me
            ),
            await svc.client.post(
                f"/tenants/{mine}/invitations/{their_invitation['id']}/resend", headers=me
            ),
            await svc.client.delete(
                f"/tenants/{mine}/invitations/{their_invitation['id']}", headers=me
            ),
        ]

        assert [r.status_code for r in responses] == [404] * 5
        assert all("ada@theirs.example" not in r.text for r in responses)
        mine_listed = await svc.client.get(f"/tenants/{mine}/invitations", headers=me)
        assert mine_listed.json()["items"] == []

    async def test_users_cannot_manage_invitations(self, svc: Harness) -> None:
        tenant_id = await svc.create_tenant()
        user = svc.headers("user", tenant_id)

        listed = await svc.client.get(f"/tenants/{tenant_id}/invitations", headers=user)
        created = await svc.client.post(
            f"/tenants/{tenant_id}/invitations", json={"email": "x@y.example"}, headers=user
        )

        assert (listed.status_code, created.status_code) == (403, 403)
