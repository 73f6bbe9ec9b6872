"""Which providers and models exist, which are configured, and which model a run uses.

Models come from LiteLLM's offline cost map (``mode == "chat"``, priced per token), read from the
litellm package's JSON file without importing LiteLLM (``opencode.llm.cost_map``); it only
changes with the pinned LiteLLM version, so the lists are computed once per process.

Model choice, first match wins: the request (``provider_id`` + ``model_id``, ``model_id`` as
``provider/model``, a bare ``model_id`` LiteLLM knows for exactly one provider, or
``provider_id`` alone for its default model), then the session's model, then
``OPENCODE_MODEL``, then the default model of the first configured provider (anthropic, openai,
gemini).

A model missing from LiteLLM's map is accepted when its provider has a custom base URL
(``*_API_BASE``): gateways and local OpenAI-compatible servers serve arbitrary model names.
"""

import difflib
import functools
import re
from dataclasses import dataclass, field

from opencode.core.errors import BadRequest, NotFound
from opencode.core.settings import Settings
from opencode.llm import cost_map
from opencode.schemas.providers import ModelInfo, ModelList, ProviderDetail, ProviderInfo

_SUGGESTIONS = 5
_DATED_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{4})$")


@dataclass(frozen=True)
class _Provider:
    id: str
    name: str
    env: tuple[str, ...]  # API key variables; the first is canonical
    base_env: str  # custom base URL variable (Settings also accepts *_BASE_URL for some)
    default_model: str
    key_field: str  # Settings attribute holding the API key
    base_field: str  # Settings attribute holding the custom base URL


_PROVIDERS = {
    provider.id: provider
    for provider in (
        _Provider(
            id="anthropic",
            name="Anthropic",
            env=("ANTHROPIC_API_KEY",),
            base_env="ANTHROPIC_API_BASE",
            default_model="claude-sonnet-4-5",
            key_field="anthropic_api_key",
            base_field="anthropic_api_base",
        ),
        _Provider(
            id="openai",
            name="OpenAI",
            env=("OPENAI_API_KEY",),
            base_env="OPENAI_API_BASE",
            default_model="gpt-4o-mini",
            key_field="openai_api_key",
            base_field="openai_api_base",
        ),
        _Provider(
            id="gemini",
            name="Google Gemini",
            env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            base_env="GEMINI_API_BASE",
            default_model="gemini-2.5-flash",
            key_field="gemini_api_key",
            base_field="gemini_api_base",
        ),
    )
}
_VALID_PROVIDERS = ", ".join(_PROVIDERS)


@dataclass(frozen=True)
class ResolvedModel:
    provider_id: str
    model_id: str
    litellm_model: str  # "openai/gpt-4o-mini": the name LiteLLM routes and prices by
    api_key: str | None = field(repr=False)  # keep keys out of logs and tracebacks
    api_base: str | None

    @property
    def ref(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


class ProviderCatalog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def list_providers(self) -> list[ProviderInfo]:
        return [self._info(provider) for provider in _PROVIDERS.values()]

    def get_provider(self, provider_id: str) -> ProviderDetail:
        provider = _known_provider(provider_id)
        return ProviderDetail(**self._info(provider).model_dump(), models=_listed(provider.id))

    def list_models(self, provider_id: str) -> ModelList:
        provider = _known_provider(provider_id)
        return ModelList(provider_id=provider.id, models=list(_listed(provider.id)))

    def find_model(self, provider_id: str, model_id: str) -> ModelInfo | None:
        """LiteLLM's facts about a model (dated snapshots included), if it has any."""
        return _all_models(provider_id).get(model_id) if provider_id in _PROVIDERS else None

    def resolve(
        self,
        *,
        provider_id: str | None = None,
        model_id: str | None = None,
        session_model: str | None = None,
    ) -> ResolvedModel:
        """The model a run uses; ``BadRequest`` says exactly what to change when none fits.

        A ``provider_id`` or ``model_id`` that is given (not None) must name something: an
        empty or space-padded one is refused rather than stored as a session's model."""
        if provider_id is not None:
            _provider_for_request(_non_blank(provider_id, "provider_id"))
        if model_id is not None:
            _non_blank(model_id, "model_id")
        if provider_id is not None or model_id is not None:
            return self._check(*_from_request(provider_id, model_id), source="")
        if session_model:
            source = f" (the session's model {session_model!r})"
            return self._check(*_split_ref(session_model, "The session's model"), source=source)
        if default := self._settings.default_model:
            source = f" (OPENCODE_MODEL={default!r})"
            return self._check(*_split_ref(default, "OPENCODE_MODEL"), source=source)
        for provider in _PROVIDERS.values():
            if self._api_key(provider):
                return self._check(provider.id, provider.default_model, source="")
        raise BadRequest(
            "No model provider is configured: set ANTHROPIC_API_KEY, OPENAI_API_KEY or "
            "GEMINI_API_KEY (or GOOGLE_API_KEY)."
        )

    def _check(self, provider_id: str, model_id: str, *, source: str) -> ResolvedModel:
        provider = _provider_for_request(provider_id, source)
        api_base = self._api_base(provider)
        if model_id not in _all_models(provider_id) and not api_base:
            raise BadRequest(_unknown_model_message(provider, model_id, source))
        api_key = self._api_key(provider)
        if not api_key:
            raise BadRequest(_not_configured_message(provider, source, api_base))
        return ResolvedModel(provider_id, model_id, f"{provider_id}/{model_id}", api_key, api_base)

    def _info(self, provider: _Provider) -> ProviderInfo:
        return ProviderInfo(
            id=provider.id,
            name=provider.name,
            configured=bool(self._api_key(provider)),
            env=list(provider.env),
            api_base=self._api_base(provider),
            default_model=provider.default_model,
            model_count=len(_listed(provider.id)),
        )

    def _api_key(self, provider: _Provider) -> str | None:
        return getattr(self._settings, provider.key_field) or None

    def _api_base(self, provider: _Provider) -> str | None:
        return getattr(self._settings, provider.base_field) or None


def _known_provider(provider_id: str) -> _Provider:
    if provider_id not in _PROVIDERS:
        raise NotFound(f"Unknown provider {provider_id!r}. Valid providers: {_VALID_PROVIDERS}.")
    return _PROVIDERS[provider_id]


def _provider_for_request(provider_id: str, source: str = "") -> _Provider:
    if provider_id not in _PROVIDERS:
        raise BadRequest(
            f"Unknown provider {provider_id!r}{source}. Valid providers: {_VALID_PROVIDERS}."
        )
    return _PROVIDERS[provider_id]


def _non_blank(value: str, name: str) -> str:
    if not value.strip():
        raise BadRequest(
            f"{name} is empty: name a provider (anthropic, openai, gemini) and a model, e.g. "
            f"provider_id 'openai' with model_id 'gpt-4o-mini', or model_id 'openai/gpt-4o-mini'; "
            f"or leave {name} out to use the session's model."
        )
    if value != value.strip():
        raise BadRequest(f"{name} {value!r} has surrounding whitespace; send {value.strip()!r}.")
    return value


def _from_request(provider_id: str | None, model_id: str | None) -> tuple[str, str]:
    """(provider, model) named by a request; a given ``provider_id`` is already known valid."""
    if model_id is None:
        assert provider_id  # resolve() only calls this when one of the two is set
        return provider_id, _PROVIDERS[provider_id].default_model
    prefix, slash, rest = model_id.partition("/")
    if slash and (not prefix.strip() or not rest.strip()):
        part = "provider" if not prefix.strip() else "model"
        raise BadRequest(
            f"model_id {model_id!r} has an empty {part} part: send 'provider/model', e.g. "
            f"'openai/gpt-4o-mini', or a model id with provider_id."
        )
    if slash and prefix in _PROVIDERS:
        if provider_id and provider_id != prefix:
            raise BadRequest(
                f"model_id {model_id!r} names provider {prefix!r} but provider_id is "
                f"{provider_id!r}; send one provider."
            )
        return prefix, _non_blank(rest, "The model in model_id")
    if provider_id:
        return provider_id, model_id  # gateway model names may contain "/" themselves
    if slash:
        return prefix, rest
    return _provider_of(model_id), model_id


def _provider_of(model_id: str) -> str:
    """The provider of a bare model id, when exactly one provider's LiteLLM list has it."""
    owners = [p for p in _PROVIDERS if model_id in _all_models(p)]
    if len(owners) == 1:
        return owners[0]
    message = (
        f"model_id {model_id!r} does not say which provider serves it: pass provider_id or "
        f"use 'provider/model' (providers: {_VALID_PROVIDERS})."
    )
    refs = {m: f"{p}/{m}" for p in _PROVIDERS for m in _all_models(p)}
    close = difflib.get_close_matches(model_id, list(refs), n=3)
    if close and not owners:
        message += f" Did you mean {', '.join(refs[m] for m in close)}?"
    raise BadRequest(message)


def _split_ref(ref: str, source: str) -> tuple[str, str]:
    provider_id, _, model_id = ref.partition("/")
    if not provider_id or not model_id:
        raise BadRequest(
            f"{source} {ref!r} is not in 'provider/model' form, e.g. 'openai/gpt-4o-mini'."
        )
    return provider_id, model_id


def _unknown_model_message(provider: _Provider, model_id: str, source: str) -> str:
    known = _all_models(provider.id)
    close = difflib.get_close_matches(model_id, list(known), n=_SUGGESTIONS, cutoff=0.5)
    examples = list(dict.fromkeys([*close, provider.default_model]))
    return (
        f"Unknown model {model_id!r} for provider {provider.id!r}{source}. Valid models include: "
        f"{', '.join(examples)}; GET /provider/{provider.id}/model lists all of them. "
        f"(Models outside LiteLLM's list are accepted when {provider.base_env} points to a gateway.)"
    )


def _not_configured_message(provider: _Provider, source: str, api_base: str | None) -> str:
    message = f"Provider {provider.id!r} is not configured{source}: set {provider.env[0]}"
    if len(provider.env) > 1:
        message += f" (or {' or '.join(provider.env[1:])})"
    if api_base:
        message += "; any non-empty value works for a server that needs no key"
    return message + "."


@functools.cache
def _all_models(provider_id: str) -> dict[str, ModelInfo]:
    """Every priced chat model of the provider in LiteLLM's map, by id without prefix."""
    prefix = f"{provider_id}/"
    models: dict[str, ModelInfo] = {}
    for key, entry in cost_map.entries().items():
        if entry.get("litellm_provider") != provider_id or entry.get("mode") != "chat":
            continue
        if entry.get("input_cost_per_token") is None:
            continue  # not a token-priced model (e.g. "openai/container")
        model_id = key.removeprefix(prefix)
        # Gemini has both "x" and "gemini/x"; the prefixed entry is the one LiteLLM prices by.
        if key.startswith(prefix) or model_id not in models:
            models[model_id] = _model_info(provider_id, model_id, entry)
    return dict(sorted(models.items()))


@functools.cache
def _listed(provider_id: str) -> tuple[ModelInfo, ...]:
    """The models worth choosing from: no fine-tune templates, no dated copies of an alias.

    Dated snapshots (``gpt-4o-2024-08-06``) stay resolvable; they are only left out of the
    list when the undated alias (``gpt-4o``) exists."""
    models = _all_models(provider_id)
    return tuple(
        info
        for model_id, info in models.items()
        if not model_id.startswith("ft:") and not _is_dated_copy(model_id, models)
    )


def _is_dated_copy(model_id: str, models: dict[str, ModelInfo]) -> bool:
    alias = _DATED_SUFFIX.sub("", model_id)
    return alias != model_id and alias in models


def _model_info(provider_id: str, model_id: str, entry: cost_map.Entry) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        provider_id=provider_id,
        name=model_id,
        context_window=entry.get("max_input_tokens"),
        max_output_tokens=entry.get("max_output_tokens"),
        input_cost_per_million=_per_million(entry.get("input_cost_per_token")),
        output_cost_per_million=_per_million(entry.get("output_cost_per_token")),
        cache_read_cost_per_million=_per_million(entry.get("cache_read_input_token_cost")),
        cache_write_cost_per_million=_per_million(entry.get("cache_creation_input_token_cost")),
        supports_tools=bool(entry.get("supports_function_calling")),
        supports_reasoning=bool(entry.get("supports_reasoning")),
        supports_vision=bool(entry.get("supports_vision")),
    )


def _per_million(cost_per_token: float | None) -> float | None:
    return None if cost_per_token is None else round(cost_per_token * 1_000_000, 9)
