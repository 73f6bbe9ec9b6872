"""Fixtures the end-to-end modules share."""

from collections.abc import Iterator

import pytest

from tests.fakes.supabase_auth import SigningKeys, SupabaseAuthServer


@pytest.fixture(scope="module")
def supabase_auth() -> Iterator[SupabaseAuthServer]:
    """A loopback fake of the Supabase auth endpoint (its JWKS), one per module."""
    with SupabaseAuthServer() as auth:
        yield auth


@pytest.fixture(scope="module")
def keys(supabase_auth: SupabaseAuthServer) -> SigningKeys:
    return supabase_auth.keys
