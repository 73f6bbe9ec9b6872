"""What a step cost, from LiteLLM's offline cost map, for the native clients' ``Usage``.

``input_tokens`` counts every prompt token, cached ones included (as LiteLLM's ``prompt_tokens``
does for every provider); ``cache_read_tokens`` and ``cache_write_tokens`` are the part of them
read from / written to the provider's prompt cache; ``output_tokens`` counts completion tokens,
``reasoning_tokens`` included.
"""

from opencode.llm.types import Usage


def step_cost(model: str, usage: Usage) -> float:
    """USD for one step of ``model`` (``provider/model``); 0.0 when unknown, never raises."""
    import litellm

    details = {"cached_tokens": usage.cache_read_tokens} if usage.cache_read_tokens else None
    raw = litellm.Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
        prompt_tokens_details=details,
        completion_tokens_details={"reasoning_tokens": usage.reasoning_tokens}
        if usage.reasoning_tokens
        else None,
        cache_read_input_tokens=usage.cache_read_tokens or None,
        cache_creation_input_tokens=usage.cache_write_tokens or None,
    )
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, usage_object=raw)
    except Exception:
        return 0.0
    return round(float(prompt_cost + completion_cost), 10)
