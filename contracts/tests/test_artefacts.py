"""The checked-in JSON Schemas and AsyncAPI document match the code."""

from __future__ import annotations

import json

from stellara_contracts import EVENT_CLASSES, topics
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
    assert {c["address"] for c in document["channels"].values()} == set(topics.ALL_TOPICS)
    assert set(document["components"]["messages"]) == {c.__name__ for c in EVENT_CLASSES}
    state = document["channels"]["tenant_state"]["bindings"]["kafka"]
    assert state["topicConfiguration"]["cleanup.policy"] == ["compact"]
