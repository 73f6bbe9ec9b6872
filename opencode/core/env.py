"""Environment that must be in place before LiteLLM is imported.

LiteLLM fetches its model cost map and Anthropic beta headers from the internet at import time
unless told otherwise; the server must start offline and give the same prices every time.
"""

import os

_OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOG": "ERROR",
}


def prepare_litellm_env() -> None:
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


prepare_litellm_env()
