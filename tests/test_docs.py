"""Every environment variable the settings read is documented in README.md and .env.example."""

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from opencode.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def env_names() -> dict[str, list[str]]:
    """Each setting's variable names: the main one first, then the accepted alternatives
    (``GOOGLE_API_KEY`` for ``GEMINI_API_KEY``)."""
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        choices = list(alias.choices) if isinstance(alias, AliasChoices) else [alias]
        assert all(isinstance(choice, str) for choice in choices), field_name
        names[field_name] = choices
    return names


def readme_rows() -> dict[str, str]:
    """README's Configuration table: each variable named in a row's first column -> that row."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README.md's Configuration section has no table"
    return {name: row for row in rows for name in NAME.findall(row.split("|")[1])}


def env_example() -> tuple[set[str], list[str]]:
    """The variables ``.env.example`` assigns, and its comment lines."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    comments = [line for line in lines if line.lstrip().startswith("#")]
    assigned = {
        line.split("=", 1)[0].strip() for line in lines if "=" in line and line not in comments
    }
    return assigned, comments


SETTINGS = env_names()


@pytest.mark.parametrize("field_name", SETTINGS)
def test_every_setting_is_in_the_readme_table_and_env_example(field_name):
    main, *alternatives = SETTINGS[field_name]
    rows = readme_rows()
    assigned, comments = env_example()
    assert main in rows, f"{main} ({field_name}) is missing from README's Configuration table"
    assert main in assigned, f"{main} ({field_name}) has no line in .env.example"
    for alternative in alternatives:
        assert f"`{alternative}`" in rows[main], f"README's {main} row omits {alternative}"
        assert any(re.search(rf"\b{alternative}\b", line) for line in comments), (
            f"{alternative} (accepted for {main}) is not mentioned in .env.example"
        )
