"""A second opinion on the Codex stream's other notifications: the app-server v2 schemas the
pinned Codex CLI generates (``tests/codex``). The design note's shapes are the seed's era; the
pinned CLI is newer: it also requires ``startedAtMs`` / ``completedAtMs`` on ``item/*``, which
the stream sends (skipped without the CLI, failed under ``CI=true``)."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from opencode.schemas.events import CompactionEvent, ErrorEvent, RetryEvent
from tests.codex import upstream
from tests.events.codex_log import START, TWO_STEPS, done, encode
from tests.events.codex_log import items as logged

PARAMS = {
    "turn/started": "TurnStartedNotification",
    "turn/completed": "TurnCompletedNotification",
    "item/started": "ItemStartedNotification",
    "item/completed": "ItemCompletedNotification",
    "item/agentMessage/delta": "AgentMessageDeltaNotification",
    "item/reasoning/textDelta": "ReasoningTextDeltaNotification",
    "thread/tokenUsage/updated": "ThreadTokenUsageUpdatedNotification",
    "error": "ErrorNotification",
}
NEWER_THAN_THE_SEED: set[str] = set()  # nothing the pinned CLI requires is left out


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("codex-schemas")
    upstream.generate(out)
    return out / "json" / "v2"


def validator(v2: Path, name: str) -> Draft7Validator:
    return Draft7Validator(json.loads((v2 / f"{name}.json").read_text()))


def test_every_other_notification_matches_the_pinned_codex_schemas(v2):
    notes = (
        encode(TWO_STEPS)
        + encode(
            [
                START,
                CompactionEvent(status="started", trigger="tokens"),
                CompactionEvent(status="completed", trigger="tokens"),
                logged({"type": "function_call", "name": "x", "arguments": "{}", "call_id": "c"}),
                logged(
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": {"body": "aborted", "success": False},
                    }
                ),
                RetryEvent(attempt=1, delay=0.1, message="503"),
                ErrorEvent(error="gone"),
            ]
        )
        + encode([START, done("aborted")])
    )
    checked = set()
    for note in notes:
        name = PARAMS.get(note["method"])
        if name is None:
            continue
        checked.add(note["method"])
        problems = [
            error.message
            for error in validator(v2, name).iter_errors(note["params"])
            if not (
                error.validator == "required" and _missing(error.message) in NEWER_THAN_THE_SEED
            )
        ]
        assert not problems, (note, problems)
    assert checked == set(PARAMS)


def _missing(message: str) -> str:
    """The property a ``required`` error names (``'x' is a required property``)."""
    return message.split("'")[1] if message.count("'") >= 2 else message
