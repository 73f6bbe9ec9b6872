"""The real Codex CLI and the app-server schemas it generates, as a second opinion on our items.

``@openai/codex`` is pinned in ``tests/codex/package.json`` (with its lock file) and installed by
``.ci/run`` (``npm ci --prefix tests/codex``). ``codex app-server generate-json-schema`` and
``generate-ts`` need no network and no account; they run with a throwaway ``CODEX_HOME`` so they
never touch the developer's ``~/.codex``. Without the CLI the tests are skipped, or failed under
``CI=true``: CI must not go green by comparing against nothing.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from tests.codex_seed import VENDORED, shared_seed

Schema = dict[str, Any]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLI = HERE / "node_modules" / ".bin" / "codex"
PINNED = json.loads((HERE / "package.json").read_text())["dependencies"]["@openai/codex"]

# The seed this project's Codex items are written against (design note, section 1): the
# upstream schema as shipped between 2026-03-11 and 2026-03-17.
SEED = shared_seed() or VENDORED  # the shared seed, else the repository's verbatim copy

# Where ``generate-json-schema`` writes the notification's params (and, in the same directory,
# every other v2 type); ``generate-ts`` writes the method -> params union here.
PARAMS_SCHEMA = Path("v2") / "RawResponseItemCompletedNotification.json"
SERVER_NOTIFICATION_TS = Path("ServerNotification.ts")

GENERATE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Upstream:
    schema: Schema  # the params of ``rawResponseItem/completed``, ``ResponseItem`` included
    server_notification_ts: str  # the TypeScript method -> params union


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must check the Codex items against upstream", pytrace=False)
    pytest.skip(message)


def load_seed() -> Schema:
    return json.loads(SEED.read_text())


def codex(*args: str, home: Path) -> str:
    """Run the pinned CLI offline-safe (its own ``CODEX_HOME``); its stdout."""
    if not CLI.exists():
        unavailable(
            f"the Codex CLI is not installed (run: npm ci --prefix {HERE.relative_to(ROOT)})"
        )
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "CODEX_HOME": str(home)}
    done = subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=GENERATE_TIMEOUT
    )
    assert done.returncode == 0, f"codex {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def generate(out: Path) -> Upstream:
    """What the pinned CLI generates into ``out``."""
    version = codex("--version", home=out / "home").strip()
    assert version == f"codex-cli {PINNED}", f"installed {version!r}, pinned {PINNED}"
    codex("app-server", "generate-json-schema", "--out", str(out / "json"), home=out / "home")
    codex("app-server", "generate-ts", "--out", str(out / "ts"), home=out / "home")
    return Upstream(
        schema=json.loads((out / "json" / PARAMS_SCHEMA).read_text()),
        server_notification_ts=(out / "ts" / SERVER_NOTIFICATION_TS).read_text(),
    )


def validator(schema: Schema) -> Draft7Validator:
    """Both schemas declare draft-07; hold them to it."""
    cls = validator_for(schema)
    assert cls is Draft7Validator, f"{schema.get('$schema')} is no longer draft-07"
    cls.check_schema(schema)
    return cls(schema)


def problem(schema: Schema, instance: Any, definition: str | None = None) -> str | None:
    """Why ``instance`` fails ``schema`` (or its ``definition``); None when it validates."""
    if definition is not None:
        schema = {
            "$schema": schema["$schema"],
            "definitions": schema["definitions"],
            "$ref": f"#/definitions/{definition}",
        }
    error = best_match(validator(schema).iter_errors(instance))
    return None if error is None else f"{error.json_path}: {error.message}"


def variants(schema: Schema) -> dict[str, Schema]:
    """The ``ResponseItem`` variants by their ``type``."""
    branches = schema["definitions"]["ResponseItem"]["oneOf"]
    return {branch["properties"]["type"]["enum"][0]: branch for branch in branches}
