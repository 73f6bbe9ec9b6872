"""Which store the settings choose, and how a store that cannot be opened is reported."""

import pytest

from opencode.core.errors import OpencodeError
from opencode.storage.factory import (
    DEFAULT_SQLITE_URL,
    build_store,
    choose_store,
    describe_failure,
    mask_url,
)
from opencode.storage.supabase_rest import SupabaseStore

PG = "postgresql://app:s3cret-pw@db.example.com:6543/postgres?sslmode=require"


@pytest.mark.parametrize(
    ("database_url", "supabase", "kind", "variable"),
    [
        (None, None, "sqlite", "DATABASE_URL"),
        ("sqlite:///x.db", ("https://p.supabase.co", "key"), "sqlite", "DATABASE_URL"),
        (PG, None, "postgres", "DATABASE_URL"),
        ("postgres://u@h/db", ("https://p.supabase.co", "key"), "postgres", "DATABASE_URL"),
        (None, ("https://p.supabase.co", "key"), "supabase", "SUPABASE_URL"),
    ],
)
def test_the_store_is_chosen_by_what_is_set(database_url, supabase, kind, variable):
    url, key = supabase or (None, None)
    choice = choose_store(database_url, url, key)
    assert (choice.kind, choice.variable) == (kind, variable)
    if database_url is None and supabase is None:
        assert choice.url == DEFAULT_SQLITE_URL


def test_supabase_url_without_a_key_is_refused_clearly():
    with pytest.raises(OpencodeError, match="SUPABASE_KEY is not"):
        choose_store(None, "https://p.supabase.co", None)


def test_passwords_are_masked_wherever_the_choice_is_shown():
    choice = choose_store(PG)
    assert choice.shown == "postgresql://app:***@db.example.com:6543/postgres?sslmode=require"
    assert choice.host == "db.example.com:6543"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_failure_is_one_line_naming_the_variable_and_host_not_the_password():
    line = describe_failure(choose_store(PG), OSError(f"connect to {PG} refused"))
    assert line.startswith("DATABASE_URL: cannot open PostgreSQL at db.example.com:6543: OSError")
    assert "s3cret-pw" not in line and "\n" not in line


def test_supabase_url_and_key_build_the_rest_store_without_opening_it():
    store = build_store(choose_store(None, "https://p.supabase.co", "the-key"))
    assert isinstance(store, SupabaseStore)
    assert (store.url, store.host) == ("https://p.supabase.co", "p.supabase.co")
