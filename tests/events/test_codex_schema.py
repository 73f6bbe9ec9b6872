"""The vendored seed and the validator built on it."""

import pytest

from opencode.schemas.codex_schema import (
    ITEM_TYPES,
    SCHEMA_PATH,
    item_problems,
    items_problems,
    notification_problems,
)
from tests.codex_seed import INVALID_ITEMS, VALID_ITEMS, item_validator, shared_seed


def test_the_vendored_schema_is_the_seed_verbatim():
    seed = shared_seed()
    if seed is None:  # a clone away from the shared workspace: nothing to compare with
        pytest.skip("the shared seed (../shared/seeds) is not next to this checkout")
    assert SCHEMA_PATH.read_bytes() == seed.read_bytes()


def test_every_valid_example_validates_and_the_examples_cover_every_type():
    validator = item_validator()
    for item in VALID_ITEMS:
        assert not list(validator.iter_errors(item)), item
        assert item_problems(item) == []
    assert {item["type"] for item in VALID_ITEMS} == set(ITEM_TYPES)
    assert len(ITEM_TYPES) == 14


@pytest.mark.parametrize(
    ("why", "item", "field"), INVALID_ITEMS, ids=[case[0] for case in INVALID_ITEMS]
)
def test_an_invalid_item_fails_the_seed_and_the_problem_names_its_field(why, item, field):
    assert list(item_validator().iter_errors(item)), "the seed itself must refuse it"
    problems = items_problems([VALID_ITEMS[0], item])
    assert [(p.index, list(p.path)) for p in problems] == [(1, field)], problems
    assert str(problems[0]).startswith("items[1]")


def test_problems_say_what_the_field_must_be_without_quoting_the_value():
    secret = "s3cr3t " * 100
    problems = item_problems({"type": "function_call_output", "call_id": "c", "output": secret})
    assert [str(p) for p in problems] == ["output: must be an object"]
    phase = item_problems({"type": "message", "role": "assistant", "content": [], "phase": "x"})
    assert str(phase[0]) == 'phase: must be one of "commentary", "final_answer" or null'
    missing = item_problems({"type": "reasoning"})
    assert [str(p) for p in missing] == ["id: is required", "summary: is required"]


def test_notification_params_need_all_three_fields():
    item = {"type": "other"}
    assert notification_problems({"threadId": "ses", "turnId": "msg", "item": item}) == []
    assert [str(p) for p in notification_problems({"threadId": "ses", "item": item})] == [
        "turnId: is required"
    ]
    wrong = {"threadId": "ses", "turnId": "msg", "item": {"type": "compaction"}}
    assert [str(p) for p in notification_problems(wrong)] == ["item.encrypted_content: is required"]
    assert [str(p) for p in item_problems([])] == ["value: must be an object"]
