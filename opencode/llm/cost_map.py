"""LiteLLM's offline model cost map, read without importing LiteLLM.

The litellm package ships its cost map as ``model_prices_and_context_window_backup.json``; with
``LITELLM_LOCAL_MODEL_COST_MAP`` set (``opencode.core.env``) that file is exactly
``litellm.model_cost`` (less its ``fallback_generalizations`` block, rules that add capability
flags, never prices: kept apart, ``fallback_rules``). Importing LiteLLM costs ~2 s and ~150 MiB; reading the file costs ~40 ms
and, kept to the providers served here, a few MiB. The prices (``prices``) and the model
catalog (``opencode.services.providers``) read it from here, so the server needs LiteLLM only
for a request that goes through it.

The file is found with ``importlib.util.find_spec``, which locates the package without running
its ``__init__``. It is parsed once, on first use (the lifespan builds the catalog in a thread
at start-up, which loads it there); concurrent first uses wait for the one parse.
"""

import gc
import importlib.util
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

PROVIDERS = ("anthropic", "openai", "gemini")  # the providers whose entries are kept
FILE_NAME = "model_prices_and_context_window_backup.json"

_DATED_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_STABLE_VERSION_SUFFIX = re.compile(r"-\d+$")
_FINE_TUNE_SUFFIX = re.compile(r"(:[^:]*){3}$")

Entry = Mapping[str, Any]
Rule = tuple[re.Pattern[str], Mapping[str, Any]]  # model ids it covers, the flags it gives


class _CostMap:
    __slots__ = ("entries", "lowercase", "rules")

    def __init__(self, entries: dict[str, Entry], rules: tuple[Rule, ...] = ()) -> None:
        self.entries = MappingProxyType(entries)
        self.lowercase = {key.lower(): key for key in entries}
        self.rules = rules


_lock = threading.Lock()
_loaded: _CostMap | None = None


def map_path() -> Path | None:
    """The JSON file inside the installed litellm package (None without litellm)."""
    spec = importlib.util.find_spec("litellm")  # finds the package; does not import it
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        path = Path(location) / FILE_NAME
        if path.is_file():
            return path
    return None


def entries() -> Mapping[str, Entry]:
    """The map's entries for ``PROVIDERS`` (``litellm_provider``), by map key, in file order."""
    return _cost_map().entries


def fallback_rules() -> tuple[Rule, ...]:
    """The map's ``fallback_generalizations`` rules: (a pattern of model ids, the capability
    flags LiteLLM gives a model it has no entry for that matches it), in file order."""
    return _cost_map().rules


def load() -> None:
    """Parse the map now, if no one has (start-up calls this off the event loop)."""
    _cost_map()


def entry_for(model: str) -> Entry | None:
    """The entry LiteLLM prices ``provider/model`` by, or None when it has none.

    LiteLLM's lookup (``get_model_info``), for the three providers: ``provider/model``, then the
    bare ``model``, then both again with a version suffix stripped (a dated snapshot
    ``-YYYY-MM-DD`` for OpenAI and Anthropic, the organisation and id of an OpenAI fine-tune
    ``ft:base:org:suffix:id``, Gemini's ``-NNN``); each name exactly or else in any case, and
    only an entry of that provider counts (Gemini's bare keys are mostly Vertex AI's)."""
    provider, slash, name = model.partition("/")
    if not slash or provider not in PROVIDERS:
        return None
    stripped = _stripped(provider, name)
    cost_map = _cost_map()
    for candidate in (f"{provider}/{name}", name, f"{provider}/{stripped}", stripped):
        key = (
            candidate
            if candidate in cost_map.entries
            else cost_map.lowercase.get(candidate.lower())
        )
        if key is not None and cost_map.entries[key].get("litellm_provider") == provider:
            return cost_map.entries[key]
    return None


def _stripped(provider: str, name: str) -> str:
    if provider == "gemini":
        return _STABLE_VERSION_SUFFIX.sub("", name)
    if "ft:" in name:
        return _FINE_TUNE_SUFFIX.sub("", name)
    return _DATED_SNAPSHOT_SUFFIX.sub("", name)


def _cost_map() -> _CostMap:
    global _loaded
    if (loaded := _loaded) is not None:
        return loaded
    with _lock:
        if _loaded is None:
            _loaded = _CostMap(*_read())
        return _loaded


def _read() -> tuple[dict[str, Entry], tuple[Rule, ...]]:
    path = map_path()
    if path is None:
        return {}, ()
    body = path.read_bytes()
    # The parse makes ~200k objects, nearly all dropped right after; with the collector on,
    # their allocation triggers full collections of everything the process holds (~80 ms at
    # start-up instead of ~20). They hold no cycles: nothing for it to find.
    enabled = gc.isenabled()
    gc.disable()
    try:
        raw = json.loads(body)
    finally:
        if enabled:
            gc.enable()
    # Only our providers' entries are kept (~600 of ~4,000): the rest would be held for the
    # process's life for nothing. An entry is shared read-only: nothing may change prices.
    kept = {
        key: MappingProxyType(entry)
        for key, entry in raw.items()
        if isinstance(entry, dict) and entry.get("litellm_provider") in PROVIDERS
    }
    return kept, _rules((raw.get("fallback_generalizations") or {}).get("rules") or ())


def _rules(raw: Any) -> tuple[Rule, ...]:
    rules = []
    for rule in raw if isinstance(raw, list) else ():
        try:
            rules.append(
                (re.compile(rule["pattern"]), MappingProxyType(rule.get("model_info") or {}))
            )
        except (KeyError, TypeError, re.error):
            continue
    return tuple(rules)
