"""Domain errors, and the one way a service maps them to problem+json responses.

Domain code raises a :class:`DomainError` subclass with the facts a caller can
act on (keyword ``extensions``, which land in the problem body); it knows
nothing of HTTP. Each service keeps one table in its ``errors.py`` from error
class to :data:`ProblemType` (status, slug, title) and installs it with
:func:`install_domain_errors`. An error class missing from the table maps as
its nearest mapped base class; kit's own errors (:class:`BadCursor`,
:class:`TenantNotFound`) are mapped in every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stellara_kit import problems
from stellara_kit.problems import Problem, problem_response

#: (status, slug, title): the problem a domain error becomes; the slug is the
#: problem type's last part (``urn:stellara:problem:<slug>``)
ProblemType = tuple[int, str, str]


class DomainError(Exception):
    """A rule of the domain refused an operation."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class TenantNotFound(DomainError):
    """No such tenant (or another tenant's, which is not found either): one code everywhere."""


class BadCursor(DomainError):
    """A page cursor this service did not hand out."""


def problem_type_of(problem: type[Problem]) -> ProblemType:
    """The (status, slug, title) of a kit problem class, for a service's table."""
    return problem.status, problem.slug, problem.title


#: what kit's own domain errors are, in every service
KIT_PROBLEMS: dict[type[DomainError], ProblemType] = {
    TenantNotFound: problem_type_of(problems.TenantNotFound),
    BadCursor: (400, "bad-cursor", "Bad cursor"),
}

ProblemTable = Mapping[type[DomainError], ProblemType]


def to_problem(error: DomainError, table: ProblemTable) -> Problem:
    """The problem response ``error`` becomes under ``table`` (then kit's own errors)."""
    for cls in type(error).__mro__:
        mapped = table.get(cls) or KIT_PROBLEMS.get(cls)
        if mapped is not None:
            status, slug, title = mapped
            problem = Problem(error.detail, status=status, slug=slug, title=title)
            break
    else:
        problem = Problem(error.detail, status=400)
    problem.extensions.update(error.extensions)  # may hold e.g. a tenant's `slug`
    return problem


def install_domain_errors(app: FastAPI, table: ProblemTable) -> None:
    """Answer every :class:`DomainError` the app's routes raise as its problem in ``table``."""

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem_response(to_problem(exc, table), request)

    app.add_exception_handler(DomainError, on_domain_error)
