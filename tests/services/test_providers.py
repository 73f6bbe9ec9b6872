from typing import Any

import pytest

from opencode.core.errors import BadRequest, NotFound
from opencode.core.settings import Settings
from opencode.schemas.common import PROVIDER_IDS
from opencode.services.providers import ProviderCatalog, ResolvedModel

PROVIDER_ENV = [
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_BASE",
    "OPENAI_BASE_URL",
    "GEMINI_API_BASE",
    "OPENCODE_MODEL",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes to ``Settings`` counts: no real keys, no real ``.env``."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


def catalog(**values: Any) -> ProviderCatalog:
    return ProviderCatalog(Settings(_env_file=None, **values))


def cost_map() -> dict[str, dict[str, Any]]:
    import litellm  # after opencode.core.env (imported by the catalog): offline map only

    return litellm.model_cost


def bad_request(**kwargs: Any) -> str:
    settings = kwargs.pop("settings", {})
    with pytest.raises(BadRequest) as info:
        catalog(**settings).resolve(**kwargs)
    assert info.value.status_code == 400
    return info.value.message


# ---- listing ----


def test_list_providers_reports_configuration():
    providers = catalog(
        OPENAI_API_KEY="sk-test", ANTHROPIC_BASE_URL="http://gateway.local/v1"
    ).list_providers()

    assert [p.id for p in providers] == ["anthropic", "openai", "gemini"]
    assert tuple(p.id for p in providers) == PROVIDER_IDS  # what the OpenAPI schema lists
    anthropic, openai, gemini = providers
    assert (anthropic.configured, openai.configured, gemini.configured) == (False, True, False)
    assert anthropic.api_base == "http://gateway.local/v1"
    assert openai.api_base is None
    assert anthropic.env == ["ANTHROPIC_API_KEY"]
    assert gemini.env == ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
    assert [p.default_model for p in providers] == [
        "claude-sonnet-4-5",
        "gpt-4o-mini",
        "gemini-2.5-flash",
    ]


def test_google_api_key_configures_gemini():
    [gemini] = [p for p in catalog(GOOGLE_API_KEY="g").list_providers() if p.id == "gemini"]
    assert gemini.configured


def test_get_provider_includes_its_models():
    detail = catalog().get_provider("openai")
    assert detail.id == "openai" and detail.name == "OpenAI"
    assert detail.models == catalog().list_models("openai").models
    assert detail.model_count == len(detail.models) > 10


@pytest.mark.parametrize("call", ["get_provider", "list_models"])
def test_unknown_provider_is_not_found(call: str):
    with pytest.raises(NotFound) as info:
        getattr(catalog(), call)("mistral")
    assert info.value.status_code == 404
    assert info.value.message == (
        "Unknown provider 'mistral'. Valid providers: anthropic, openai, gemini."
    )


@pytest.mark.parametrize("provider_id", ["anthropic", "openai", "gemini"])
def test_models_match_litellm_cost_map(provider_id: str):
    models = catalog().list_models(provider_id)
    ids = [m.id for m in models.models]

    assert models.provider_id == provider_id
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert catalog().get_provider(provider_id).default_model in ids
    for model in models.models:
        assert "/" not in model.id and not model.id.startswith("ft:")
        key = f"gemini/{model.id}" if f"gemini/{model.id}" in cost_map() else model.id
        entry = cost_map()[key]
        assert (entry["litellm_provider"], entry["mode"]) == (provider_id, "chat")
        assert model.provider_id == provider_id
        assert model.input_cost_per_million == pytest.approx(entry["input_cost_per_token"] * 1e6)
        assert model.output_cost_per_million == pytest.approx(entry["output_cost_per_token"] * 1e6)
        assert model.context_window == entry.get("max_input_tokens")
        assert model.supports_tools == bool(entry.get("supports_function_calling"))


def test_model_details_for_well_known_models():
    [mini] = [m for m in catalog().list_models("openai").models if m.id == "gpt-4o-mini"]
    assert mini.name == "gpt-4o-mini"
    assert mini.input_cost_per_million == 0.15  # rounded: 1.5e-07 * 1e6 is 0.15000000000000002
    assert mini.output_cost_per_million == 0.6
    assert mini.cache_read_cost_per_million == 0.075
    assert mini.cache_write_cost_per_million is None
    assert (mini.context_window, mini.max_output_tokens) == (128000, 16384)
    assert (mini.supports_tools, mini.supports_vision, mini.supports_reasoning) == (
        True,
        True,
        False,
    )

    sonnet = catalog().find_model("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert sonnet.cache_write_cost_per_million == 3.75
    assert sonnet.supports_reasoning


def test_listing_hides_templates_and_dated_copies_but_they_still_resolve():
    openai = [m.id for m in catalog().list_models("openai").models]
    assert "gpt-4o" in openai
    assert "gpt-4o-2024-08-06" not in openai  # dated copy of gpt-4o
    assert "ft:gpt-4o-2024-08-06" not in openai  # fine-tuning price template
    assert "container" not in openai  # "openai/container" is not a token-priced chat model
    assert "gemini-2.5-flash" in [m.id for m in catalog().list_models("gemini").models]

    resolved = catalog(OPENAI_API_KEY="k").resolve(model_id="openai/gpt-4o-2024-08-06")
    assert resolved.model_id == "gpt-4o-2024-08-06"
    assert catalog().find_model("openai", "gpt-4o-2024-08-06") is not None
    assert catalog().find_model("openai", "nope") is None
    assert catalog().find_model("mistral", "gpt-4o") is None


def test_model_lists_are_computed_once():
    first = catalog().list_models("gemini").models
    second = catalog(GEMINI_API_KEY="g").list_models("gemini").models
    assert first == second
    assert all(a is b for a, b in zip(first, second, strict=True))


# ---- resolve: which model a run uses ----

ALL_KEYS = {"ANTHROPIC_API_KEY": "ak", "OPENAI_API_KEY": "ok", "GEMINI_API_KEY": "gk"}


def test_request_provider_and_model():
    resolved = catalog(**ALL_KEYS).resolve(provider_id="openai", model_id="gpt-4.1")
    assert resolved == ResolvedModel("openai", "gpt-4.1", "openai/gpt-4.1", "ok", None)
    assert resolved.ref == "openai/gpt-4.1"
    assert "ok" not in repr(resolved)


@pytest.mark.parametrize(
    ("provider_id", "model_id"),
    [
        (None, "gemini/gemini-2.5-pro"),
        ("gemini", "gemini/gemini-2.5-pro"),
        ("gemini", "gemini-2.5-pro"),
        (None, "gemini-2.5-pro"),  # a bare id LiteLLM knows for exactly one provider
    ],
)
def test_request_model_forms(provider_id: str | None, model_id: str):
    resolved = catalog(**ALL_KEYS).resolve(
        provider_id=provider_id, model_id=model_id, session_model="openai/gpt-4o"
    )
    assert (resolved.ref, resolved.litellm_model) == (
        "gemini/gemini-2.5-pro",
        "gemini/gemini-2.5-pro",
    )
    assert resolved.api_key == "gk"


def test_request_provider_alone_uses_its_default_model():
    resolved = catalog(**ALL_KEYS).resolve(provider_id="anthropic", session_model="openai/gpt-4o")
    assert resolved.ref == "anthropic/claude-sonnet-4-5"
    assert resolved.litellm_model == "anthropic/claude-sonnet-4-5"


def test_session_model_beats_opencode_model():
    resolved = catalog(**ALL_KEYS, OPENCODE_MODEL="gemini/gemini-2.5-flash").resolve(
        session_model="openai/gpt-4o"
    )
    assert resolved.ref == "openai/gpt-4o"


def test_opencode_model_beats_the_first_configured_provider():
    resolved = catalog(**ALL_KEYS, OPENCODE_MODEL="gemini/gemini-2.5-flash").resolve()
    assert resolved.ref == "gemini/gemini-2.5-flash"


@pytest.mark.parametrize(
    ("keys", "ref"),
    [
        (ALL_KEYS, "anthropic/claude-sonnet-4-5"),
        ({"OPENAI_API_KEY": "ok", "GEMINI_API_KEY": "gk"}, "openai/gpt-4o-mini"),
        ({"GOOGLE_API_KEY": "gk"}, "gemini/gemini-2.5-flash"),
    ],
)
def test_fallback_is_the_first_configured_provider(keys: dict[str, str], ref: str):
    assert catalog(**keys).resolve().ref == ref


def test_api_base_is_passed_through():
    resolved = catalog(ANTHROPIC_API_KEY="ak", ANTHROPIC_API_BASE="http://proxy.local").resolve()
    assert (resolved.api_key, resolved.api_base) == ("ak", "http://proxy.local")


def test_gateway_accepts_models_litellm_does_not_know():
    settings = {"OPENAI_API_KEY": "local", "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}
    resolved = catalog(**settings).resolve(provider_id="openai", model_id="qwen/qwen3-8b")
    assert resolved.ref == "openai/qwen/qwen3-8b"
    assert resolved.litellm_model == "openai/qwen/qwen3-8b"
    assert resolved.api_base == "http://127.0.0.1:8000/v1"

    session = catalog(**settings).resolve(session_model="openai/my-local-model")
    assert session.model_id == "my-local-model"


# ---- resolve: every error says what to change ----


def test_unknown_provider_names_the_valid_ones():
    assert bad_request(provider_id="mistral", model_id="large") == (
        "Unknown provider 'mistral'. Valid providers: anthropic, openai, gemini."
    )
    assert bad_request(model_id="mistral/large") == (
        "Unknown provider 'mistral'. Valid providers: anthropic, openai, gemini."
    )
    assert bad_request(session_model="mistral/large", settings=ALL_KEYS) == (
        "Unknown provider 'mistral' (the session's model 'mistral/large'). "
        "Valid providers: anthropic, openai, gemini."
    )
    assert bad_request(settings={**ALL_KEYS, "OPENCODE_MODEL": "mistral/large"}) == (
        "Unknown provider 'mistral' (OPENCODE_MODEL='mistral/large'). "
        "Valid providers: anthropic, openai, gemini."
    )


def test_unknown_model_names_valid_models_and_the_endpoint():
    message = bad_request(provider_id="openai", model_id="gpt-4o-mni", settings=ALL_KEYS)
    assert message.startswith(
        "Unknown model 'gpt-4o-mni' for provider 'openai'. Valid models include: gpt-4o-mini, "
    )
    assert "GET /provider/openai/model lists all of them" in message
    assert "accepted when OPENAI_API_BASE points to a gateway" in message

    message = bad_request(session_model="anthropic/zzz", settings=ALL_KEYS)
    assert message.startswith(
        "Unknown model 'zzz' for provider 'anthropic' (the session's model 'anthropic/zzz'). "
        "Valid models include: claude-sonnet-4-5;"
    )


def test_conflicting_providers_in_one_request():
    assert bad_request(provider_id="anthropic", model_id="openai/gpt-4o") == (
        "model_id 'openai/gpt-4o' names provider 'openai' but provider_id is 'anthropic'; "
        "send one provider."
    )


def test_bare_model_id_that_no_provider_knows():
    message = bad_request(model_id="claude-sonet-4-5", settings=ALL_KEYS)
    assert message.startswith(
        "model_id 'claude-sonet-4-5' does not say which provider serves it: pass provider_id "
        "or use 'provider/model' (providers: anthropic, openai, gemini). "
        "Did you mean anthropic/claude-sonnet-4-5"
    )
    assert bad_request(model_id="zzzz").endswith("(providers: anthropic, openai, gemini).")


def test_provider_not_configured_names_the_env_var():
    assert bad_request(provider_id="anthropic", settings={"OPENAI_API_KEY": "ok"}) == (
        "Provider 'anthropic' is not configured: set ANTHROPIC_API_KEY."
    )
    assert bad_request(model_id="gemini/gemini-2.5-flash") == (
        "Provider 'gemini' is not configured: set GEMINI_API_KEY (or GOOGLE_API_KEY)."
    )
    assert bad_request(settings={"OPENCODE_MODEL": "openai/gpt-4o"}) == (
        "Provider 'openai' is not configured (OPENCODE_MODEL='openai/gpt-4o'): set OPENAI_API_KEY."
    )
    assert bad_request(model_id="openai/local", settings={"OPENAI_API_BASE": "http://x"}) == (
        "Provider 'openai' is not configured: set OPENAI_API_KEY; "
        "any non-empty value works for a server that needs no key."
    )


def test_empty_key_counts_as_not_configured():
    assert bad_request(settings={"OPENAI_API_KEY": ""}) == (
        "No model provider is configured: set ANTHROPIC_API_KEY, OPENAI_API_KEY or "
        "GEMINI_API_KEY (or GOOGLE_API_KEY)."
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"session_model": "gpt-4o"},
            "The session's model 'gpt-4o' is not in 'provider/model' form, "
            "e.g. 'openai/gpt-4o-mini'.",
        ),
        (
            {"settings": {**ALL_KEYS, "OPENCODE_MODEL": "openai/"}},
            "OPENCODE_MODEL 'openai/' is not in 'provider/model' form, e.g. 'openai/gpt-4o-mini'.",
        ),
    ],
)
def test_malformed_model_refs(kwargs: dict[str, Any], message: str):
    assert bad_request(**kwargs) == message
