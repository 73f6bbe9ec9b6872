"""What a step cost, from LiteLLM's offline cost map, for the native clients' ``Usage``.

``input_tokens`` counts every prompt token, cached ones included (as LiteLLM's ``prompt_tokens``
does for every provider); ``cache_read_tokens`` and ``cache_write_tokens`` are the part of them
read from / written to the provider's prompt cache; ``output_tokens`` counts completion tokens,
``reasoning_tokens`` included.

The map is read by ``cost_map`` (LiteLLM itself is not imported), and priced the way
``litellm.cost_per_token`` prices such a usage for OpenAI, Anthropic and Gemini (LiteLLM
1.106, ``generic_cost_per_token``; ``tests/llm/test_prices.py`` checks every chat model of the
three against it):

* uncached prompt tokens (``input_tokens`` less cache reads and writes) at
  ``input_cost_per_token``, cache reads at ``cache_read_input_token_cost`` and cache writes at
  ``cache_creation_input_token_cost`` (either missing: the input price);
* completion tokens at ``output_cost_per_token``, the reasoning part of them at
  ``output_cost_per_reasoning_token`` where the model has one;
* a prompt longer than a model's threshold (``..._above_200k_tokens``, also 128k, 272k, ...):
  every price that has an ``_above_<N>_tokens`` variant takes it, for the whole step, from the
  highest threshold passed. (The reasoning price has no such variant, and stays as it is.)

Service tiers, batch prices, regional uplifts, off-peak windows and per-modality (audio, image)
tokens are not read: the native clients' usage has none of them.
"""

from typing import Any

from opencode.llm import cost_map
from opencode.llm.types import Usage

_RATES = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)
_THRESHOLD_PREFIXES = tuple(f"{rate}_above_" for rate in _RATES)
# Thresholds of the variants for other service tiers and for batches are not the standard ones
# (LiteLLM's ``ServiceTier`` values, and ``_batches``).
_OTHER_PRICE_SUFFIXES = (
    "_auto",
    "_flex",
    "_balanced",
    "_priority",
    "_fast",
    "_ultrafast",
    "_batches",
)


def step_cost(model: str, usage: Usage) -> float:
    """USD for one step of ``model`` (``provider/model``); 0.0 when unknown, never raises."""
    try:
        entry = cost_map.entry_for(model)
        if entry is None:
            return 0.0
        prompt_cost, completion_cost = _cost(entry, usage)
    except Exception:  # a price the map holds in a form it should not: cost unknown
        return 0.0
    # USD to 10 places: float sums like 0.000011099999999999999 would reach the client as is.
    return round(float(prompt_cost + completion_cost), 10)


def _cost(entry: Any, usage: Usage) -> tuple[float, float]:
    """(prompt cost, completion cost), each summed in the order LiteLLM sums it, so that the
    floats come out the same to the last bit."""
    rates = _rates(entry, usage.input_tokens)
    input_rate, output_rate = rates["input_cost_per_token"], rates["output_cost_per_token"]
    cache_read = rates["cache_read_input_token_cost"]
    cache_write = rates["cache_creation_input_token_cost"]
    cache_read = input_rate if cache_read is None else cache_read
    cache_write = input_rate if cache_write is None else cache_write

    read, written = usage.cache_read_tokens, usage.cache_write_tokens
    uncached = (
        max(usage.input_tokens - read - written, 0) if read or written else usage.input_tokens
    )
    prompt_cost = float(uncached) * input_rate
    prompt_cost += float(read) * cache_read
    if written:
        prompt_cost += written * cache_write

    reasoning = usage.reasoning_tokens
    if reasoning > 0:
        reasoning_rate = _price(entry, "output_cost_per_reasoning_token")
        reasoning_rate = output_rate if reasoning_rate is None else reasoning_rate
        text = max(0, usage.output_tokens - reasoning)
        completion_cost = float(text) * output_rate
        completion_cost += float(reasoning) * reasoning_rate
    else:
        completion_cost = float(usage.output_tokens) * output_rate
    return prompt_cost, completion_cost


def _rates(entry: Any, prompt_tokens: int) -> dict[str, float | None]:
    rates: dict[str, float | None] = {
        "input_cost_per_token": _price(entry, "input_cost_per_token") or 0.0,
        "output_cost_per_token": _price(entry, "output_cost_per_token") or 0.0,
        "cache_read_input_token_cost": _price(entry, "cache_read_input_token_cost"),
        "cache_creation_input_token_cost": _price(entry, "cache_creation_input_token_cost"),
    }
    image_rate = _price(entry, "output_cost_per_image_token")  # image models' output price
    if not rates["output_cost_per_token"] and image_rate is not None:
        rates["output_cost_per_token"] = image_rate
    for threshold_text, threshold in _thresholds(entry):
        if prompt_tokens <= threshold:
            continue
        for rate in _RATES:
            if (above := _price(entry, f"{rate}_above_{threshold_text}_tokens")) is not None:
                rates[rate] = above
    return rates


def _thresholds(entry: Any) -> list[tuple[str, float]]:
    """The token thresholds of the entry's ``<price>_above_<N>_tokens`` keys, lowest first."""
    found: list[tuple[str, float]] = []
    for key, value in entry.items():
        if value is None or not key.startswith(_THRESHOLD_PREFIXES) or "_tokens" not in key:
            continue
        if key.endswith(_OTHER_PRICE_SUFFIXES):
            continue
        text = key.rsplit("_above_", 1)[1].split("_tokens")[0]
        try:
            found.append((text, float(text.replace("k", "")) * (1000 if "k" in text else 1)))
        except ValueError:
            continue
    return sorted(found, key=lambda item: item[1])


def _price(entry: Any, key: str) -> float | None:
    """A price as a float (the map may hold one as a string); None when absent."""
    value = entry.get(key)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
