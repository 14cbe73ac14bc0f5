"""The checked-in JSON Schemas and AsyncAPI document match the code."""

from __future__ import annotations

import json

from stellara_contracts import EVENT_CLASSES, record_headers, topics
from stellara_contracts.generate import ARTEFACTS, render


def test_checked_in_artefacts_match_the_code() -> None:
    stale = [
        str(path.relative_to(ARTEFACTS))
        for path, content in render().items()
        if not path.exists() or path.read_text() != content
    ]
    assert not stale, f"run `make contracts`: these artefacts differ from the code: {stale}"


def test_no_artefact_is_left_for_a_removed_event() -> None:
    expected = {p for p in render() if p.parent.name == "events"}
    assert set((ARTEFACTS / "events").glob("*.json")) == expected


def test_asyncapi_lists_every_topic_and_event() -> None:
    document = json.loads((ARTEFACTS / "asyncapi.json").read_text())
    dead_letters = {topics.dlq_topic(t) for t in topics.ALL_TOPICS}
    assert {c["address"] for c in document["channels"].values()} == set(topics.ALL_TOPICS) | (
        dead_letters
    )
    assert set(document["components"]["messages"]) == {c.__name__ for c in EVENT_CLASSES} | {
        "DeadLetter"
    }
    state = document["channels"]["tenant_state"]["bindings"]["kafka"]
    assert state["topicConfiguration"]["cleanup.policy"] == ["compact"]


def test_asyncapi_names_the_binding_headers_and_key_every_producer_sets() -> None:
    document = json.loads((ARTEFACTS / "asyncapi.json").read_text())
    message = document["components"]["messages"]["UsageRecordedEvent"]
    headers = document["components"]["schemas"]["EventHeaders"]
    assert message["headers"] == {"$ref": "#/components/schemas/EventHeaders"}
    assert headers["properties"]["content-type"]["const"] == record_headers()[0][1].decode()
    assert headers["required"] == [name for name, _ in record_headers()]
    assert message["bindings"]["kafka"]["key"]["format"] == "uuid"
    assert "murmur2_random" in message["bindings"]["kafka"]["key"]["description"]


def test_asyncapi_names_every_dead_letter_header_the_consumers_add() -> None:
    from stellara_kit.consumer import dlq_headers

    added = dlq_headers(
        [], error="e", reason="r", topic="t", partition=0, offset=0, attempts=0, consumer="c"
    )
    document = json.loads((ARTEFACTS / "asyncapi.json").read_text())
    described = document["components"]["schemas"]["DeadLetterHeaders"]
    assert set(described["properties"]) == set(added) == set(described["required"])
