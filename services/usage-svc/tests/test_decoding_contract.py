"""The published UsageRecorded JSON Schema and the ingester's decoder accept the same documents.

Hypothesis builds documents around the schema's edges — a valid event with
fields replaced by values of every JSON type and by near misses (UUIDs
without hyphens, timestamps with a space or without seconds, values at and
past the bound, NUL characters), fields removed and added, and raw JSON text
a serializer would never write (``NaN``, ``1e999``, lone surrogates) — and
checks that the schema and ``UsageRecordParser.parse`` agree on every one.

The schema side is read strictly, as the JSON Schema and JSON specifications
say:

- the document is parsed as I-JSON (RFC 7493): no ``NaN``/``Infinity``, no
  number a double cannot hold, no lone surrogate;
- Draft 2020-12 with format checking on: ``uuid`` by jsonschema itself,
  ``date-time`` by ``rfc3339-validator`` (strict RFC 3339: upper-case ``T``
  and ``Z``, no space; ajv without ajv-formats checks no format at all, and
  with them accepts a space — the schema's ``pattern`` refuses it for both);
- ``pattern`` as ECMA-262 reads it: ``$`` is the end of the string (Python's
  ``$`` also matches before a final newline);
- plus the one rule JSON Schema cannot state, documented in the README's
  refusal table: ``tenantid``, ``data.tenant_id`` and ``subject`` name one
  tenant.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import jsonschema
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError

from stellara_contracts.generate import ARTEFACTS
from usage_svc.ingest.decoding import MalformedRecord, UsageRecordParser

SCHEMA = json.loads((ARTEFACTS / "events" / "stellara.usage.recorded.v1.json").read_text())
FORMATS = Draft202012Validator.FORMAT_CHECKER


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string"):
        ecma = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(ecma, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATOR = StrictValidator(SCHEMA, format_checker=FORMATS)


class NotIJson(ValueError):
    pass


def _refuse_constant(token: str) -> Any:
    raise NotIJson(f"{token} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotIJson(f"{text} does not fit a double")
    return number


def _int(text: str) -> int:
    _finite(text)
    return int(text)


def _well_formed(node: Any) -> None:
    if isinstance(node, str):
        node.encode("utf-8")  # a lone surrogate raises
    elif isinstance(node, dict):
        for key, value in node.items():
            _well_formed(key)
            _well_formed(value)
    elif isinstance(node, list):
        for item in node:
            _well_formed(item)


def schema_accepts(text: str) -> bool:
    try:
        document = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_int
        )
        _well_formed(document)
    except (ValueError, UnicodeEncodeError):
        return False
    if not VALIDATOR.is_valid(document):
        return False
    tenant = UUID(document["tenantid"])
    subject = document.get("subject")
    return UUID(document["data"]["tenant_id"]) == tenant and (
        subject is None or subject.lower() == str(tenant)
    )


def runtime_accepts(text: str) -> bool:
    try:
        return UsageRecordParser().parse(text.encode("utf-8", "surrogatepass")) is not None
    except MalformedRecord:
        return False


# ---------------------------------------------------------------------- documents
TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"
NOW = "2026-12-03T10:00:00Z"


def base() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "billing-worker",
        "type": "stellara.usage.recorded.v1",
        "subject": TENANT,
        "tenantid": TENANT,
        "time": NOW,
        "datacontenttype": "application/json",
        "data": {
            "tenant_id": TENANT,
            "metric": "api_calls",
            "value": 1,
            "occurred_at": NOW,
            "properties": {"route": "/tenants/{id}", "status": 200},
        },
    }


UUIDS = [
    TENANT,
    TENANT.upper(),
    TENANT.replace("-", ""),
    "{" + TENANT + "}",
    "urn:uuid:" + TENANT,
    "+" + TENANT[1:],
    TENANT[:-1] + "_",
    TENANT[:-1],
    TENANT + "\n",
    " " + TENANT,
    "00000000-0000-0000-0000-000000000000",
    "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c1g",
    "5b0c8f5e6-a53-4a0e-9a0e-2f1f3a0b6c11",
]
TIMESTAMPS = [
    NOW,
    "2026-12-03T10:00:00.123456Z",
    "2026-12-03T10:00:00.1234567891Z",
    "2026-12-03T10:00:00+01:00",
    "2026-12-03T10:00:00-00:00",
    "2026-12-03T10:00:00+23:59",
    "2026-12-03 10:00:00Z",
    "2026-12-03t10:00:00z",
    "2026-12-03T10:00:00",
    "2026-12-03T10:00Z",
    "2026-12-03T10:00:00,5Z",
    "2026-12-03T10:00:60Z",
    "2026-12-03T24:00:00Z",
    "2026-12-03T10:00:00+24:00",
    "2026-12-03T10:00:00+0100",
    "2026-02-30T10:00:00Z",
    "2024-02-29T10:00:00Z",
    "0000-12-03T10:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "20261203T100000Z",
    "2026-12-03",
    NOW + "\n",
    "٢٠٢٦-12-03T10:00:00Z",
]
TEXTS = [
    "",
    "api_calls",
    "Api_calls",
    "api-calls",
    "a" * 63,
    "a" * 64,
    "api_calls\n",
    "nul\x00inside",
    "\x00",
    "é",
    "x" * 200,
    "x" * 201,
    "stellara.usage.recorded.v1",
    "stellara.usage.recorded.v2",
    "stellara.usage.recordd.v1",
    "com.example.order.placed",
    "1.0",
    "1",
    "application/json",
    "text/plain",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
    "16",
    "true",
]
NUMBERS = [
    0,
    -0.0,
    1,
    -1,
    1.5,
    16,
    1e15,
    -1e15,
    10**15,
    10**15 + 1,
    -(10**15) - 1,
    1.0000000000000002e15,
    1.7e308,
    -1.7e308,
    5e-324,
    2**53 + 1,
    2**63,
    2**64,
]
#: JSON text a serializer would never write, spliced in by the test
RAW = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, '"\\ud800"']

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.sampled_from(NUMBERS)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(UUIDS + TIMESTAMPS + TEXTS)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=4,
)
edge_values = json_values | st.sampled_from(RAW).map(lambda token: ("raw", token))

ENVELOPE = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "tenantid",
    "time",
    "datacontenttype",
    "traceparent",
    "data",
    "extension",
]
DATA = ["tenant_id", "metric", "value", "occurred_at", "properties", "colour"]

mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(ENVELOPE), edge_values),
    st.tuples(st.just("set_data"), st.sampled_from(DATA), edge_values),
    st.tuples(
        st.just("set_property"),
        st.sampled_from(["route", "status", "", "\x00", "a\x00b", "é"]),
        edge_values,
    ),
    st.tuples(st.just("drop"), st.sampled_from(ENVELOPE), st.none()),
    st.tuples(st.just("drop_data"), st.sampled_from(DATA), st.none()),
    # both tenant ids at once: explores the uuid format, not just the tenant-match rule
    st.tuples(st.just("tenant"), st.sampled_from(UUIDS), st.booleans()),
)


def render(mutations: list[tuple[str, str, Any]]) -> str:
    document = base()
    raw: dict[str, str] = {}

    def value(v: Any) -> Any:
        if isinstance(v, tuple) and v and v[0] == "raw":
            marker = f"@@raw{len(raw)}@@"
            raw[marker] = v[1]
            return marker
        return v

    for kind, name, v in mutations:
        data = document.get("data")
        if kind == "set":
            document[name] = value(v)
        elif kind == "drop":
            document.pop(name, None)
        elif kind == "tenant":
            document["tenantid"] = name
            if isinstance(data, dict):
                data["tenant_id"] = name
            document["subject"] = name if v else None
        elif isinstance(data, dict):
            if kind == "set_data":
                data[name] = value(v)
            elif kind == "drop_data":
                data.pop(name, None)
            elif kind == "set_property" and isinstance(data.get("properties"), dict):
                data["properties"][name] = value(v)
    text = json.dumps(document, ensure_ascii=False)
    for marker, token in raw.items():
        text = text.replace(f'"{marker}"', token)
    return text


def test_the_schema_is_read_with_strict_format_checkers() -> None:
    # without rfc3339-validator jsonschema checks no date-time at all, and the test would
    # compare the runtime with a looser reading than the schema's
    assert {"date-time", "uuid"} <= set(FORMATS.checkers)
    assert not FORMATS.conforms("2026-12-03 10:00:00Z", "date-time")


ISSUE_EXAMPLES = [
    # what the ingester counted although the schema refused it
    [("set_data", "value", "16")],
    [("set_data", "value", True)],
    [("set_data", "occurred_at", 1764756000)],
    [("tenant", TENANT.replace("-", ""), True)],
    # what the schema allowed although the ingester refused it
    [("drop", "id", None)],
    [("drop", "type", None)],
    # and the rest of the edges
    [("set_data", "value", 1.7e308)],
    [("set_data", "value", ("raw", "NaN"))],
    [("set_data", "value", ("raw", "1e999"))],
    [("set_data", "occurred_at", "2026-12-03 10:00:00Z")],
    [("set_data", "occurred_at", NOW + "\n")],
    [("set_data", "metric", "api_calls\n")],
    [("set_property", "\x00", "x")],
    [("set_property", "route", "a\x00b")],
    [("set", "extension", ("raw", '"\\ud800"'))],
    [("set", "extension", "nul\x00inside")],
    [("set", "type", "com.example.order.placed")],
    [("drop", "specversion", None)],
    [("set", "time", None)],
    [("set", "subject", None)],
    [],
]


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutation, max_size=4))
def test_the_schema_and_the_decoder_agree_on_every_document(
    mutations: list[tuple[str, str, Any]],
) -> None:
    text = render(mutations)
    assert schema_accepts(text) == runtime_accepts(text), text


for _case in ISSUE_EXAMPLES:
    test_the_schema_and_the_decoder_agree_on_every_document = example(_case)(
        test_the_schema_and_the_decoder_agree_on_every_document
    )


def test_the_issues_examples_are_refused_by_both_and_the_base_accepted_by_both() -> None:
    for case in ISSUE_EXAMPLES[:7]:  # the issue's six, and a value past the bound
        text = render(case)
        assert not schema_accepts(text) and not runtime_accepts(text), text
    for case in ([], [("set", "subject", None)], [("set", "extension", "nul\x00inside")]):
        assert schema_accepts(render(case)) and runtime_accepts(render(case))
