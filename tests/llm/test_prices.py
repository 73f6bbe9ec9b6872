"""``prices.step_cost`` (the cost map read without LiteLLM) against ``litellm.cost_per_token``
itself, for every chat model of OpenAI, Anthropic and Gemini in the map, under usages that
exercise each rule: plain, cache reads, cache writes, both, reasoning, past the 128k / 200k /
272k thresholds, counts that do not add up. The usage is handed to LiteLLM the way the native
clients' counts were before (``input_tokens`` includes cached tokens, as ``prompt_tokens``)."""

import json
import subprocess
import sys
from pathlib import Path

import litellm  # after opencode.core.env (tests/conftest.py): the offline map only
import pytest

from opencode.llm import cost_map, prices
from opencode.llm.types import Usage

PROVIDERS = ("openai", "anthropic", "gemini")
ROOT = Path(__file__).resolve().parents[2]

USAGES = {
    "plain": Usage(1200, 300),
    "cache read": Usage(1000, 50, cache_read_tokens=600),
    "cache write": Usage(1000, 50, cache_write_tokens=700),
    "read and write": Usage(5000, 400, cache_read_tokens=1000, cache_write_tokens=2000),
    "reasoning": Usage(100, 400, reasoning_tokens=250),
    "all reasoning": Usage(100, 40, reasoning_tokens=40),
    "above 128k": Usage(130_000, 10, 5, 1, 2),
    "above 200k": Usage(250_000, 1000, reasoning_tokens=300, cache_read_tokens=100_000),
    "above 200k, cache write": Usage(210_000, 500, cache_write_tokens=50_000),
    "above 272k": Usage(300_000, 2000, cache_read_tokens=10_000),
    "exactly 200k": Usage(200_000, 100),
    "more cached than prompt": Usage(10, 5, cache_read_tokens=20),
    "more reasoning than output": Usage(10, 5, reasoning_tokens=9),
    "nothing": Usage(),
}


def chat_models() -> list[str]:
    models = []
    for key, entry in litellm.model_cost.items():
        provider = entry.get("litellm_provider")
        if provider in PROVIDERS and entry.get("mode") == "chat":
            models.append(f"{provider}/{key.removeprefix(provider + '/')}")
    return models


def litellm_cost(model: str, usage: Usage) -> float:
    """What ``prices.step_cost`` returned when it asked LiteLLM."""
    details = {"cached_tokens": usage.cache_read_tokens} if usage.cache_read_tokens else None
    reasoning = {"reasoning_tokens": usage.reasoning_tokens} if usage.reasoning_tokens else None
    raw = litellm.Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
        prompt_tokens_details=details,
        completion_tokens_details=reasoning,
        cache_read_input_tokens=usage.cache_read_tokens or None,
        cache_creation_input_tokens=usage.cache_write_tokens or None,
    )
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, usage_object=raw)
    except Exception:
        return 0.0
    return round(float(prompt_cost + completion_cost), 10)


def test_the_map_is_litellms_own() -> None:
    """The file read is the map LiteLLM loaded (offline): the same entries for our providers."""
    ours = cost_map.entries()
    theirs = {k: v for k, v in litellm.model_cost.items() if v.get("litellm_provider") in PROVIDERS}
    assert list(ours) == list(theirs)
    assert all(dict(ours[key]) == theirs[key] for key in theirs)


def test_every_chat_model_is_priced_as_litellm_prices_it() -> None:
    models = chat_models()
    assert len(models) > 100 and {m.split("/")[0] for m in models} == set(PROVIDERS)
    mismatches = [
        (model, name, prices.step_cost(model, usage), expected)
        for model in models
        for name, usage in USAGES.items()
        if prices.step_cost(model, usage) != (expected := litellm_cost(model, usage))
    ]
    assert mismatches == []


def test_the_rules_are_exercised() -> None:
    """The map has what the usages above are meant to reach (else parity proves little)."""
    entries = [e for e in cost_map.entries().values() if e.get("mode") == "chat"]
    assert any("input_cost_per_token_above_200k_tokens" in e for e in entries)
    assert any("output_cost_per_reasoning_token" in e for e in entries)
    assert any("cache_creation_input_token_cost" in e for e in entries)
    assert any("cache_read_input_token_cost" in e for e in entries)


@pytest.mark.parametrize(
    "model",
    [
        "openai/GPT-4o",  # another case
        "openai/gpt-4o-2099-01-01",  # a dated snapshot the map does not have yet
        "openai/ft:gpt-4o-mini-2024-07-18:my-org::abc123",  # a fine-tune
        "gemini/gemini-2.5-flash-001",  # a stable version
        "anthropic/Claude-Sonnet-4-5",
    ],
)
def test_names_litellm_resolves_are_resolved_alike(model: str) -> None:
    for usage in USAGES.values():
        assert prices.step_cost(model, usage) == litellm_cost(model, usage)
    assert prices.step_cost(model, USAGES["plain"]) > 0


@pytest.mark.parametrize(
    "model",
    [
        "openai/unpriced",
        "anthropic/claude-newfamily-5",  # LiteLLM's rules know it is Claude, not its price
        "gemini/gemini-1.5-pro",  # only Vertex AI's bare key has this name
        "openai/claude-sonnet-4-5",  # another provider's model
        "mistral/mistral-large",  # a provider not served here
    ],
)
def test_unknown_models_cost_nothing(model: str) -> None:
    for usage in USAGES.values():
        assert prices.step_cost(model, usage) == 0.0 == litellm_cost(model, usage)


@pytest.mark.parametrize("model", ["gpt-4o", "", "/gpt-4o", "openai/"])
def test_a_model_without_its_provider_costs_nothing(model: str) -> None:
    """Requests always name ``provider/model`` (LiteLLM would guess OpenAI for ``gpt-4o``)."""
    assert prices.step_cost(model, USAGES["plain"]) == 0.0


def test_the_map_is_read_without_importing_litellm() -> None:
    code = (
        "import sys\n"
        "from opencode.llm import prices\n"
        "from opencode.llm.types import Usage\n"
        "from opencode.services.providers import ProviderCatalog\n"
        "from opencode.core.settings import Settings\n"
        "cost = prices.step_cost('openai/gpt-4o-mini', Usage(1000, 100))\n"
        "models = ProviderCatalog(Settings(_env_file=None)).list_models('gemini').models\n"
        "import httpx\n"
        "from opencode.llm.errors import to_provider_error\n"
        "import opencode.llm.openai_native, opencode.api.app\n"
        "error = to_provider_error(httpx.ConnectTimeout('slow'), 'openai')\n"
        "assert error.retryable and 'timed out' in error.message, error.message\n"
        "print(json.dumps([cost, len(models), 'litellm' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    cost, count, imported = json.loads(out.stdout)
    assert cost == prices.step_cost("openai/gpt-4o-mini", Usage(1000, 100)) > 0
    assert count > 10
    assert imported is False


# ---- the native OpenAI client's usage counts as LiteLLM's path counted it ----

OPENAI_USAGES = [
    {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050},
    {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0},
    },
    {  # DeepSeek
        "prompt_tokens": 900,
        "completion_tokens": 40,
        "prompt_cache_hit_tokens": 512,
        "prompt_cache_miss_tokens": 388,
        "prompt_tokens_details": {"cached_tokens": 500},
        "completion_tokens_details": {"reasoning_tokens": 30},
    },
    {  # a gateway in front of Anthropic
        "prompt_tokens": 300,
        "completion_tokens": 10,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
    },
    {"prompt_tokens": 10, "completion_tokens": 5, "reasoning_tokens": 3},  # top-level reasoning
    {"prompt_tokens": 10, "completion_tokens": None, "completion_tokens_details": {}},
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": None},
    {"prompt_tokens": 7, "completion_tokens": 5, "prompt_cache_hit_tokens": 0},
]


@pytest.mark.parametrize("raw", OPENAI_USAGES)
def test_openai_usage_counts_as_litellms(raw: dict) -> None:
    from opencode.llm.accumulate import to_usage
    from opencode.llm.openai_native import usage_object

    assert usage_object(raw) == to_usage(litellm.Usage(**raw))
