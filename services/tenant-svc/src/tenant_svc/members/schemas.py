"""HTTP models of members and member imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.patterns import (
    EMAIL_MAX_LENGTH,
    EMAIL_PATTERN,
    USER_ID_MAX_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
)
from tenant_svc.members.importing import RowResult
from tenant_svc.members.service import NAME_MAX, NAME_PATTERN
from tenant_svc.models import Member

MemberRole = Literal["tenant_admin", "user"]
_USER = "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f"


class MemberIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # the patterns mean what they mean to the checks of imported rows (Python's `re`)
        regex_engine="python-re",
        json_schema_extra={
            "examples": [
                {
                    "user_id": _USER,
                    "email": "ada@acme.example",
                    "name": "Ada Lovelace",
                    "role": "tenant_admin",
                }
            ]
        },
    )

    user_id: str = Field(
        min_length=1,
        max_length=USER_ID_MAX_LENGTH,
        pattern=USER_ID_PATTERN,
        description=f"The user's id at the identity provider ({USER_ID_RULE}).",
    )
    email: str | None = Field(default=None, max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN)
    name: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="Display name (no control, bidirectional or zero-width characters; runs of "
        "whitespace are kept as one space).",
    )
    role: MemberRole = Field(default="user")


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "user"}]})

    role: MemberRole


class MemberOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": _USER,
                    "email": "ada@acme.example",
                    "name": "Ada Lovelace",
                    "role": "tenant_admin",
                    "via": "invitation",
                    "created_at": "2026-12-01T10:00:00Z",
                    "updated_at": "2026-12-01T10:00:00Z",
                }
            ]
        }
    )

    user_id: str
    email: str | None
    name: str | None = Field(default=None, description="Display name, when one is known.")
    role: MemberRole
    via: Literal["api", "invitation", "import"] = Field(description="How the user joined.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        return cls(
            user_id=member.user_id,
            email=member.email,
            name=member.name,
            role=member.role,
            via=member.via,
            created_at=member.created_at,
            updated_at=member.updated_at,
        )


class ImportRequest(BaseModel):
    """Rows of a user file; each row is checked on its own (bad rows are reported, not fatal)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {"line": 2, "email": "ada@acme.example", "role": "admin"},
                        {"line": 3, "email": "alan@acme.example", "user_id": "auth0|42"},
                        {"line": 4, "email": "not-an-email"},
                    ]
                }
            ]
        },
    )

    rows: list[dict[str, Any]] = Field(
        min_length=1,
        description="Objects with `email`, optional `user_id` (the email when left out), "
        "optional `role` (`user` — default —, `tenant_admin`/`admin`), optional `name` (display "
        "name) and optional `line` (the row's line in the file, echoed in the results).",
    )


class ImportRowOut(BaseModel):
    line: int
    outcome: Literal["created", "skipped", "invalid"]
    user_id: str | None = None
    email: str | None = None
    role: str | None = None
    reason: str | None = None


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 1,
                    "skipped": 1,
                    "invalid": 1,
                    "results": [
                        {"line": 2, "outcome": "created", "email": "ada@acme.example"},
                        {"line": 3, "outcome": "skipped", "reason": "already a member"},
                        {"line": 4, "outcome": "invalid", "reason": "not an email address"},
                    ],
                }
            ]
        }
    )

    created: int
    skipped: int
    invalid: int
    results: list[ImportRowOut]

    @classmethod
    def of(cls, results: list[RowResult]) -> ImportReport:
        rows = [ImportRowOut(**r.__dict__) for r in results]
        return cls(
            created=sum(r.outcome == "created" for r in rows),
            skipped=sum(r.outcome == "skipped" for r in rows),
            invalid=sum(r.outcome == "invalid" for r in rows),
            results=rows,
        )
