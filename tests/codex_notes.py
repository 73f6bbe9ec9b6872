"""Codex notification streams in tests: their notifications, and the check that every
``rawResponseItem/completed`` validates against the seed (``tests/codex_seed.py`` reads it)."""

from typing import Any

from tests.codex_seed import notification_validator
from tests.sse import Frame

RAW = "rawResponseItem/completed"

Note = dict[str, Any]


def assert_raw_items_valid(notes: list[Note]) -> None:
    """Every ``rawResponseItem/completed``'s params validate against the seed."""
    validator = notification_validator()
    for note in notes:
        if note["method"] == RAW:
            errors = [e.message for e in validator.iter_errors(note["params"])]
            assert not errors, (note["params"], errors)


def notes_of(frames: list[Frame]) -> list[Note]:
    """The notifications of SSE frames; each frame's ``event`` is its method."""
    notes = [frame.data for frame in frames]
    for frame, note in zip(frames, notes, strict=True):
        assert set(note) == {"method", "params"} and frame.event == note["method"], frame
    return notes


def methods(notes: list[Note]) -> list[str]:
    return [note["method"] for note in notes]


def raw_items(notes: list[Note]) -> list[dict[str, Any]]:
    return [note["params"]["item"] for note in notes if note["method"] == RAW]


def raw_params(notes: list[Note]) -> list[dict[str, Any]]:
    return [note["params"] for note in notes if note["method"] == RAW]


def of_item(notes: list[Note], item_id: str) -> list[Note]:
    """The notifications about one ThreadItem (its lifecycle and deltas)."""
    return [
        note
        for note in notes
        if note["params"].get("itemId") == item_id
        or (note["params"].get("item") or {}).get("id") == item_id
    ]


def deltas(notes: list[Note], item_id: str) -> str:
    return "".join(n["params"]["delta"] for n in notes if n["params"].get("itemId") == item_id)


def completed(notes: list[Note], kind: str) -> list[dict[str, Any]]:
    """The ThreadItems of one type, as ``item/completed`` gives them."""
    return [
        n["params"]["item"]
        for n in notes
        if n["method"] == "item/completed" and n["params"]["item"]["type"] == kind
    ]
